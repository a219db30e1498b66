"""Nearest taxa and their probabilities: records, consistent predictions, pybioclip rows, the tree drawn.

Two methods give probabilities at every rank (SPEC §5); `embed.candidates` computes them:

- `sum` (pybioclip's): a softmax over every candidate species, `logit_scale * cosine`, then each
  species' probability is added to each of its ancestors.
- `taxa`: each rank's own taxon vectors, conditioned on the parent: P(child) = P(parent) x a
  softmax over the siblings' vectors. A child is never more probable than its parent.

The logit scale is the model's own learned `logit_scale.exp()`, as pybioclip uses it (about 100
for BioCLIP; 14.3 for an untrained model); `CLIP_LOGIT_SCALE` (100, CLIP's clamp) is the fallback
when no model is at hand.

The best guess (the headline) is chosen top-down: the most probable kingdom, then the most
probable child inside it, and so on. So the genus shown always lies inside the family shown,
which picking the best of each rank on its own does not guarantee (two genera of one family can
together outweigh a genus of another family that is the best single genus). The most probable
species on its own (`top(SPECIES)[0]`) may therefore differ from the headline species.

Pure numpy and records: no store, no model. `embed.search` feeds it.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from embed.candidates import METHOD_SUM, METHOD_TAXA, METHODS, Candidates, validate_method
from taxonomy import Lineage, Rank

logger = logging.getLogger(__name__)

CLIP_LOGIT_SCALE = 100.0

# pybioclip's CSV columns (its predict.py: `file_name`, each rank, `species_epithet` before
# `species`, `common_name` at species rank only, then `score`).
FILE_NAME_COLUMN = "file_name"
SPECIES_EPITHET_COLUMN = "species_epithet"
COMMON_NAME_COLUMN = "common_name"
SCORE_COLUMN = "score"
RANK_COLUMN = "rank"  # --trust
CLASSIFICATION_COLUMN = "classification"  # --cls, --bins
ERROR_COLUMN = "error"  # added when an image failed


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

    `path` runs kingdom first; each entry lies inside the one before it (the headline is its last
    entry). A rank that the chosen lineage leaves empty (NCBI gives some fish no order) has no
    entry. `ranked[rank]` lists the most probable taxa of that rank, best first, with no
    constraint between ranks. `known` holds every prediction made, by key: the path, the ranked
    taxa and all their ancestors, each with its own probability.
    """

    method: str
    logit_scale: float
    path: tuple[TaxonPrediction, ...]
    ranked: dict[Rank, tuple[TaxonPrediction, ...]] = field(default_factory=dict)
    known: dict[str, TaxonPrediction] = field(default_factory=dict)
    candidates: int = 0  # candidate species (sum) or taxa (taxa) compared with the query

    def at(self, rank: Rank) -> TaxonPrediction | None:
        """The best guess at `rank` (consistent with the ranks above), or None when it is empty."""
        return next((p for p in self.path if p.rank == rank), None)

    def top(self, rank: Rank, k: int | None = None) -> tuple[TaxonPrediction, ...]:
        predictions = self.ranked.get(Rank.parse(rank), ())
        return predictions if k is None else predictions[:k]

    def headline(self, rank: Rank = Rank.SPECIES) -> TaxonPrediction | None:
        """The deepest entry of the best guess down to `rank`."""
        inside = [p for p in self.path if p.rank <= rank]
        return inside[-1] if inside else None

    def trusted(self, threshold: float, rank: Rank = Rank.SPECIES) -> TaxonPrediction | None:
        """The deepest entry of the best guess, down to `rank`, whose probability reaches `threshold`
        (the rank you can trust); None when not even a kingdom does."""
        reached = [p for p in self.path if p.rank <= rank and p.score >= threshold]
        return reached[-1] if reached else None


def softmax(cosines: Sequence[float] | np.ndarray, logit_scale: float) -> np.ndarray:
    """`softmax(logit_scale * cosines)` in float64, stable for large scales."""
    logits = float(logit_scale) * np.asarray(cosines, dtype=np.float64)
    if logits.size == 0:
        return logits
    logits -= logits.max()
    weights = np.exp(logits)
    return weights / weights.sum()


def identification(candidates: Candidates, logits: np.ndarray, logit_scale: float, k: int = 5) -> Identification:
    """One query's `Identification` from its logits against `candidates` (see `embed.candidates`)."""
    tree = candidates.tree
    if len(candidates.rows) == 0:
        return Identification(candidates.method, logit_scale, (), {}, {}, 0)
    scores = candidates.scores(logits)
    made: dict[int, TaxonPrediction] = {}

    def prediction(node: int) -> TaxonPrediction:
        p = made.get(node)
        if p is None:
            p = made[node] = TaxonPrediction(tree.rank(node), tree.keys[node], tree.lineage(node), float(scores[node]))
        return p

    path = tuple(prediction(n) for n in candidates.best_path(scores))
    ranked: dict[Rank, tuple[TaxonPrediction, ...]] = {}
    for rank in Rank:
        nodes = candidates.top(scores, rank, k)
        ranked[rank] = tuple(prediction(n) for n in nodes)
        for node in nodes:
            for ancestor in tree.ancestors(node)[1:]:
                prediction(ancestor)
    known = {p.taxon: p for p in made.values()}
    count = candidates.species_count if candidates.method == METHOD_SUM else len(candidates.rows)
    return Identification(candidates.method, logit_scale, path, ranked, known, count)


