"""Visual traits that evolve down the tree: each taxon is its parent plus a change seeded by its key.

The kingdom draws everything afresh; each lower rank moves every continuous gene by a step that
shrinks with depth (`constants.STEP`), and re-draws the discrete traits only at the rank that owns
them (form, style) or with a falling probability (pattern, habitat). Traits depend on the taxon key
alone, not on the collection seed nor on which other taxa are drawn, so a taxon always looks the same.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from demo.constants import (
    FORM_RANK, FORMS, GENES, HABITAT_CHANGE, HABITATS_OF_PLAN, NAMED_FORMS, NAMED_HABITATS, NAMED_STYLES,
    PATTERN_CHANGE, PATTERNS, PLAN_OF_KINGDOM, PLANS, STEP, STYLE_RANK, STYLES, WRAPPING_GENES,
)
from taxonomy import Lineage, Rank

logger = logging.getLogger(__name__)

_WRAPS = np.array([name in WRAPPING_GENES for name in GENES])
_GENE_INDEX = {name: i for i, name in enumerate(GENES)}

# Kingdom-level draws of a few genes for each plan, so plants start green and fungi earthy;
# lower ranks drift freely from there.
PLAN_PRIORS: dict[str, dict[str, tuple[float, float]]] = {
    "plant": {"hue": (0.24, 0.36), "saturation": (0.45, 0.75), "value": (0.45, 0.7)},
    "fungus": {"hue": (0.04, 0.12), "saturation": (0.35, 0.7), "value": (0.55, 0.85)},
    "creature": {},
}


def keyed_rng(*parts: object) -> np.random.Generator:
    """A generator seeded by the SHA-256 of `parts`: the same parts give the same draws everywhere."""
    digest = hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).digest()
    return np.random.default_rng(np.frombuffer(digest, dtype=np.uint32))


@dataclass(frozen=True)
class Traits:
    """What a taxon looks like: a body plan, its discrete traits and the continuous genes."""

    key: str
    plan: str  # constants.PLANS
    form: str  # constants.FORMS[plan]
    style: str  # constants.STYLES[form]
    pattern: str  # constants.PATTERNS
    habitat: str  # constants.HABITATS
    genes: tuple[float, ...]  # in constants.GENES order, each in [0, 1]

    def g(self, name: str) -> float:
        """One gene by name."""
        return self.genes[_GENE_INDEX[name]]

    def vector(self) -> np.ndarray:
        return np.asarray(self.genes)


def _drift(genes: np.ndarray, step: float, rng: np.random.Generator) -> np.ndarray:
    moved = genes + rng.normal(0.0, step, size=genes.shape)
    wrapped = np.mod(moved, 1.0)
    reflected = 1.0 - np.abs(1.0 - np.mod(moved, 2.0))  # bounce off 0 and 1
    return np.where(_WRAPS, wrapped, reflected)


def _choose(options: tuple[str, ...], named: str | None, rng: np.random.Generator) -> str:
    draw = options[int(rng.integers(len(options)))]  # drawn even when named: the stream stays aligned
    return named if named in options else draw


def _kingdom(key: str, name: str) -> Traits:
    rng = keyed_rng("traits", key)
    plan = _choose(PLANS, PLAN_OF_KINGDOM.get(name), rng)
    genes = rng.uniform(0.0, 1.0, size=len(GENES))
    for gene, (low, high) in PLAN_PRIORS[plan].items():
        genes[_GENE_INDEX[gene]] = low + (high - low) * genes[_GENE_INDEX[gene]]
    form = _choose(FORMS[plan], None, rng)
    return Traits(
        key=key, plan=plan, form=form, style=_choose(STYLES[form], None, rng),
        pattern=_choose(PATTERNS, None, rng), habitat=_choose(HABITATS_OF_PLAN[plan], None, rng),
        genes=tuple(float(x) for x in genes),
    )


def _child(parent: Traits, key: str, name: str, rank: Rank) -> Traits:
    rng = keyed_rng("traits", key)
    genes = _drift(parent.vector(), STEP[rank], rng)
    form, style = parent.form, parent.style
    if rank == FORM_RANK[parent.plan]:
        form = _choose(FORMS[parent.plan], NAMED_FORMS.get(name), rng)
        style = _choose(STYLES[form], None, rng)
    if rank == STYLE_RANK[parent.plan]:
        style = _choose(STYLES[form], NAMED_STYLES.get(name), rng)
    elif rank > STYLE_RANK[parent.plan] and NAMED_STYLES.get(name) in STYLES[form]:
        style = NAMED_STYLES[name]
    pattern = parent.pattern
    if rng.uniform() < PATTERN_CHANGE.get(rank, 0.0):
        pattern = _choose(PATTERNS, None, rng)
    habitat = parent.habitat
    redraw_habitat = rank <= Rank.CLASS or rng.uniform() < HABITAT_CHANGE.get(rank, 0.0)
    if redraw_habitat:
        habitat = _choose(HABITATS_OF_PLAN[parent.plan], NAMED_HABITATS.get(name) if rank == Rank.CLASS else None, rng)
    return Traits(key, parent.plan, form, style, pattern, habitat, tuple(float(x) for x in genes))


@lru_cache(maxsize=8192)
def _traits_of_names(names: tuple[str, ...]) -> Traits:
    key = "/".join(names)
    if len(names) == 1:
        return _kingdom(key, names[0])
    parent = _traits_of_names(names[:-1])
    return _child(parent, key, names[-1], Rank(len(names) - 1))


def traits_of(lineage: Lineage, rank: Rank | None = None) -> Traits:
    """The traits of the taxon `lineage` names at `rank` (its deepest rank by default).

    Raises:
        ValueError: for an empty lineage.
    """
    rank = lineage.deepest_rank if rank is None else rank
    if rank is None:
        raise ValueError("an empty lineage has no traits; give at least a kingdom")
    return _traits_of_names(lineage.names[: rank + 1])
