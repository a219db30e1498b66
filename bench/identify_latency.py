"""Identify latency at a tree-of-life scale: our species-sum against pybioclip's brute force, same run.

N random unit species vectors (--species, 450k by default, --dim 512) with synthetic lineages
(3 kingdoms > 30 phyla > 300 classes > 2,000 orders > 10,000 families > 60,000 genera > species),
queries near a random species (cosine about 0.3, as a real image against its text). The image is
already embedded: what is timed is the identification of one query vector (batch 1) and of a
batch (per image: batch time / batch size).

  ours      `embed.candidates.Candidates` (loaded once): one float32 matrix product over every
            candidate, a softmax over all of them by one vectorised logsumexp, species
            probabilities added up the tree with `np.bincount` over precomputed parent indexes,
            the best guess and the top 5 at all 7 ranks (`embed.predict.identify_vectors`).
  pybioclip its TreeOfLifeClassifier.predict, re-implemented as it runs: torch `img @ txt`,
            softmax over all species, then at species rank the top 5, above it a Python loop over
            every species with probability > 1e-9 adding into a dict keyed by the joined names.
            It answers one rank per call: `species` is one call, `all ranks` seven.

A burn-in, then --queries measured queries per stage. A table goes to stderr, one JSON line per
figure to stdout.

    .venv/bin/python bench/identify_latency.py [--species 450000] [--dim 512] [--queries 30] [--batch 10]
"""
from __future__ import annotations

import argparse
import collections
import heapq
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import git_commit  # noqa: E402
from embed.candidates import Candidates  # noqa: E402
from embed.predict import identify_vectors  # noqa: E402
from taxonomy import Rank  # noqa: E402

FAN_OUT = (3, 30, 300, 2_000, 10_000, 60_000)  # taxa per rank, kingdom .. genus
LOGIT_SCALE = 100.0
TRUE_COSINE = 0.3
MIN_PROB = 1e-9  # pybioclip's default min_prob
TOP_K = 5


