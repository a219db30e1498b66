"""A map of the collection: image vectors projected to 2-D (pure: numpy only; `ui/components/map.py` draws it).

PCA by default, through an SVD of the centred vectors. UMAP would separate clusters better on a large
collection, but it brings numba and pynndescent for a picture that PCA already gives in milliseconds
on the demo; it is not a dependency.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from embed.search import SearchHit
from taxonomy import Rank
from ui.views import UNLABELLED, hit_title


def pca_2d(vectors: np.ndarray) -> np.ndarray:
    """The first two principal components of `vectors` (n x d), n x 2; signs fixed so that the same
    vectors always give the same picture. Fewer than two points, or no spread, give zeros."""
    matrix = np.asarray(vectors, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(f"pca_2d expects an n x d matrix, got shape {matrix.shape}")
    n = matrix.shape[0]
    if n < 2 or matrix.shape[1] < 2:
        return np.zeros((n, 2))
    centred = matrix - matrix.mean(axis=0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    axes = components[:2]
    axes *= np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])[:, None]
    projected = centred @ axes.T
    if projected.shape[1] < 2:
        projected = np.hstack([projected, np.zeros((n, 2 - projected.shape[1]))])
    return projected


def map_rows(hits: Sequence[SearchHit], xy: np.ndarray, colour: Rank) -> list[dict[str, Any]]:
    """One row per point: id, x, y, the taxon at the `colour` rank (what colours it), name and path."""
    rows = []
    for hit, (x, y) in zip(hits, xy):
        lineage = hit.lineage
        group = (lineage.binomial if colour == Rank.SPECIES else lineage.get(colour)) or UNLABELLED
        title, scientific = hit_title(hit)
        rows.append({"id": hit.id, "x": float(x), "y": float(y), colour.label: group,
                     "name": f"{title} ({scientific})" if scientific else title, "path": hit.path})
    return rows


def picked_id(selection: Any, param: str) -> str | None:
    """The image id of the point clicked on the chart, from Streamlit's selection state; None when none."""
    if not selection:
        return None
    points = (selection.get("selection") or {}).get(param) or []
    if isinstance(points, dict):  # a single point comes as a mapping in some Streamlit versions
        points = [points]
    ids = [p.get("id") for p in points if isinstance(p, dict) and p.get("id")]
    return ids[0] if ids else None
