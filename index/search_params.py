"""How one search runs: the HNSW beam, ACORN, or an exact scan, chosen from the filter's size.

A filter cuts most links of the HNSW graph: within a clade holding 6 % of a million points the
beam strands in islands (recall@10 0.79 at `hnsw_ef` 128). Qdrant offers three remedies, and
`plan_search` picks among them from the number of points the filter keeps (the engine's
cardinality estimate, which is exact for one keyword condition):

  few points (<= `exact_max_points`)  score every matching point (`exact`): recall 1, and cheap
                                      because the payload index hands over just those points;
  a selective filter (<= `acorn_max_selectivity` of the points)
                                      ACORN (neighbours of neighbours when a link fails the
                                      filter) with a beam widened as the filter narrows:
                                      `hnsw_ef` * sqrt(1 / selectivity), at most `ef_max`;
  a broad filter, or none             plain HNSW at the asked beam.

An explicit `exact=True` is kept. Pure: no engine is imported here; `index.edge_store` and
`index.client_store` turn a `SearchPlan` into their engine's search parameters.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["DEFAULT_HNSW_EF", "DEFAULT_POLICY", "SearchPlan", "SearchPolicy", "plan_search"]

DEFAULT_HNSW_EF = 128  # what an unfiltered search gets when the caller names no beam


@dataclass(frozen=True)
class SearchPolicy:
    """The thresholds of `plan_search` (measured with bench/query_latency.py, see README)."""

    exact_max_points: int = 20_000
    acorn_max_selectivity: float = 0.4  # Qdrant's own default for ACORN
    ef_max: int = 512


DEFAULT_POLICY = SearchPolicy()


@dataclass(frozen=True)
class SearchPlan:
    """Engine-neutral search parameters. `hnsw_ef` None: the engine's default beam."""

    exact: bool = False
    hnsw_ef: int | None = None
    acorn: bool = False
    cardinality: int | None = None  # the estimate the plan was made from (None: no filter, or not asked)
    reason: str = "as asked"


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
    selectivity = cardinality / total
    if selectivity > policy.acorn_max_selectivity:
        return SearchPlan(hnsw_ef=hnsw_ef, cardinality=cardinality, reason=f"broad filter ({selectivity:.0%})")
    base = hnsw_ef or DEFAULT_HNSW_EF
    # Never below the asked beam, never widened past ef_max.
    ef = max(base, k, min(policy.ef_max, math.ceil(base / math.sqrt(selectivity))))
    return SearchPlan(hnsw_ef=ef, acorn=True, cardinality=cardinality,
                      reason=f"selective filter ({selectivity:.1%}): ACORN, hnsw_ef {ef}")