def synthetic_tree(species: int, rng: np.random.Generator) -> tuple[list[str], list[list[str]]]:
    """Species keys (SPEC §3) and pybioclip-style name lists, each rank's parent drawn at random."""
    names: list[list[str]] = [[f"K{i}"] for i in range(FAN_OUT[0])]
    for rank, count in enumerate(FAN_OUT[1:], start=1):
        parents = rng.integers(0, len(names), count)
        names = [names[p] + [f"{Rank(rank).label[:2].upper()}{i}"] for i, p in enumerate(parents)]
    genera = rng.integers(0, len(names), species)
    lineages = [names[g] + [f"sp{i}"] for i, g in enumerate(genera)]
    return ["/".join(lineage) for lineage in lineages], lineages


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def queries_near(vectors: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Unit queries with cosine ~TRUE_COSINE to a random species each."""
    targets = vectors[rng.integers(0, len(vectors), count)]
    noise = unit(rng.standard_normal((count, vectors.shape[1]), dtype=np.float32))
    return unit(TRUE_COSINE * targets + np.sqrt(1 - TRUE_COSINE ** 2) * noise)


class PybioclipBruteForce:
    """pybioclip's TreeOfLifeClassifier.predict, as it computes: full softmax, then per-rank aggregation."""

    def __init__(self, vectors: np.ndarray, lineages: list[list[str]]) -> None:
        import torch

        self.torch = torch
        self.txt = torch.from_numpy(np.ascontiguousarray(vectors.T))  # (dim, N), as txt_emb_species.npy
        self.names = lineages

    def classification(self, index: int, rank: Rank) -> dict[str, str]:
        lineage = self.names[index]
        row = {Rank(r).label: lineage[r] for r in range(rank + 1)}
        if rank == Rank.SPECIES:
            row["species"] = f"{lineage[5]} {lineage[6]}"
        return row

    def predict(self, queries: np.ndarray, rank: Rank) -> list[list[dict[str, object]]]:
        torch = self.torch
        with torch.no_grad():
            probs = torch.softmax(LOGIT_SCALE * torch.from_numpy(queries) @ self.txt, dim=1)
        out = []
        for image_probs in probs:
            if rank == Rank.SPECIES:
                top = image_probs.topk(TOP_K)
                out.append([{**self.classification(int(i), rank), "score": float(p)}
                            for i, p in zip(top.indices, top.values)])
                continue
            totals: dict[str, float] = collections.defaultdict(float)
            rows: dict[str, dict[str, str]] = {}
            for i in torch.nonzero(image_probs > MIN_PROB).squeeze(1):
                row = self.classification(int(i), rank)
                name = " ".join(row.values())
                rows[name] = row
                totals[name] += image_probs[i]
            out.append([{**rows[n], "score": float(totals[n])} for n in heapq.nlargest(TOP_K, totals, key=totals.get)])
        return out


def timed(run: Callable[[np.ndarray], object], queries: np.ndarray, batch: int, burn_in: int) -> list[float]:
    """Seconds per image of each batch of `queries` (after `burn_in` unmeasured batches)."""
    batches = [queries[i:i + batch] for i in range(0, len(queries) - batch + 1, batch)]
    for b in batches[:burn_in]:
        run(b)
    per_image = []
    for b in batches[burn_in:]:
        start = time.perf_counter()
        run(b)
        per_image.append((time.perf_counter() - start) / len(b))
    return per_image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--species", type=int, default=450_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=30, help="measured queries per stage")
    parser.add_argument("--batch", type=int, default=10, help="the batched stage's size (pybioclip's default: 10)")
    parser.add_argument("--burn-in", type=int, default=2, help="unmeasured batches per stage")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import torch

    rng = np.random.default_rng(args.seed)
    keys, lineages = synthetic_tree(args.species, rng)
    vectors = unit(rng.standard_normal((args.species, args.dim), dtype=np.float32))
    start = time.perf_counter()
    candidates = Candidates.build("sum", keys, vectors)
    build_s = time.perf_counter() - start
    baseline = PybioclipBruteForce(vectors, lineages)
    base = {"bench": "identify_latency", "species": args.species, "taxa": len(candidates.tree), "dim": args.dim,
            "logit_scale": LOGIT_SCALE, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "machine": platform.processor() or platform.machine(), "commit": git_commit()}
    print(json.dumps({**base, "stage": "candidates_build", "seconds": round(build_s, 2)}), flush=True)

    stages: list[tuple[str, Callable[[np.ndarray], object]]] = [
        ("ours: all 7 ranks", lambda q: identify_vectors(candidates, q, LOGIT_SCALE, TOP_K)),
        ("pybioclip: species", lambda q: baseline.predict(q, Rank.SPECIES)),
        ("pybioclip: all 7 ranks", lambda q: [baseline.predict(q, rank) for rank in Rank]),
    ]
    results: dict[tuple[str, int], float] = {}
    for batch in (1, args.batch):
        total = (-(-args.queries // batch) + args.burn_in) * batch
        queries = queries_near(vectors, total, rng)
        for name, run in stages:
            seconds = timed(run, queries, batch, args.burn_in)
            p50, p95 = np.percentile(seconds, 50) * 1e3, np.percentile(seconds, 95) * 1e3
            results[(name, batch)] = p50
            print(json.dumps({**base, "stage": name, "batch": batch, "p50_ms_per_image": round(p50, 2),
                              "p95_ms_per_image": round(p95, 2), "queries": len(seconds) * batch}), flush=True)
    lines = [f"identify at {args.species:,} species x {args.dim}-d, {len(candidates.tree):,} taxa "
             f"(candidates built in {build_s:.1f} s), p50 ms per image",
             f"{'stage':<24} {'batch 1':>9} {'batch ' + str(args.batch):>10}"]
    for name, _ in stages:
        lines.append(f"{name:<24} {results[(name, 1)]:>9.1f} {results[(name, args.batch)]:>10.1f}")
    for batch in (1, args.batch):
        ours = results[("ours: all 7 ranks", batch)]
        lines.append(f"batch {batch}: pybioclip species / ours = {results[('pybioclip: species', batch)] / ours:.2f}x, "
                     f"pybioclip all ranks / ours = {results[('pybioclip: all 7 ranks', batch)] / ours:.2f}x")
    print("\n".join(lines), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
