"""Search filters and grouping, written once and translated by each store.

`SearchFilter` is what callers pass; `FilterSpec` is its engine-neutral form (field conditions,
ids, a vector that must be present), which `index.edge_store` and `index.client_store` turn
into their own filter objects. `group_hits` groups scored hits the way Qdrant's
`query_points_groups` does, for the engine that has no groups (the edge shard).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from index.schema import LINEAGE, RANK, SOURCE, SOURCES, SPLIT, check_keyword_field
from taxonomy import Rank

if TYPE_CHECKING:
    from index.store import Hit


def _keys(value: object, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)
    keys = tuple(value)  # type: ignore[arg-type]
    bad = [k for k in keys if not isinstance(k, str) or not k.strip()]
    if bad:
        raise ValueError(f"SearchFilter.{what}: expected taxon keys such as 'Animalia/Chordata/Aves', got {bad!r}")
    return keys


@dataclass(frozen=True)
class SearchFilter:
    """Which points a search, count, scroll or facet may return.

    within: clade keys; a point matches when its `lineage` contains ANY of them (one clade, or a
        union such as birds or mammals). Keys, not names, so genus Morus of the plants and of the
        gannets never mix.
    exclude: clade keys; a point matches only when its `lineage` contains NONE of them.
    rank: payload `rank` equals this rank's label (the taxa of one rank, or images labelled to it).
    split, source: payload equality.
    match: (field, value) pairs of indexed keyword fields that must hold, e.g. (("genus", "Pinus"),).
    sources: taxa only: the point's `sources` holds ANY of these sets (`catalog`, a reference set's name).
    """

    within: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    rank: Rank | None = None
    split: str | None = None
    source: str | None = None
    match: tuple[tuple[str, str], ...] = ()
    sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "within", _keys(self.within, "within"))
        object.__setattr__(self, "exclude", _keys(self.exclude, "exclude"))
        sources = (self.sources,) if isinstance(self.sources, str) else tuple(self.sources)
        if any(not isinstance(s, str) or not s.strip() for s in sources):
            raise ValueError(f"SearchFilter.sources: expected set names such as 'catalog' or 'ncbi', got {sources!r}")
        object.__setattr__(self, "sources", sources)
        if self.rank is not None:
            object.__setattr__(self, "rank", Rank.parse(self.rank))
        for name in ("split", "source"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"SearchFilter.{name}: expected a non-empty string or None, got {value!r}")
        object.__setattr__(self, "match", tuple(self.match))
        for pair in self.match:
            if len(pair) != 2 or not all(isinstance(part, str) and part for part in pair):
                raise ValueError(f"SearchFilter.match: expected (field, value) pairs of strings, got {pair!r}")
            check_keyword_field(pair[0], "SearchFilter.match field")

    @property
    def is_empty(self) -> bool:
        return not (self.within or self.exclude or self.rank is not None or self.split or self.source
                    or self.sources or self.match)


@dataclass(frozen=True)
class FilterSpec:
    """Engine-neutral filter: every `must` holds, no `must_not` holds.

    A condition is (field, values): the field's value, or one of an array field's values,
    equals one of `values`.
    """

    must: tuple[tuple[str, tuple[str, ...]], ...] = ()
    must_not: tuple[tuple[str, tuple[str, ...]], ...] = ()
    ids: tuple[str, ...] | None = None
    has_vector: str | None = None
    has_field: str | None = None  # the field is present and not empty


def filter_spec(
    search_filter: SearchFilter | None = None,
    *,
    has_vector: str | None = None,
    ids: Sequence[str] | None = None,
    also: Iterable[tuple[str, str]] = (),
    none_of: Iterable[tuple[str, tuple[str, ...]]] = (),
    has_field: str | None = None,
) -> FilterSpec | None:
    """The neutral form of `search_filter` plus extra conditions; None when nothing filters.

    `also`: (field, value) pairs that must hold; `none_of`: (field, values) none of which may hold.
    """
    must: list[tuple[str, tuple[str, ...]]] = []
    must_not: list[tuple[str, tuple[str, ...]]] = []
    if search_filter is not None:
        if search_filter.within:
            must.append((LINEAGE, search_filter.within))
        if search_filter.exclude:
            must_not.append((LINEAGE, search_filter.exclude))
        if search_filter.rank is not None:
            must.append((RANK, (search_filter.rank.label,)))
        if search_filter.split:
            must.append((SPLIT, (search_filter.split,)))
        if search_filter.source:
            must.append((SOURCE, (search_filter.source,)))
        if search_filter.sources:
            must.append((SOURCES, search_filter.sources))
        must.extend((name, (value,)) for name, value in search_filter.match)
    must.extend((name, (value,)) for name, value in also)
    must_not.extend((name, tuple(values)) for name, values in none_of if values)
    if not must and not must_not and ids is None and has_vector is None and has_field is None:
        return None
    return FilterSpec(tuple(must), tuple(must_not), None if ids is None else tuple(ids), has_vector, has_field)


def spec_fields(spec: FilterSpec | None) -> list[str]:
    """The payload fields `spec_matches` reads."""
    if spec is None:
        return []
    fields = [f for f, _ in spec.must + spec.must_not] + ([spec.has_field] if spec.has_field else [])
    return sorted(set(fields))


def spec_matches(spec: FilterSpec | None, payload: dict[str, Any]) -> bool:
    """Whether a payload passes `spec`'s field conditions, as the engine would (ids and vectors unchecked)."""
    if spec is None:
        return True

    def holds(field: str, values: tuple[str, ...]) -> bool:
        return any(v in values for v in group_values(payload, field))

    return all(holds(f, v) for f, v in spec.must) and not any(holds(f, v) for f, v in spec.must_not) and (
        spec.has_field is None or bool(group_values(payload, spec.has_field)))


def group_values(payload: dict[str, Any], group_by: str) -> list[str]:
    """The groups a point falls in: its value of `group_by`, each value of an array; none if absent."""
    value = payload.get(group_by)
    if value is None:
        return []
    values = value if isinstance(value, list) else [value]
    return [str(v) for v in values if v is not None and not isinstance(v, (dict, list))]


@dataclass
class _Group:
    value: str
    hits: list[Hit] = field(default_factory=list)


def group_hits(hits: Sequence[Hit], group_by: str, k: int, group_size: int) -> list[tuple[str, list[Hit]]]:
    """Qdrant's grouping over hits sorted by score: the first `k` groups to appear, best first,
    each with its best `group_size` hits. A point in several groups (an array field) counts in each."""
    groups: dict[str, _Group] = {}
    for hit in hits:
        for value in group_values(hit.payload, group_by):
            group = groups.get(value)
            if group is None:
                if len(groups) >= k:
                    continue
                group = groups[value] = _Group(value)
            if len(group.hits) < group_size:
                group.hits.append(hit)
    return [(g.value, g.hits) for g in groups.values()]
