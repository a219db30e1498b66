"""`--device cuda`: the build on a GPU (bf16 autocast, pinned memory) gives the CPU's vectors.

Marked `gpu`: left out by default, run with `pytest -m gpu` on a lent GPU.
"""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.collections import make_collection

pytestmark = pytest.mark.gpu


def test_cuda_build_matches_cpu_vectors(tmp_path, tiny):
    import torch
    from qdrant_client import QdrantClient

    from embed.build import BuildOptions, run_build
    from embed.encoder import Encoder
    from index.client_store import ClientStore

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    collection = make_collection(tmp_path / "col", per_species=8, species=2)
    store = ClientStore(QdrantClient(":memory:"))
    options = BuildOptions(model="tol-tiny", device="cuda", db=str(tmp_path / "catalog.db"),
                           catalog=str(collection.catalog), images=str(collection.images), batch_size=4, workers=2)
    summary = run_build(options, store=store)  # loads the model onto the GPU itself
    assert (summary.images_embedded, summary.images_failed) == (len(collection.paths), 0)
    records = store.scroll("images")
    hits = {hit.payload["path"]: hit.id for hit in records}
    paths = list(collection.paths[:6])
    by_id = {h.id: h.vector for h in store.retrieve("images", [hits[p] for p in paths], vector_name="tol-tiny")}
    stored = np.array([by_id[hits[p]] for p in paths])
    cpu = Encoder(tiny).encode_images([Image.open(collection.images / p).convert("RGB") for p in paths])
    cosine = np.sum(stored * cpu, axis=1)
    assert np.all(cosine > 0.99), cosine  # bf16 autocast on the GPU, fp32 on the CPU
    np.testing.assert_allclose(np.linalg.norm(stored, axis=1), 1.0, rtol=1e-4)
