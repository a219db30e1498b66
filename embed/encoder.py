"""Images, texts and taxa -> L2-normalised float32 vectors with an open_clip model (SPEC §4).

On CUDA the towers run under bf16 autocast (as in SPEC §8's figures); the vectors are
normalised in float32 after the cast back, so every store receives unit vectors.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Union

import numpy as np

from embed.constants import DEFAULT_TEXT_BATCH_SIZE
from embed.models import LoadedModel
from taxonomy import DEFAULT_TEST_TEXT_TYPE, Lineage, template_texts, validate_text_type
from taxonomy.text import TEMPLATE_COUNT, label_texts
from taxonomy.taxon import Taxon

if TYPE_CHECKING:
    import torch
    from PIL import Image

logger = logging.getLogger(__name__)

ImageBatch = Union["torch.Tensor", Sequence["Image.Image"]]


class Encoder:
    """Wraps a loaded model: batches, device transfer, autocast and normalisation."""

    def __init__(self, loaded: LoadedModel, text_batch_size: int = DEFAULT_TEXT_BATCH_SIZE) -> None:
        import torch

        if text_batch_size < 1:
            raise ValueError(f"text batch size must be at least 1, got {text_batch_size}")
        self.loaded = loaded
        self.text_batch_size = text_batch_size
        self.device = next(loaded.model.parameters()).device
        self._autocast = self.device.type == "cuda"
        self._torch = torch

    @property
    def dim(self) -> int:
        return self.loaded.dim

    @property
    def vector_name(self) -> str:
        return self.loaded.vector_name

    def _context(self):
        torch = self._torch
        if self._autocast:
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return torch.autocast(device_type=self.device.type, enabled=False)

    def _finish(self, features: "torch.Tensor") -> np.ndarray:
        features = self._torch.nn.functional.normalize(features.float(), dim=-1)
        return features.cpu().numpy().astype(np.float32, copy=False)

    def encode_images(self, images: ImageBatch) -> np.ndarray:
        """A preprocessed (N, 3, H, W) tensor, or PIL images (the model's eval transform is applied)."""
        torch = self._torch
        if isinstance(images, torch.Tensor):
            pixels = images
        else:
            if len(images) == 0:
                return np.zeros((0, self.dim), dtype=np.float32)
            pixels = torch.stack([self.loaded.preprocess(image) for image in images])
        if pixels.ndim != 4:
            raise ValueError(f"expected a batch of images shaped (N, 3, H, W), got {tuple(pixels.shape)}")
        if pixels.shape[0] == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        pixels = pixels.to(self.device, non_blocking=True)
        with torch.inference_mode(), self._context():
            return self._finish(self.loaded.model.encode_image(pixels))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """One vector per string, tokenised and encoded `text_batch_size` at a time."""
        torch = self._torch
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), self.text_batch_size):
            chunk = list(texts[start:start + self.text_batch_size])
            tokens = self.loaded.tokenizer(chunk).to(self.device, non_blocking=True)
            with torch.inference_mode(), self._context():
                out[start:start + len(chunk)] = self._finish(self.loaded.model.encode_text(tokens))
        return out

    def encode_taxa(
        self, taxa: Sequence[Lineage | Taxon], text_type: str = DEFAULT_TEST_TEXT_TYPE,
        templates: int = TEMPLATE_COUNT,
    ) -> np.ndarray:
        """Zero-shot class embeddings: each template text normalised, averaged, re-normalised (SPEC §4).

        A `Taxon` is named at its own rank, so a genus gets its truncated taxonomic string.
        `templates` 1 embeds `a photo of {c}.` alone: 81 times fewer strings (see `template_texts`).
        """
        validate_text_type(text_type)
        return self._averaged([template_texts(item.lineage if isinstance(item, Taxon) else item, text_type, templates)
                               for item in taxa])

    def encode_labels(self, labels: Sequence[str]) -> np.ndarray:
        """Zero-shot vectors of free labels (pybioclip's --cls), averaged over the same templates."""
        return self._averaged([label_texts(label) for label in labels])

    def _averaged(self, groups: list[list[str]]) -> np.ndarray:
        """Each group's texts encoded, normalised, averaged and re-normalised."""
        flat = [text for group in groups for text in group]
        vectors = self.encode_texts(flat)
        out = np.zeros((len(groups), self.dim), dtype=np.float32)
        start = 0
        for i, group in enumerate(groups):
            mean = vectors[start:start + len(group)].mean(axis=0)
            out[i] = mean / max(float(np.linalg.norm(mean)), 1e-12)
            start += len(group)
        return out
