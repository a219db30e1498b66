"""`--device cuda`: JPEGs decoded and resized on the GPU, every other image on the CPU as before.

SPEC §8: 16 CPU cores decode and resize 2,200 JPEGs/s, nvJPEG on one H200 11,600/s, so a build
that decodes on the CPU cannot feed a 6,000 images/s model. Here the DataLoader workers only read
the files and check their headers; a plain JPEG comes back as its bytes, and the main thread
decodes the batch's JPEGs with one `torchvision.io.decode_jpeg(..., device=cuda)` call, then
resizes (shortest side, bicubic, antialiased), crops and normalises them on the GPU as the
model's own preprocessing does on the CPU.

What stays on the CPU (the workers decode it with `index.collection.images.decode_image` and the model's
preprocessing, exactly as without a GPU):
- every other format (PNG, WebP, TIFF, ...), and JPEGs the GPU path would get wrong or that the
  CPU path must judge: an EXIF orientation other than upright, a mode other than RGB or
  greyscale (CMYK, YCCK), or no end-of-image marker (truncated: the CPU decoder names it);
- a batch whose GPU decode fails is decoded image by image on the GPU, and an image that fails
  there too is decoded on the CPU (`decode_image`), which keeps or rejects it with its reason.
The header checks of `index.collection.images` (accepted format, decompression bomb, aspect ratio) run in
the workers before any byte reaches a decoder. A model whose preprocessing is not open_clip's
`shortest` resize keeps CPU decoding (`gpu_preprocess_supported`).

The resized pixels differ from PIL's by rounding only (both are antialiased bicubic): the tests
compare them on the CPU, where the same code runs with `device="cpu"`.
"""
from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from embed.data import DecodedBatch, worker_options
from index.collection.images import ImageError, decode_image, image_header, read_image_bytes
from index.records import ImageRecord

logger = logging.getLogger(__name__)

_EOI = b"\xff\xd9"  # a JPEG's end-of-image marker; a truncated file lacks it
_TRAILING = 64  # bytes after the marker some cameras write (padding, a second thumbnail's tail)
_EXIF_ORIENTATION = 0x0112
_GPU_MODES = frozenset({"RGB", "L"})  # YCbCr and greyscale JPEGs; CMYK/YCCK stay on the CPU


@dataclass(frozen=True)
class RawJpeg:
    """A worker's answer for a plain JPEG: its bytes, undecoded."""

    data: torch.Tensor  # uint8, 1-D


@dataclass(frozen=True)
class MixedBatch:
    """A worker batch: JPEG bytes for the GPU beside CPU-decoded pixels, and the failures.

    The JPEGs travel as one byte tensor with their lengths: a tensor each would cost the
    DataLoader one shared-memory file descriptor per image.
    """

    cpu_indices: tuple[int, ...]
    cpu_pixels: torch.Tensor  # (len(cpu_indices), 3, H, W)
    jpeg_indices: tuple[int, ...]
    jpeg_bytes: torch.Tensor  # uint8, the files one after the other
    jpeg_lengths: tuple[int, ...]
    failures: tuple[tuple[int, str], ...]

    @property
    def jpegs(self) -> tuple[torch.Tensor, ...]:
        return tuple(self.jpeg_bytes.split(list(self.jpeg_lengths))) if self.jpeg_lengths else ()

    def pin_memory(self) -> MixedBatch:
        return MixedBatch(self.cpu_indices, self.cpu_pixels.pin_memory(), self.jpeg_indices,
                          self.jpeg_bytes.pin_memory(), self.jpeg_lengths, self.failures)


def gpu_preprocess_supported(preprocess_cfg: dict[str, Any]) -> bool:
    """Whether `GpuPreprocess` reproduces this model's preprocessing (open_clip's default: shortest side)."""
    size = preprocess_cfg.get("size")
    sizes = size if isinstance(size, (tuple, list)) else (size, size)
    return (preprocess_cfg.get("resize_mode", "shortest") == "shortest"
            and preprocess_cfg.get("interpolation", "bicubic") in ("bicubic", "bilinear")
            and preprocess_cfg.get("mode", "RGB") == "RGB"
            and len(sizes) == 2 and sizes[0] == sizes[1] and isinstance(sizes[0], int))


