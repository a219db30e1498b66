"""Nearest taxa and their probabilities, from scored taxa to consistent predictions and pybioclip rows.

Two methods give probabilities at a rank (SPEC §5):

- `sum` (pybioclip's): a softmax over the species, `logit_scale * cosine`, then each species'
  probability is added to each of its ancestors. One search; every rank is exact for the species
  that were scored.
- `taxa`: a softmax over the rank's own taxon vectors (each rank separately).

The logit scale is the model's own learned `logit_scale.exp()`, as pybioclip uses it (about 100
for BioCLIP; 14.3 for an untrained model); `CLIP_LOGIT_SCALE` (100, CLIP's clamp) is the fallback
when no model is at hand. Only the species the store returned are in the softmax
(`SearchService` asks for all of them up to a limit): with a scale of 100 the ones left out carry
no visible probability.

The best guess at every rank is chosen top-down: the best kingdom, then the best phylum inside
that kingdom, and so on. So the genus shown always lies inside the family shown, which picking
the best of each rank on its own does not guarantee (two genera of one family can together
outweigh a genus of another family that is the best single genus).

Pure numpy and records: no store, no model. `embed.search` feeds it.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from taxonomy import Lineage, Rank

logger = logging.getLogger(__name__)

METHOD_SUM = "sum"
METHOD_TAXA = "taxa"
METHODS: tuple[str, ...] = (METHOD_SUM, METHOD_TAXA)
CLIP_LOGIT_SCALE = 100.0

# pybioclip's CSV columns (its predict.py: `file_name`, each rank, `species_epithet` before
# `species`, `common_name` at species rank only, then `score`).
FILE_NAME_COLUMN = "file_name"
SPECIES_EPITHET_COLUMN = "species_epithet"
COMMON_NAME_COLUMN = "common_name"
SCORE_COLUMN = "score"


def validate_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown prediction method {method!r}; expected one of {', '.join(METHODS)}")
    return method


@dataclass(frozen=True)
class ScoredTaxon:
    """A taxon the store returned for a query: its lineage (truncated at its rank) and cosine similarity."""

    lineage: Lineage
    rank: Rank
    cosine: float

    @property
    def key(self) -> str:
        return self.lineage.key(self.rank)


@dataclass(frozen=True)
class TaxonPrediction:
    """One predicted taxon with its probability (`score`, 0..1)."""

    rank: Rank
    taxon: str  # the key (SPEC §3)
    lineage: Lineage  # truncated at `rank`; common name only at species rank
    score: float

    @property
    def name(self) -> str:
        """`Pica hudsonia` at species rank, the rank's own name above it."""
        return self.lineage.binomial if self.rank == Rank.SPECIES else self.lineage.get(self.rank)

    @property
    def common_name(self) -> str:
        return self.lineage.common_name

    def pybioclip_row(self, file_name: str) -> dict[str, object]:
        """This prediction as a row of `pybioclip predict --format csv` (see `pybioclip_columns`)."""
        row: dict[str, object] = {FILE_NAME_COLUMN: file_name}
        for rank in Rank:
            if rank > self.rank:
                break
            if rank == Rank.SPECIES:
                row[SPECIES_EPITHET_COLUMN] = self.lineage.species
                row[rank.label] = self.lineage.binomial
                row[COMMON_NAME_COLUMN] = self.lineage.common_name
            else:
                row[rank.label] = self.lineage.get(rank)
        row[SCORE_COLUMN] = self.score
        return row


def pybioclip_columns(rank: Rank) -> list[str]:
    """pybioclip's header at `rank`: `file_name, kingdom, ..., <rank>, score`, and at species rank
    `file_name, kingdom, phylum, class, order, family, genus, species_epithet, species, common_name, score`."""
    columns = [FILE_NAME_COLUMN]
    for r in Rank:
        if r > rank:
            break
        if r == Rank.SPECIES:
            columns += [SPECIES_EPITHET_COLUMN, r.label, COMMON_NAME_COLUMN]
        else:
            columns.append(r.label)
    return columns + [SCORE_COLUMN]


@dataclass(frozen=True)
class Identification:
    """What a query image (or text) is: the best guess at every rank, and the top taxa of each rank.

    `path` runs kingdom first; each entry lies inside the one before it. A rank that the chosen
    lineage leaves empty (NCBI gives some fish no order) has no entry. `ranked[rank]` lists the
    most probable taxa of that rank, best first, with no constraint between ranks.
    """

    method: str
    logit_scale: float
    path: tuple[TaxonPrediction, ...]
    ranked: dict[Rank, tuple[TaxonPrediction, ...]] = field(default_factory=dict)

    def at(self, rank: Rank) -> TaxonPrediction | None:
        """The best guess at `rank` (consistent with the ranks above), or None when it is empty."""
        return next((p for p in self.path if p.rank == rank), None)

    def top(self, rank: Rank, k: int | None = None) -> tuple[TaxonPrediction, ...]:
        predictions = self.ranked.get(Rank.parse(rank), ())
        return predictions if k is None else predictions[:k]


def softmax(cosines: Sequence[float] | np.ndarray, logit_scale: float) -> np.ndarray:
    """`softmax(logit_scale * cosines)` in float64, stable for large scales."""
    logits = float(logit_scale) * np.asarray(cosines, dtype=np.float64)
    if logits.size == 0:
        return logits
    logits -= logits.max()
    weights = np.exp(logits)
    return weights / weights.sum()


@dataclass
class _Node:
    lineage: Lineage  # truncated at its rank; may have an empty name at that rank (a pass-through)
    rank: Rank
    score: float = 0.0


