"""How one search runs: the HNSW beam, ACORN, or an exact scan, chosen from the filter's size.

A filter cuts most links of the HNSW graph: within a clade holding 6 % of a million points the
beam strands in islands (recall@10 0.79 at `hnsw_ef` 128). Qdrant offers three remedies, and
`plan_search` picks among them from the number of points the filter keeps (the engine's
cardinality estimate, which is exact for one keyword condition):

  few points (<= `exact_max_points`)  score every matching point (`exact`): recall 1, and cheap
                                      because the payload index hands over just those points;
  more points                         first an unfiltered search for `post_filter_oversampling`
                                      * k / selectivity hits (at most `post_filter_max`), kept
                                      when they hold k that pass the filter: the unfiltered graph
                                      is whole, and when it returns the true top N, the first k
                                      of them inside the filter are the filter's true top k.
                                      Else (a query far from its filter's points) the filtered
                                      search with ACORN (neighbours of neighbours when a link
                                      fails the filter) and a wide beam, `filtered_ef`.
  no filter                           plain HNSW at the asked beam.

Measured at 1M clustered 512-d points (bench/query_latency.py): filtered HNSW at `hnsw_ef` 128
has recall@10 0.50 within a kingdom (25 %), 0.68 within a phylum (6 %), 0.70 within two kingdoms;
it needs a beam of 1024 (phylum) to 2048+ (kingdoms) to pass 0.95, while the unfiltered search has
0.996 at 128. Payload-aware links did not close the gap and ACORN changed nothing where they exist.

An explicit `exact=True` is kept. Pure: no engine is imported here; `index.edge_store` and
`index.client_store` turn a `SearchPlan` into their engine's search parameters.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

H = TypeVar("H")

__all__ = ["DEFAULT_HNSW_EF", "DEFAULT_POLICY", "SearchPlan", "SearchPolicy", "plan_search", "planned_search"]

DEFAULT_HNSW_EF = 128  # what an unfiltered search gets when the caller names no beam


@dataclass(frozen=True)
class SearchPolicy:
    """The thresholds of `plan_search` (measured with bench/query_latency.py, see README)."""

    exact_max_points: int = 20_000
    post_filter_oversampling: float = 2.0
    post_filter_max: int = 1_000  # 0: never search unfiltered first
    filtered_ef: int = 2_048
    acorn: bool = True


DEFAULT_POLICY = SearchPolicy()


@dataclass(frozen=True)
class SearchPlan:
    """Engine-neutral search parameters. `hnsw_ef` None: the engine's default beam."""

    exact: bool = False
    hnsw_ef: int | None = None
    acorn: bool = False
    cardinality: int | None = None  # the estimate the plan was made from (None: no filter, or not asked)
    post_filter: int | None = None  # first search unfiltered for this many hits and keep those in the filter
    reason: str = "as asked"

    def fallback(self) -> SearchPlan:
        """The filtered search to run when the unfiltered one found too few hits in the filter."""
        return SearchPlan(hnsw_ef=self.hnsw_ef, acorn=self.acorn, cardinality=self.cardinality,
                          reason=self.reason + ", filtered")


def plan_search(
    *,
    filtered: bool,
    cardinality: int | None,
    total: int | None,
    k: int,
    hnsw_ef: int | None = None,
    exact: bool = False,
    policy: SearchPolicy | None = None,
) -> SearchPlan:
    """The plan for a k-nearest search whose filter keeps `cardinality` of `total` points.

    `filtered` False (or no estimate) leaves the caller's `exact` and `hnsw_ef` as they are.
    `policy` None: the module's DEFAULT_POLICY, looked up on each call.
    """
    policy = policy or DEFAULT_POLICY
    if exact:
        return SearchPlan(exact=True, cardinality=cardinality, reason="exact asked")
    if not filtered or cardinality is None or not total:
        return SearchPlan(hnsw_ef=hnsw_ef, cardinality=cardinality)
    if cardinality <= max(policy.exact_max_points, k):
        return SearchPlan(exact=True, cardinality=cardinality, reason=f"{cardinality} points in the filter")
    selectivity = min(1.0, cardinality / total)
    ef = max(hnsw_ef or DEFAULT_HNSW_EF, policy.filtered_ef, k)
    post = min(policy.post_filter_max, math.ceil(policy.post_filter_oversampling * k / selectivity))
    return SearchPlan(hnsw_ef=ef, acorn=policy.acorn, cardinality=cardinality,
                      post_filter=max(post, k) if policy.post_filter_max else None,
                      reason=f"{selectivity:.1%} of the points")


def planned_search(
    plan: SearchPlan, k: int, run: Callable[[SearchPlan, int, bool], list[H]], keep: Callable[[H], bool],
    complete: Callable[[list[H]], list[H]] = lambda hits: hits,
    narrow: Callable[[list[H], int], list[H]] | None = None,
) -> list[H]:
    """Run `plan`: `run(plan, limit, filtered)` searches; `keep(hit)` says whether a hit passes the filter.

    An unfiltered run need only read the filter's fields (reading a whole payload per hit cost 49 ms
    for 319 hits at 1M, the `lineage` field alone 3.7 ms warm, 36 ms cold); `complete` then reads the
    k kept ones whole. `narrow(hits, k)`, when given, replaces both: the engine's own top k of `hits`
    inside the filter (a search restricted to their ids, answered from the in-RAM payload index).
    """
    if plan.post_filter:
        unfiltered = SearchPlan(hnsw_ef=max(plan.post_filter, DEFAULT_HNSW_EF))
        if narrow is not None:
            hits = narrow(run(unfiltered, plan.post_filter, False), k)
        else:
            hits = [h for h in run(unfiltered, plan.post_filter, False) if keep(h)]
            hits = complete(hits[:k]) if len(hits) >= k else hits
        if len(hits) >= k:
            return hits[:k]
        plan = plan.fallback()
    return run(plan, k, True)
