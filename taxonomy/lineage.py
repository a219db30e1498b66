"""The lineage record, its normalisation (SPEC §2) and taxon keys (SPEC §3)."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, fields, replace

from taxonomy.constants import KEY_SEPARATOR, KINGDOM_ALIASES, RANK_LABELS, Rank

# Fixed namespace so that every build of every machine derives the same point ids.
POINT_NAMESPACE = uuid.UUID("6f1c2f1e-6b8e-5d7a-9a43-1f0b7c2d4e10")


def _clean(value: object) -> str:
    if value is None:
        return ""
    text = " ".join(str(value).split())
    return "" if text.lower() in {"nan", "none", "null"} else text


def _capitalise(name: str) -> str:
    return name[:1].upper() + name[1:].lower() if name else ""


@dataclass(frozen=True)
class Lineage:
    """Seven ranks from kingdom to species epithet, plus a common name.

    Field names equal the rank labels, so `asdict()` goes straight to a CSV row.
    `species` holds the epithet (`hudsonia`), as TreeOfLife-10M does.
    """

    kingdom: str = ""
    phylum: str = ""
    cls: str = ""  # `class` is a keyword; `Lineage.get(Rank.CLASS)` and `as_dict()` use "class"
    order: str = ""
    family: str = ""
    genus: str = ""
    species: str = ""
    common_name: str = ""

    @classmethod
    def from_ranks(
        cls, names: "dict[str, object] | list[object] | tuple[object, ...]", common_name: object = ""
    ) -> "Lineage":
        """Build a normalised lineage from a mapping keyed by rank label or a list of 7 names."""
        if isinstance(names, dict):
            values = [names.get(label, "") for label in RANK_LABELS]
            common_name = common_name or names.get("common_name", "")
        else:
            if len(names) > len(Rank):
                raise ValueError(f"a lineage has at most {len(Rank)} ranks, got {len(names)}: {names!r}")
            values = list(names) + [""] * (len(Rank) - len(names))
        return cls(*values, common_name=common_name).normalised()

    def normalised(self) -> "Lineage":
        """Trim names, capitalise kingdom..genus, lower-case the epithet, map NCBI kingdoms.

        A binomial in `species` whose first word is the genus is reduced to the epithet.
        """
        names = [_clean(getattr(self, f.name)) for f in fields(self)][: len(Rank)]
        names = [_capitalise(n) for n in names[: Rank.SPECIES]] + [names[Rank.SPECIES]]
        names[Rank.KINGDOM] = KINGDOM_ALIASES.get(names[Rank.KINGDOM], names[Rank.KINGDOM])
        species = names[Rank.SPECIES]
        words = species.split(" ")
        if len(words) > 1 and (not names[Rank.GENUS] or words[0].lower() == names[Rank.GENUS].lower()):
            if not names[Rank.GENUS]:
                names[Rank.GENUS] = _capitalise(words[0])
            species = " ".join(words[1:])
        names[Rank.SPECIES] = species.lower()
        return Lineage(*names, common_name=_clean(self.common_name))

    def get(self, rank: Rank) -> str:
        return getattr(self, _FIELD_OF[rank])

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.get(rank) for rank in Rank)

    @property
    def deepest_rank(self) -> Rank | None:
        """The lowest rank that has a name, or None for an empty lineage."""
        known = [rank for rank in Rank if self.get(rank)]
        return known[-1] if known else None

    @property
    def is_empty(self) -> bool:
        return self.deepest_rank is None

    @property
    def binomial(self) -> str:
        """`Pica hudsonia`, or "" without both genus and epithet."""
        return f"{self.genus} {self.species}" if self.genus and self.species else ""

    def truncate(self, rank: Rank) -> "Lineage":
        """The lineage of this taxon's ancestor at `rank` (no common name below species)."""
        names = list(self.names[: rank + 1]) + [""] * (len(Rank) - rank - 1)
        return Lineage(*names, common_name=self.common_name if rank == Rank.SPECIES else "")

    def key(self, rank: Rank | None = None) -> str:
        """`Animalia/Chordata/.../Pica/hudsonia`: names from kingdom to `rank`, empty ones kept."""
        rank = self.deepest_rank if rank is None else rank
        if rank is None:
            return ""
        return KEY_SEPARATOR.join(self.names[: rank + 1])

    def keys(self) -> list[str]:
        """The keys of every named ancestor and of the taxon itself, kingdom first."""
        deepest = self.deepest_rank
        if deepest is None:
            return []
        return [self.key(rank) for rank in Rank if rank <= deepest and self.get(rank)]

    def as_dict(self) -> dict[str, str]:
        """Rank labels (`class`, not `cls`) plus `common_name`."""
        row = {rank.label: self.get(rank) for rank in Rank}
        row["common_name"] = self.common_name
        return row

    def with_common_name(self, common_name: str) -> "Lineage":
        return replace(self, common_name=_clean(common_name))


_FIELD_OF = {rank: ("cls" if rank == Rank.CLASS else rank.label) for rank in Rank}


def parse_key(key: str) -> Lineage:
    """The inverse of `Lineage.key`: a key back to a lineage truncated at its rank."""
    parts = key.split(KEY_SEPARATOR)
    if not key or len(parts) > len(Rank):
        raise ValueError(f"not a taxon key: {key!r}; expected 1 to {len(Rank)} '/'-separated names")
    return Lineage(*parts, *[""] * (len(Rank) - len(parts)))


def rank_of_key(key: str) -> Rank:
    """The rank of the taxon a key names: the number of segments minus one."""
    return Rank(len(key.split(KEY_SEPARATOR)) - 1)


def point_id(key: str) -> str:
    """The UUIDv5 point id of a key (taxon key or image identity), stable across runs."""
    return str(uuid.uuid5(POINT_NAMESPACE, key))
