"""Reading a built store's shard through the plain qdrant-edge-py API, independently of index/edge_store.py."""
from __future__ import annotations

from pathlib import Path

import qdrant_edge as qe


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