def jpeg_for_gpu(name: str, data: bytes) -> bool:
    """Whether the GPU may decode `data` (after `index.collection.images.image_header` accepted it).

    Raises:
        ImageError: the header checks of `index.collection.images` (format, bomb, aspect ratio).
    """
    fmt, _, _ = image_header(name, data)
    if fmt != "JPEG" or _EOI not in data[-_TRAILING:]:
        return False
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data), formats=("JPEG",)) as image:
            if image.mode not in _GPU_MODES:
                return False
            orientation = int(image.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # a broken EXIF block or header: the CPU decoder judges the file
        return False
    return orientation == 1


class RoutingDataset(Dataset):
    """Item i: (i, RawJpeg) for a JPEG the GPU decodes, (i, pixels) decoded here, or (i, reason)."""

    def __init__(self, records: Sequence[ImageRecord], transform: Callable[[Any], torch.Tensor]) -> None:
        self.records = list(records)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | RawJpeg | str]:
        record = self.records[index]
        try:
            data = read_image_bytes(record.root, record.path)
            if jpeg_for_gpu(record.path, data):
                return index, RawJpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8))
            return index, self.transform(decode_image(record.path, data))
        except (ImageError, OSError, ValueError) as e:
            return index, (e.reason if isinstance(e, ImageError) else str(e)) or type(e).__name__


def collate_mixed(items: list[tuple[int, torch.Tensor | RawJpeg | str]]) -> MixedBatch:
    cpu = [(i, x) for i, x in items if isinstance(x, torch.Tensor)]
    jpegs = [(i, x.data) for i, x in items if isinstance(x, RawJpeg)]
    bad = tuple((i, x) for i, x in items if isinstance(x, str))
    pixels = torch.stack([p for _, p in cpu]) if cpu else torch.zeros((0, 3, 1, 1))
    data = torch.cat([d for _, d in jpegs]) if jpegs else torch.zeros(0, dtype=torch.uint8)
    return MixedBatch(tuple(i for i, _ in cpu), pixels, tuple(i for i, _ in jpegs), data,
                      tuple(int(d.numel()) for _, d in jpegs), bad)