def _prediction(node: _Node) -> TaxonPrediction:
    return TaxonPrediction(node.rank, node.lineage.key(node.rank), node.lineage, float(node.score))


def _ranked(levels: dict[Rank, dict[str, _Node]], k: int) -> dict[Rank, tuple[TaxonPrediction, ...]]:
    ranked: dict[Rank, tuple[TaxonPrediction, ...]] = {}
    for rank, nodes in levels.items():
        named = [n for n in nodes.values() if n.lineage.get(rank)]
        named.sort(key=lambda n: (-n.score, n.lineage.key(rank)))
        ranked[rank] = tuple(_prediction(n) for n in named[:k])
    return ranked


def _inside(key: str, clade: str) -> bool:
    return not clade or key.startswith(clade + "/")


def sum_species(species: Sequence[ScoredTaxon], logit_scale: float, k: int = 5) -> Identification:
    """pybioclip's method: softmax over the species, probabilities added up each lineage.

    The path descends through every rank, empty ones included (as pass-through nodes), choosing
    the child with the largest sum; empty-named nodes are left out of the result.
    """
    species = [s for s in species if s.rank == Rank.SPECIES]
    if not species:
        return Identification(METHOD_SUM, logit_scale, (), {})
    probs = softmax([s.cosine for s in species], logit_scale)
    levels: dict[Rank, dict[str, _Node]] = {rank: {} for rank in Rank}
    for item, p in zip(species, probs):
        for rank in Rank:
            key = item.lineage.key(rank)
            node = levels[rank].get(key)
            if node is None:
                node = levels[rank][key] = _Node(item.lineage.truncate(rank), rank)
            node.score += float(p)
    path: list[TaxonPrediction] = []
    chosen = ""
    for rank in Rank:
        children = [n for key, n in levels[rank].items() if rank == Rank.KINGDOM or key.startswith(chosen + "/")]
        if not children:
            break
        best = max(children, key=lambda n: (n.score, _tiebreak(n.lineage.key(rank))))
        chosen = best.lineage.key(rank)
        if best.lineage.get(rank):
            path.append(_prediction(best))
    return Identification(METHOD_SUM, logit_scale, tuple(path), _ranked(levels, k))


def own_vectors(per_rank: dict[Rank, Sequence[ScoredTaxon]], logit_scale: float, k: int = 5) -> Identification:
    """The rank's own taxon vectors: a softmax per rank over that rank's taxa.

    The path takes, rank by rank, the most probable taxon inside the last one chosen; a rank
    with no taxon inside it (an empty rank of that lineage) is skipped.
    """
    levels: dict[Rank, dict[str, _Node]] = {}
    for rank in Rank:
        scored = [s for s in per_rank.get(rank, ()) if s.rank == rank]
        probs = softmax([s.cosine for s in scored], logit_scale)
        levels[rank] = {s.key: _Node(s.lineage.truncate(rank), rank, float(p)) for s, p in zip(scored, probs)}
    path: list[TaxonPrediction] = []
    chosen = ""
    for rank in Rank:
        inside = [n for key, n in levels[rank].items() if _inside(key, chosen)]
        if not inside:
            continue
        best = max(inside, key=lambda n: (n.score, _tiebreak(n.lineage.key(rank))))
        chosen = best.lineage.key(rank)
        path.append(_prediction(best))
    return Identification(METHOD_TAXA, logit_scale, tuple(path), _ranked(levels, k))


def _tiebreak(key: str) -> tuple[int, ...]:
    # max() keeps the first of equal scores; make ties independent of input order: smallest key wins.
    return tuple(-ord(c) for c in key)


@dataclass(frozen=True)
class TreeRow:
    """One line of a prediction tree: a taxon, its depth in the drawing and its probability."""

    prediction: TaxonPrediction
    depth: int
    on_path: bool  # part of the best guess


def prediction_tree(identification: Identification, rank: Rank, k: int = 5) -> list[TreeRow]:
    """The top `k` taxa at `rank` and their ancestors as a tree in drawing order (preorder).

    Ancestors carry their own probabilities (from `identification.ranked`, or summed from the
    rows below when they fell outside the top list), so every parent is at least as probable as
    each child under the `sum` method. Siblings are sorted by probability.
    """
    rank = Rank.parse(rank)
    leaves = list(identification.top(rank, k))
    on_path = {p.taxon for p in identification.path}
    known: dict[str, TaxonPrediction] = {}
    for predictions in identification.ranked.values():
        for p in predictions:
            known[p.taxon] = p
    for p in identification.path:
        known.setdefault(p.taxon, p)
    children: dict[str, list[str]] = defaultdict(list)
    nodes: dict[str, TaxonPrediction] = {}
    for leaf in leaves:
        parent = ""
        for r in Rank:
            if r > rank:
                break
            name = leaf.lineage.get(r)
            if not name:
                continue
            key = leaf.lineage.key(r)
            if key not in nodes:
                nodes[key] = known.get(key) or TaxonPrediction(r, key, leaf.lineage.truncate(r), 0.0)
                children[parent].append(key)
            parent = key
    # Fill ancestors that were outside every top list with the sum of what is drawn below them.
    for key in sorted(nodes, key=lambda k_: -k_.count("/")):
        if key not in known:
            total = sum(nodes[c].score for c in children.get(key, []))
            p = nodes[key]
            nodes[key] = TaxonPrediction(p.rank, p.taxon, p.lineage, total)
    rows: list[TreeRow] = []

    def walk(parent: str, depth: int) -> None:
        for key in sorted(children.get(parent, []), key=lambda c: (-nodes[c].score, c)):
            rows.append(TreeRow(nodes[key], depth, key in on_path))
            walk(key, depth + 1)

    walk("", 0)
    return rows
