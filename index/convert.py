"""Records to Qdrant payloads and payloads back to typed hits (SPEC §5), and the checks on vectors
before they are written.

The one place where `ImageRecord` and `Taxon` become payload dicts, and where a stored payload is
read back (`Hit`'s typed fields): both stores call it, and no caller parses a payload itself.
"""
from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any

import numpy as np

from index.records import ImageRecord
from index.schema import CATALOG_SOURCE, COMMON_NAME, LINEAGE, RANK, SOURCE, SOURCES, SPLIT, TAXON
from taxonomy import Lineage, Rank, parse_key, point_id
from taxonomy.taxon import Taxon

PATH, SHA256, LICENSE, WIDTH, HEIGHT = "path", "sha256", "license", "width", "height"
NAME, PARENT, DEPTH, N_IMAGES, TEXT = "name", "parent", "depth", "n_images", "text"


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
    payload[PATH] = record.path
    payload[SHA256] = record.sha256
    for name in (SOURCE, SPLIT, LICENSE):
        value = getattr(record, name)
        if value:
            payload[name] = value
    payload[WIDTH] = int(record.width)
    payload[HEIGHT] = int(record.height)
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
        NAME: lineage.binomial if taxon.rank == Rank.SPECIES and lineage.binomial else lineage.get(taxon.rank),
        TAXON: lineage.key(taxon.rank),
    }
    if len(keys) > 1:
        payload[PARENT] = keys[-2]
    payload[LINEAGE] = keys
    payload.update(_rank_fields(lineage, taxon.rank))
    if taxon.common_name:
        payload[COMMON_NAME] = taxon.common_name
    payload[DEPTH] = taxon.depth
    payload[N_IMAGES] = int(taxon.n_images)
    payload[TEXT] = text
    payload[SOURCES] = sorted(set(sources))
    return payload


@lru_cache(maxsize=1 << 16)
def _key_lineage(key: str) -> Lineage:
    return parse_key(key) if key else Lineage()


@dataclass(frozen=True)
class Hit:
    """One point: from a search (`score` set), or from retrieve/scroll (`score` None).

    `payload` is what the point stores (SPEC §5); the properties read it as typed fields, absent
    values as "", 0 or None. They are read on first use: a scroll of a million taxa often needs
    one field of each. `vector` is the stored, unit-normalised vector when it was asked for.
    `group` is the value of the `group_by` field that put the hit in its group.
    """

    id: str
    score: float | None
    payload: dict[str, Any]
    vector: np.ndarray | None = None
    group: str | None = None

    def _text(self, field: str) -> str:
        return str(self.payload.get(field) or "")

    def _int(self, field: str) -> int:
        return int(self.payload.get(field) or 0)

    @property
    def taxon(self) -> str:
        """The key of the deepest known rank; "" for an unlabelled image."""
        return self._text(TAXON)

    @cached_property
    def lineage(self) -> Lineage:
        """The names of its taxon key (homonym-safe, unlike the rank fields), with the common name."""
        return _key_lineage(self.taxon).with_common_name(self.common_name)

    @cached_property
    def rank(self) -> Rank | None:
        """The deepest known rank; None for an unlabelled image."""
        label = self.payload.get(RANK)
        return Rank.parse(label) if label else None

    @property
    def common_name(self) -> str:
        return self._text(COMMON_NAME)

    @property
    def name(self) -> str:
        """A taxon's name at its rank (the binomial for a species); "" for an image."""
        return self._text(NAME)

    @property
    def path(self) -> str:
        return self._text(PATH)

    @property
    def sha256(self) -> str:
        return self._text(SHA256)

    @property
    def split(self) -> str:
        return self._text(SPLIT)

    @property
    def source(self) -> str:
        return self._text(SOURCE)

    @property
    def license(self) -> str:
        return self._text(LICENSE)

    @property
    def width(self) -> int:
        return self._int(WIDTH)

    @property
    def height(self) -> int:
        return self._int(HEIGHT)

    @property
    def n_images(self) -> int:
        return self._int(N_IMAGES)

    @property
    def text(self) -> str:
        """What was embedded for a taxon."""
        return self._text(TEXT)

    @property
    def sources(self) -> tuple[str, ...] | None:
        """The sets that brought a taxon; None when the point has no `sources` (written before they existed)."""
        sources = self.payload.get(SOURCES)
        return None if sources is None else tuple(sources)

    def as_taxon(self) -> Taxon:
        """The taxon a `taxa` point describes (the inverse of `taxon_payload`, `text` and `sources` aside)."""
        if self.rank is None:
            raise ValueError(f"point {self.id} has no rank: not a taxon of the `taxa` collection")
        return Taxon(self.lineage, self.rank, self.n_images)


def with_sources(hit: Hit, sources: Sequence[str], n_images: int | None = None) -> dict[str, Any]:
    """The payload of a taxon point with its `sources` (and `n_images`) replaced, the rest as stored:
    what `overwrite_payloads` writes back when a set joins or leaves a taxon."""
    payload = {**hit.payload, SOURCES: list(sources)}
    if n_images is not None:
        payload[N_IMAGES] = n_images
    return payload


def hit_of(point: Any, score: float | None = None, vector_name: str | None = None, group: str | None = None) -> Hit:
    """A `Hit` from an engine's point: qdrant-client's and qdrant-edge's both have `id`, `payload` and
    `vector` (a dict of named vectors when asked for)."""
    vectors = point.vector if isinstance(point.vector, dict) else {}
    vector = None
    if vector_name is not None and vector_name in vectors:
        vector = np.asarray(vectors[vector_name], dtype=np.float32)
    return Hit(str(point.id), score, dict(point.payload or {}), vector, group)


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
