"""Identification over a candidate set held in memory: one matrix product, then index arrays.

A `TaxonTree` numbers the candidate taxa once (kingdoms first, species last) and keeps, for each
taxon, the index of its parent: the nearest named ancestor in the tree (a family whose order is
empty hangs under its class). `Candidates` adds the vectors that are compared with an image.

Per image, `identify_vectors` does:

- `sum` (pybioclip's method): logits `scale * V @ q` for every candidate species, a softmax over
  all of them through one vectorised logsumexp, then species probabilities added up the tree one
  rank at a time with `np.bincount` over the parent indexes. No Python loop over taxa, no
  truncation: every candidate species is in the softmax.
- `taxa` (each rank's own vectors, conditioned on the parent): P(child) = P(parent) x a softmax
  over the siblings' own vectors. So a child is never more probable than its parent, and the
  probabilities of a taxon's children add up to its own.

The best guess descends from the root through the most probable child at each step, so each
entry lies inside the one before it.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from taxonomy import Lineage, Rank, parse_key
from taxonomy.constants import KEY_SEPARATOR

logger = logging.getLogger(__name__)

METHOD_SUM = "sum"
METHOD_TAXA = "taxa"
METHODS: tuple[str, ...] = (METHOD_SUM, METHOD_TAXA)
ROOT = -1


def validate_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown prediction method {method!r}; expected one of {', '.join(METHODS)}")
    return method


def _named_ancestors(key: str) -> list[tuple[Rank, str]]:
    """(rank, key) of every named rank of `key`, kingdom first, the taxon itself last."""
    parts = key.split(KEY_SEPARATOR)
    return [(Rank(i), KEY_SEPARATOR.join(parts[: i + 1])) for i, name in enumerate(parts) if name]


class TaxonTree:
    """Named taxa numbered by rank (kingdoms first), each with the index of its parent (ROOT for kingdoms).

    Args:
        keys: taxon keys (SPEC §3); duplicates are merged.
        common_names: a common name per key ("" for none), kept for species.
        with_ancestors: also add every named ancestor of each key (the `sum` tree); without it an
            ancestor missing from `keys` is skipped and the taxon hangs under the nearest one present.
    """

    def __init__(self, keys: Sequence[str], common_names: Sequence[str] | None = None,
                 with_ancestors: bool = True) -> None:
        common_names = common_names if common_names is not None else [""] * len(keys)
        given: dict[str, str] = {}
        for key, common in zip(keys, common_names, strict=True):
            if key.count(KEY_SEPARATOR) >= len(Rank):
                raise ValueError(f"taxon key {key!r} has more than {len(Rank)} ranks (a '/' inside a name?)")
            if key:
                given.setdefault(key, common or "")
        present: set[str] = set(given)
        if with_ancestors:
            for key in given:
                present.update(k for _, k in _named_ancestors(key))
        by_rank: list[list[str]] = [[] for _ in Rank]
        for key in present:
            by_rank[key.count(KEY_SEPARATOR)].append(key)
        ordered = [key for keys_of_rank in by_rank for key in sorted(keys_of_rank)]
        self.keys: tuple[str, ...] = tuple(ordered)
        self.index: dict[str, int] = {key: i for i, key in enumerate(ordered)}
        self.common_names: dict[int, str] = {self.index[k]: c for k, c in given.items() if c}
        self.ranks = np.array([key.count(KEY_SEPARATOR) for key in ordered], dtype=np.int8)
        self.rank_starts = np.searchsorted(self.ranks, np.arange(len(Rank) + 1), side="left")
        parent = np.full(len(ordered), ROOT, dtype=np.int64)
        for i, key in enumerate(ordered):
            for _, ancestor in reversed(_named_ancestors(key)[:-1]):
                j = self.index.get(ancestor)
                if j is not None:
                    parent[i] = j
                    break
        self.parent = parent
        # Children grouped by parent (ROOT included) for the softmax among siblings and the descent.
        groups = parent + 1  # 0 is the root
        self._order = np.argsort(groups, kind="stable")
        sorted_groups = groups[self._order]
        self._group_ids, self._group_starts = np.unique(sorted_groups, return_index=True)
        self._group_of = np.searchsorted(self._group_ids, groups)  # each node's sibling group
        self._group_ends = np.append(self._group_starts[1:], len(ordered))

    def __len__(self) -> int:
        return len(self.keys)

    def rank_slice(self, rank: Rank) -> slice:
        return slice(int(self.rank_starts[rank]), int(self.rank_starts[rank + 1]))

    def children(self, node: int) -> np.ndarray:
        """Indexes of the children of `node` (ROOT for the kingdoms)."""
        position = np.searchsorted(self._group_ids, node + 1)
        if position >= len(self._group_ids) or self._group_ids[position] != node + 1:
            return np.zeros(0, dtype=np.int64)
        return self._order[self._group_starts[position]:self._group_ends[position]]

    def lineage(self, node: int) -> Lineage:
        return parse_key(self.keys[node]).with_common_name(self.common_names.get(node, ""))

    def rank(self, node: int) -> Rank:
        return Rank(int(self.ranks[node]))

    def ancestors(self, node: int) -> list[int]:
        """`node` and its ancestors in the tree, the node first."""
        out = []
        while node != ROOT:
            out.append(node)
            node = int(self.parent[node])
        return out

    # --- scores ---------------------------------------------------------------------------------

    def add_up(self, mass: np.ndarray) -> np.ndarray:
        """Each taxon's mass plus that of everything below it (in place), deepest rank first."""
        for rank in reversed(Rank):
            part = self.rank_slice(rank)
            if part.start == part.stop or rank == Rank.KINGDOM:
                continue
            parents = self.parent[part]
            inside = parents != ROOT  # only a lineage without a kingdom has none
            weights = mass[part]
            if not inside.all():
                parents, weights = parents[inside], weights[inside]
            mass[: part.start] += np.bincount(parents, weights=weights, minlength=part.start)
        return mass

    def conditional(self, logits: np.ndarray) -> np.ndarray:
        """P(node) = P(parent) x softmax of `logits` among the node's siblings, for every node."""
        ordered = logits[self._order]
        group_max = np.maximum.reduceat(ordered, self._group_starts)
        shifted = np.exp(ordered - group_max[self._group_of[self._order]])
        log_sum = np.log(np.add.reduceat(shifted, self._group_starts)) + group_max
        log_cond = logits - log_sum[self._group_of]
        log_p = np.zeros(len(logits), dtype=np.float64)
        for rank in Rank:
            part = self.rank_slice(rank)
            if part.start == part.stop:
                continue
            parents = self.parent[part]
            above = np.where(parents == ROOT, 0.0, log_p[np.maximum(parents, 0)])
            log_p[part] = above + log_cond[part]
        return np.exp(log_p)


