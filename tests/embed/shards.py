"""Reading what a build stored: a shard through the plain qdrant-edge-py API (independently of
index/edge_store.py), or every image vector through the store as a reader."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import qdrant_edge as qe

from index.schema import IMAGES
from index.store import open_store


def stored_vectors(store_path: Path, vector: str) -> dict[str, np.ndarray]:
    """Every image's `vector`, by point id, read from the store at `store_path` as a reader."""
    with open_store(str(store_path), read_only=True) as store:
        ids = [hit.id for hit in store.scroll(IMAGES)]
        return {hit.id: hit.vector for hit in store.retrieve(IMAGES, ids, vector)}


def edge_points(path: Path, with_payload: bool = True, with_vector: bool = True) -> list[tuple[str, dict, dict]]:
    """(id, payload, vectors) of every point of the closed shard at `path` ({} for what is not asked for)."""
    shard = qe.EdgeShard.load(str(path))
    try:
        points, offset = [], None
        while True:
            page, offset = shard.scroll(qe.ScrollRequest(limit=500, offset=offset, with_payload=with_payload,
                                                         with_vector=with_vector))
            points += [(str(p.id), dict(p.payload or {}), dict(p.vector or {})) for p in page]
            if offset is None:
                return points
    finally:
        shard.close()
