"""Records to Qdrant payloads (SPEC §5), and the checks on vectors before they are written.

The one place where `ImageRecord` and `Taxon` become payload dicts; both stores call it.
"""
from __future__ import annotations

import uuid
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from index.records import ImageRecord
from index.schema import CATALOG_SOURCE, COMMON_NAME, LINEAGE, RANK, SOURCE, SOURCES, SPECIES, SPLIT, TAXON
from taxonomy import Lineage, Rank, point_id
from taxonomy.taxon import Taxon


def _rank_fields(lineage: Lineage, deepest: Rank | None) -> dict[str, str]:
    """kingdom..genus names and the species binomial, up to `deepest`; unknown ranks absent."""
    fields: dict[str, str] = {}
    if deepest is None:
        return fields
    for rank in Rank:
        if rank > deepest:
            break
        value = lineage.binomial if rank == Rank.SPECIES else lineage.get(rank)
        if value:
            fields[rank.label] = value
    return fields


@lru_cache(maxsize=1 << 16)
def _lineage_payload(lineage: Lineage) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    """The taxonomic part of an image payload; cached, since many images share a lineage."""
    deepest = lineage.deepest_rank
    fields = _rank_fields(lineage, deepest)
    if lineage.common_name:
        fields[COMMON_NAME] = lineage.common_name
    if deepest is not None:
        fields[TAXON] = lineage.key(deepest)
        fields[RANK] = deepest.label
    return tuple(fields.items()), tuple(lineage.keys())


def image_payload(record: ImageRecord) -> dict[str, Any]:
    """The `images` payload of SPEC §5; ranks, taxon and rank are absent when unknown."""
    fields, keys = _lineage_payload(record.lineage)
    payload: dict[str, Any] = dict(fields)
    payload[LINEAGE] = list(keys)
    payload["path"] = record.path
    payload["sha256"] = record.sha256
    for name in (SOURCE, SPLIT, "license"):
        value = getattr(record, name)
        if value:
            payload[name] = value
    payload["width"] = int(record.width)
    payload["height"] = int(record.height)
    return payload


def taxon_payload(taxon: Taxon, text: str, sources: Sequence[str] = (CATALOG_SOURCE,)) -> dict[str, Any]:
    """The `taxa` payload of SPEC §5; `text` is what was embedded, `sources` the sets that brought it."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"taxon {taxon.key!r} has no embedded text; expected the caption that was embedded")
    lineage = taxon.lineage.truncate(taxon.rank)
    if not lineage.get(taxon.rank):
        raise ValueError(f"taxon {taxon.key!r} has no name at its rank {taxon.rank.label!r}")
    keys = lineage.keys()
    payload: dict[str, Any] = {
        RANK: taxon.rank.label,
        "name": lineage.binomial if taxon.rank == Rank.SPECIES and lineage.binomial else lineage.get(taxon.rank),
        TAXON: lineage.key(taxon.rank),
    }
    if len(keys) > 1:
        payload["parent"] = keys[-2]
    payload[LINEAGE] = keys
    payload.update(_rank_fields(lineage, taxon.rank))
    if taxon.common_name:
        payload[COMMON_NAME] = taxon.common_name
    payload["depth"] = taxon.depth
    payload["n_images"] = int(taxon.n_images)
    payload["text"] = text
    payload[SOURCES] = sorted(set(sources))
    return payload


def taxon_from_payload(payload: dict[str, Any]) -> Taxon:
    """The taxon a `taxa` payload describes (the inverse of `taxon_payload`, `text` and `sources` aside)."""
    names = {rank.label: payload.get(rank.label, "") for rank in Rank}
    return Taxon(Lineage.from_ranks(names, payload.get(COMMON_NAME, "")), Rank.parse(payload[RANK]),
                 int(payload.get("n_images", 0)))


def taxon_point_id(taxon: Taxon) -> str:
    """The point id of a taxon: UUIDv5 of its key (SPEC §3)."""
    return point_id(taxon.lineage.key(taxon.rank))


def check_point_id(value: object) -> str:
    """A point id as the canonical UUID string; the error names the bad value."""
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise ValueError(f"invalid point id {value!r}: expected a UUID string such as image_point_id(path)") from None


def check_unique(ids: list[str], what: str) -> None:
    seen: set[str] = set()
    duplicates = sorted({i for i in ids if i in seen or seen.add(i)})
    if duplicates:
        raise ValueError(f"{what} repeat point ids {duplicates[:5]}; each point may appear once per upsert")


def as_matrix(vectors: object, rows: int, what: str) -> np.ndarray:
    """`vectors` as a C-contiguous float32 (rows, dim) matrix of finite, non-zero rows."""
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[0] != rows or matrix.shape[1] == 0:
        raise ValueError(f"{what}: expected a ({rows}, dim) array of vectors, got shape {matrix.shape}")
    _check_values(matrix, what)
    return np.ascontiguousarray(matrix)


def as_query(query: object, dim: int, what: str = "query") -> np.ndarray:
    """One query vector of length `dim` as float32."""
    vector = np.asarray(query, dtype=np.float32)
    if vector.ndim == 2 and vector.shape[0] == 1:
        vector = vector[0]
    if vector.ndim != 1 or vector.shape[0] != dim:
        raise ValueError(f"{what}: expected a vector of {dim} values, got shape {vector.shape}")
    _check_values(vector[None, :], what)
    return vector


def as_queries(queries: object, dim: int) -> np.ndarray:
    """Many query vectors as a float32 (n, dim) matrix."""
    matrix = np.asarray(queries, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[1] != dim:
        raise ValueError(f"queries: expected an (n, {dim}) array, got shape {matrix.shape}")
    _check_values(matrix, "queries")
    return matrix


def _check_values(matrix: np.ndarray, what: str) -> None:
    # Cosine distance normalises each vector: a zero row has no direction and NaN has no order.
    bad = ~np.isfinite(matrix).all(axis=1)
    if bad.any():
        raise ValueError(f"{what}: row {int(np.argmax(bad))} holds NaN or infinite values")
    zero = ~matrix.any(axis=1)
    if zero.any():
        raise ValueError(f"{what}: row {int(np.argmax(zero))} is all zeros; cosine needs a direction")