@dataclass(frozen=True)
class Candidates:
    """What an image is compared with: a tree, and the vectors of some of its taxa.

    `rows[i]` is the tree node of `vectors[i]`: the candidate species for `sum`, every taxon for `taxa`.
    """

    method: str
    tree: TaxonTree
    vectors: np.ndarray  # (m, d) float32, unit rows
    rows: np.ndarray  # (m,) node indexes

    def __post_init__(self) -> None:
        validate_method(self.method)
        if self.vectors.ndim != 2 or len(self.vectors) != len(self.rows):
            raise ValueError(f"Candidates: {len(self.rows)} rows but vectors shaped {self.vectors.shape}")
        if self.method == METHOD_TAXA and len(self.rows) != len(self.tree):
            raise ValueError("Candidates: the `taxa` method needs a vector for every taxon of the tree")

    @classmethod
    def build(cls, method: str, keys: Sequence[str], vectors: np.ndarray,
              common_names: Sequence[str] | None = None) -> Candidates:
        """Candidates from taxon keys and their vectors (`sum`: species only; `taxa`: any rank)."""
        validate_method(method)
        keys = list(keys)
        if method == METHOD_SUM:
            species = [i for i, key in enumerate(keys) if key.count(KEY_SEPARATOR) == Rank.SPECIES]
            keys = [keys[i] for i in species]
            vectors = vectors[species] if len(species) != len(vectors) else vectors
            common_names = [common_names[i] for i in species] if common_names is not None else None
        tree = TaxonTree(keys, common_names, with_ancestors=method == METHOD_SUM)
        rows = np.array([tree.index[key] for key in keys], dtype=np.int64)
        unique_rows, first = np.unique(rows, return_index=True)
        matrix = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32)[first])
        return cls(method, tree, matrix, unique_rows)

    @property
    def species_count(self) -> int:
        return int(np.count_nonzero(self.tree.ranks[self.rows] == Rank.SPECIES))

    def scores(self, logits: np.ndarray) -> np.ndarray:
        """The probability of every tree node for one image's `logits` (one per vector row)."""
        if self.method == METHOD_SUM:
            # exp in float32 (the logits are float32 already), sums in float64
            weights = np.exp(np.asarray(logits, dtype=np.float32) - np.float32(np.max(logits)))
            mass = np.zeros(len(self.tree), dtype=np.float64)
            mass[self.rows] = weights
            mass /= weights.sum(dtype=np.float64)
            return self.tree.add_up(mass)
        logits = np.asarray(logits, dtype=np.float64)
        full = np.empty(len(self.tree), dtype=np.float64)
        full[self.rows] = logits
        return self.tree.conditional(full)

    def logits(self, queries: np.ndarray, logit_scale: float) -> np.ndarray:
        """`logit_scale * cosine` of each query with each candidate, one matrix product: (B, m)."""
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        # (m, d) @ (d, B): for one query BLAS runs a matrix-vector product, faster than a 1-row GEMM
        logits = (self.vectors @ queries.T).T
        logits *= np.float32(logit_scale)
        return logits

    def best_path(self, scores: np.ndarray) -> list[int]:
        """From the root down, the most probable child of the last node chosen (ties: smallest key)."""
        path: list[int] = []
        node = ROOT
        while True:
            children = self.tree.children(node)
            if len(children) == 0:
                return path
            # children are sorted by key inside a rank; argmax keeps the first of equal scores
            best = children[np.argmax(scores[children])]
            path.append(int(best))
            node = int(best)

    def top(self, scores: np.ndarray, rank: Rank, k: int) -> list[int]:
        """The `k` most probable taxa of `rank`, best first (ties: smallest key)."""
        part = self.tree.rank_slice(rank)
        values = scores[part]
        if len(values) == 0:
            return []
        if len(values) > k:
            chosen = np.argpartition(values, len(values) - k)[len(values) - k:]
        else:
            chosen = np.arange(len(values))
        chosen = chosen[np.lexsort((chosen, -values[chosen]))]
        return [part.start + int(i) for i in chosen]
