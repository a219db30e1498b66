"""The encoder: unit vectors, preprocessing, batching, and SPEC §4's template averaging by hand."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from taxonomy import Lineage, Rank, template_texts
from taxonomy.taxon import Taxon

MAGPIE = Lineage.from_ranks(
    ["Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Pica", "hudsonia"], "black-billed magpie"
)


def _images(n: int) -> list[Image.Image]:
    rng = np.random.default_rng(1)
    return [Image.fromarray(rng.integers(0, 255, (80, 96, 3), dtype=np.uint8)) for _ in range(n)]


def test_images_are_unit_float32_and_match_the_model(encoder, tiny):
    images = _images(3)
    vectors = encoder.encode_images(images)
    assert vectors.dtype == np.float32 and vectors.shape == (3, tiny.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    pixels = torch.stack([tiny.preprocess(image) for image in images])
    assert pixels.shape == (3, 3, 64, 64)
    np.testing.assert_allclose(encoder.encode_images(pixels), vectors, atol=1e-6)
    with torch.inference_mode():
        raw = tiny.model.encode_image(pixels).numpy()
    np.testing.assert_allclose(vectors, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-5)
    assert encoder.encode_images([]).shape == (0, tiny.dim)


def test_texts_batched_like_one_batch(encoder, tiny):
    texts = [f"a photo of taxon {i}." for i in range(120)]  # 3 chunks of 50
    vectors = encoder.encode_texts(texts)
    with torch.inference_mode():
        raw = tiny.model.encode_text(tiny.tokenizer(texts)).numpy()
    np.testing.assert_allclose(vectors, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


def _by_hand(tiny, texts: list[str]) -> np.ndarray:
    """SPEC §4 in float64: each template's raw text feature normalised, averaged, re-normalised."""
    with torch.inference_mode():
        raw = tiny.model.encode_text(tiny.tokenizer(texts)).double().numpy()
    rows = [v / np.sqrt(np.sum(v * v)) for v in raw]
    mean = np.sum(rows, axis=0) / len(rows)
    return mean / np.sqrt(np.sum(mean * mean))


def test_taxon_embedding_averages_the_templates(encoder, tiny):
    genus = Taxon(MAGPIE.truncate(Rank.GENUS), Rank.GENUS)
    vectors = encoder.encode_taxa([MAGPIE, genus], text_type="taxon_com")
    species_texts = template_texts(MAGPIE, "taxon_com")
    assert len(species_texts) == 81
    assert "a photo of Animalia Chordata Aves Passeriformes Corvidae Pica hudsonia with common name " \
           "black-billed magpie." in species_texts
    genus_texts = template_texts(genus.lineage, "taxon_com")
    assert "a photo of Animalia Chordata Aves Passeriformes Corvidae Pica." in genus_texts
    np.testing.assert_allclose(vectors[0], _by_hand(tiny, species_texts), atol=1e-5)
    np.testing.assert_allclose(vectors[1], _by_hand(tiny, genus_texts), atol=1e-5)
    # The average is not any single template's vector, and text types give different vectors.
    assert not np.allclose(vectors[0], encoder.encode_texts(species_texts[:1])[0], atol=1e-3)
    assert not np.allclose(vectors[0], encoder.encode_taxa([MAGPIE], "scientific")[0], atol=1e-3)


def test_unknown_text_type(encoder):
    with pytest.raises(ValueError, match="taxon_com"):
        encoder.encode_taxa([MAGPIE], text_type="latin")