def identify_vectors(candidates: Candidates, queries: np.ndarray, logit_scale: float,
                     k: int = 5) -> list[Identification]:
    """One `Identification` per row of `queries`: one matrix product for the whole batch."""
    logits = candidates.logits(queries, logit_scale)
    return [identification(candidates, row, logit_scale, k) for row in logits]


def _from_scored(method: str, scored: Sequence[ScoredTaxon], logit_scale: float, k: int) -> Identification:
    unique = {s.key: s for s in scored}
    keys = list(unique)
    commons = [unique[key].lineage.common_name for key in keys]
    cosines = np.array([unique[key].cosine for key in keys], dtype=np.float64)
    # The candidates' vectors are not needed here: the cosines are given, so their logits are too.
    candidates = Candidates.build(method, keys, np.zeros((len(keys), 1), dtype=np.float32), commons)
    order = {key: i for i, key in enumerate(keys)}
    logits = float(logit_scale) * cosines[[order[candidates.tree.keys[r]] for r in candidates.rows]]
    return identification(candidates, logits, logit_scale, k)


def sum_species(species: Sequence[ScoredTaxon], logit_scale: float, k: int = 5) -> Identification:
    """pybioclip's method over scored species: softmax over them, probabilities added up each lineage."""
    return _from_scored(METHOD_SUM, [s for s in species if s.rank == Rank.SPECIES], logit_scale, k)


def own_vectors(per_rank: dict[Rank, Sequence[ScoredTaxon]], logit_scale: float, k: int = 5) -> Identification:
    """Each rank's own taxon vectors, conditioned on the parent (see `embed.candidates`)."""
    scored = [s for rank, items in per_rank.items() for s in items if s.rank == rank]
    return _from_scored(METHOD_TAXA, scored, logit_scale, k)


@dataclass(frozen=True)
class TreeRow:
    """One line of a prediction tree: a taxon, its depth in the drawing and its probability."""

    prediction: TaxonPrediction
    depth: int
    on_path: bool  # part of the best guess


def prediction_tree(identification: Identification, rank: Rank, k: int = 5) -> list[TreeRow]:
    """The top `k` taxa at `rank`, the best guess down to `rank`, and their ancestors, as a tree in
    drawing order (preorder). The headline is always drawn.

    Every taxon carries its own probability (`identification.known`), so no child is drawn more
    probable than its parent. Siblings are sorted by probability.
    """
    rank = Rank.parse(rank)
    leaves = list(identification.top(rank, k))
    headline = identification.headline(rank)
    if headline is not None and all(leaf.taxon != headline.taxon for leaf in leaves):
        leaves.append(headline)
    on_path = {p.taxon for p in identification.path}
    known = dict(identification.known)
    for p in identification.path:
        known.setdefault(p.taxon, p)
    children: dict[str, list[str]] = defaultdict(list)
    nodes: dict[str, TaxonPrediction] = {}
    for leaf in leaves:
        parent = ""
        for r in Rank:
            if r > leaf.rank:
                break
            name = leaf.lineage.get(r)
            if not name:
                continue
            key = leaf.lineage.key(r)
            if key not in known:
                continue  # an ancestor that is no candidate (the `taxa` method): hang below the one above
            if key not in nodes:
                nodes[key] = known[key]
                children[parent].append(key)
            parent = key
    rows: list[TreeRow] = []

    def walk(parent: str, depth: int) -> None:
        for key in sorted(children.get(parent, []), key=lambda c: (-nodes[c].score, c)):
            rows.append(TreeRow(nodes[key], depth, key in on_path))
            walk(key, depth + 1)

    walk("", 0)
    return rows


def trust_columns() -> list[str]:
    """`--trust`'s header: the species columns, then `rank` and `score`."""
    return pybioclip_columns(Rank.SPECIES)[:-1] + [RANK_COLUMN, SCORE_COLUMN]


def trust_row(file_name: str, prediction: TaxonPrediction | None) -> dict[str, object]:
    """One `--trust` row: the names down to the trusted rank, blank below it, then its rank and score."""
    row: dict[str, object] = {column: "" for column in trust_columns()}
    row[FILE_NAME_COLUMN] = file_name
    if prediction is None:
        return row
    row.update({k: v for k, v in prediction.pybioclip_row(file_name).items() if k != SCORE_COLUMN})
    row[RANK_COLUMN] = prediction.rank.label
    row[SCORE_COLUMN] = prediction.score
    return row


def label_columns() -> list[str]:
    """`--cls` and `--bins` header, pybioclip's: `file_name, classification, score`."""
    return [FILE_NAME_COLUMN, CLASSIFICATION_COLUMN, SCORE_COLUMN]


def label_rows(file_name: str, logits: np.ndarray, labels: Sequence[str], k: int,
               bins: dict[str, str] | None = None) -> list[dict[str, object]]:
    """pybioclip's custom-label rows for one image: a softmax over `labels`, then the top `k`
    labels, or with `bins` (label -> bin) the top `k` bins by summed probability."""
    probs = softmax(logits, 1.0)
    if bins is None:
        scores: dict[str, float] = {label: float(p) for label, p in zip(labels, probs, strict=True)}
    else:
        scores = defaultdict(float)
        for label, p in zip(labels, probs, strict=True):
            scores[bins[label]] += float(p)
    # sorted() is stable: equal scores keep the order of the labels (or of the bins' first labels)
    best = sorted(scores, key=lambda name: -scores[name])[:k]
    return [{FILE_NAME_COLUMN: file_name, CLASSIFICATION_COLUMN: name, SCORE_COLUMN: scores[name]} for name in best]