class GpuPreprocess:
    """JPEG bytes -> the model's input on `device`: decode, shortest side to `size`, centre crop, normalise."""

    def __init__(self, preprocess_cfg: dict[str, Any], device: str | torch.device,
                 cpu_transform: Callable[[Any], torch.Tensor]) -> None:
        if not gpu_preprocess_supported(preprocess_cfg):
            raise ValueError(f"GPU preprocessing reproduces open_clip's 'shortest' resize only, not {preprocess_cfg}")
        size = preprocess_cfg["size"]
        self.size = int(size[0] if isinstance(size, (tuple, list)) else size)
        self.interpolation = preprocess_cfg.get("interpolation", "bicubic")
        self.device = torch.device(device)
        self.mean = torch.tensor(preprocess_cfg["mean"], device=self.device).view(3, 1, 1)
        self.std = torch.tensor(preprocess_cfg["std"], device=self.device).view(3, 1, 1)
        self.cpu_transform = cpu_transform
        self.fallbacks = 0  # images the GPU could not decode (decoded on the CPU instead)

    def decode(self, jpegs: Sequence[torch.Tensor]) -> list[torch.Tensor | None]:
        """(3, H, W) uint8 images on the device, None for those it cannot decode; batched when it can."""
        from torchvision.io import ImageReadMode, decode_jpeg

        if not jpegs:
            return []
        try:
            return list(decode_jpeg(list(jpegs), mode=ImageReadMode.RGB, device=self.device))
        except RuntimeError as e:
            logger.debug("batched JPEG decode failed (%s): decoding one by one", e)
        out: list[torch.Tensor | None] = []
        for data in jpegs:
            try:
                out.append(decode_jpeg(data, mode=ImageReadMode.RGB, device=self.device))
            except RuntimeError:
                out.append(None)
        return out

    def resize(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) uint8 images of one size -> the normalised (N, 3, size, size) float inputs."""
        _, _, height, width = images.shape
        short, long = (height, width) if height <= width else (width, height)
        new_long = int(self.size * long / short)  # torchvision's Resize(int) arithmetic
        new_h, new_w = (self.size, new_long) if height <= width else (new_long, self.size)
        x = images.float()
        if (new_h, new_w) != (height, width):
            x = torch.nn.functional.interpolate(x, size=(new_h, new_w), mode=self.interpolation, antialias=True,
                                                align_corners=False)
            x = x.round_().clamp_(0, 255)  # PIL resizes to 8-bit pixels
        top = int(round((new_h - self.size) / 2.0))
        left = int(round((new_w - self.size) / 2.0))
        x = x[:, :, top:top + self.size, left:left + self.size]
        return (x / 255.0 - self.mean) / self.std

    def __call__(self, names: Sequence[str], jpegs: Sequence[torch.Tensor]
                 ) -> tuple[list[torch.Tensor], list[int], list[tuple[int, str]]]:
        """(pixels, positions kept, (position, reason) failures) of a batch's JPEGs, in their order.

        Images of one size are resized together (photos of a collection often share a few sizes).
        """
        out: dict[int, torch.Tensor] = {}
        failed: list[tuple[int, str]] = []
        same_size: dict[tuple[int, int], list[tuple[int, torch.Tensor]]] = {}
        for k, image in enumerate(self.decode(jpegs)):
            if image is not None:
                same_size.setdefault(tuple(image.shape[1:]), []).append((k, image))
                continue
            self.fallbacks += 1
            try:  # the CPU decoder keeps what it can read and names what it cannot
                image_cpu = decode_image(names[k], bytes(jpegs[k].cpu().numpy()))
                out[k] = self.cpu_transform(image_cpu).to(self.device)
            except (ImageError, OSError, ValueError) as e:
                failed.append((k, e.reason if isinstance(e, ImageError) else str(e)))
        for group in same_size.values():
            resized = self.resize(torch.stack([image for _, image in group]))
            for (k, _), pixels in zip(group, resized):
                out[k] = pixels
        kept = sorted(out)
        return [out[k] for k in kept], kept, failed


def gpu_image_batches(
    records: Sequence[ImageRecord],
    transform: Callable[[Any], torch.Tensor],
    preprocess_cfg: dict[str, Any],
    device: str | torch.device,
    batch_size: int,
    workers: int,
    prefetch_factor: int = 2,
) -> Iterator[DecodedBatch]:
    """`embed.data.image_loader`'s batches, with the JPEGs decoded on `device`: pixels on `device`, in record order."""
    gpu = GpuPreprocess(preprocess_cfg, device, transform)
    loader = DataLoader(RoutingDataset(records, transform), batch_size=batch_size, shuffle=False,
                        num_workers=workers, collate_fn=collate_mixed,
                        pin_memory=torch.device(device).type == "cuda", **worker_options(workers, prefetch_factor))
    for batch in loader:
        names = [records[i].path for i in batch.jpeg_indices]
        pixels, kept, failed = gpu(names, batch.jpegs)
        on_device: dict[int, torch.Tensor] = {batch.jpeg_indices[k]: p for k, p in zip(kept, pixels)}
        cpu_pixels = batch.cpu_pixels.to(gpu.device, non_blocking=True)
        for position, index in enumerate(batch.cpu_indices):
            on_device[index] = cpu_pixels[position]
        order = sorted(on_device)
        stacked = torch.stack([on_device[i] for i in order]) if order else torch.zeros((0, 3, 1, 1))
        failures = tuple(sorted((*batch.failures, *((batch.jpeg_indices[k], reason) for k, reason in failed))))
        yield DecodedBatch(tuple(order), stacked, failures)
    if gpu.fallbacks:
        logger.info("%d JPEGs were decoded on the CPU: the GPU decoder refused them", gpu.fallbacks)


def use_gpu_decoding(device: str, preprocess_cfg: dict[str, Any]) -> bool:
    """Whether a build on `device` decodes its JPEGs on the GPU: on CUDA, when the preprocessing allows it."""
    if not device.startswith("cuda"):
        return False
    if not gpu_preprocess_supported(preprocess_cfg):
        logger.warning("this model's preprocessing (%s) is not reproduced on the GPU: images are decoded on the CPU",
                       preprocess_cfg)
        return False
    return True
