"""Taxon names as queries: results inside the named taxon among the first 12, names as typed vs read as taxa.

For every genus and every species of a built collection's catalog, its name is searched twice
against the images: embedded as typed (`SearchService.text_to_images`, what the search did before)
and read as a taxon (`SearchService.describe`: the taxon's own template-averaged vector). The
score is how many of the first --k images are labelled inside that taxon; the table gives the mean
per rank, the ratio after / before, and how many names get none. Ambiguous names (genus Morus)
count against the taxon that `describe` picks. Then --nonsense made-up words: how many are flagged
weak (their best match below what the store's real names reach).

A table goes to stderr, one JSON line per figure to stdout.

    .venv/bin/python bench/taxon_queries.py [--store var/qdrant] [--db var/catalog.db] [--model var/models/demo]
"""
from __future__ import annotations

import argparse
import json
import logging
import platform
import random
import string
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common import git_commit  # bench/ is the script's folder, first on sys.path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from toolkit.cli import setup_logging  # noqa: E402

logger = logging.getLogger("bench.taxon_queries")

K = 12
NONSENSE = 40
SEED = 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default=str(REPO / "var" / "qdrant"), help="a built store (default: var/qdrant)")
    parser.add_argument("--db", default=str(REPO / "var" / "catalog.db"), help="its catalog")
    parser.add_argument("--model", default=str(REPO / "var" / "models" / "demo"), help="the model it was built with")
    parser.add_argument("--k", type=int, default=K, help=f"images per query (default {K})")
    parser.add_argument("--nonsense", type=int, default=NONSENSE, help="made-up words tried for the weak note")
    return parser.parse_args(argv)


@dataclass
class RankResult:
    rank: str
    names: int
    before: float  # mean images inside the taxon among the first k, the name embedded as typed
    after: float  # the same, the name read as the taxon
    none_before: int  # names whose first k hold no image of the taxon
    none_after: int

    @property
    def ratio(self) -> float:
        return self.after / self.before if self.before else float("inf")


def inside(hits, key: str) -> int:
    return sum(1 for hit in hits if hit.taxon == key or hit.taxon.startswith(key + "/"))


def measure(service, taxa, k: int) -> RankResult:
    before, after = [], []
    for taxon in taxa:
        name = taxon.name if taxon.rank.label != "species" else taxon.lineage.binomial
        before.append(inside(service.text_to_images(name, k), taxon.key))
        found = service.describe(name, k)
        target = found.taxon.key if found.taxon is not None else taxon.key
        after.append(inside(found.hits, target))
    return RankResult(taxa[0].rank.label, len(taxa), float(np.mean(before)), float(np.mean(after)),
                      sum(1 for n in before if n == 0), sum(1 for n in after if n == 0))


def made_up_words(n: int) -> list[str]:
    rng = random.Random(SEED)
    return ["".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(5, 10))) for _ in range(n)]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(logging.WARNING)
    from embed.search import SearchService
    from index.catalog import Catalog
    from index.store import open_store
    from taxonomy import Rank

    started = time.perf_counter()
    with open_store(args.store) as store, Catalog(args.db) as catalog:
        service = SearchService(store, catalog, args.model)
        results = [measure(service, catalog.taxa(rank), args.k) for rank in (Rank.GENUS, Rank.SPECIES)]
        words = made_up_words(args.nonsense)
        readings = [service.describe(word, args.k) for word in words]
        weak = sum(1 for found in readings if found.weak)
        named = sum(1 for found in readings if found.taxon is not None)
    common = {"commit": git_commit(), "machine": platform.machine(), "k": args.k, "store": args.store,
              "model": args.model}
    print(f"{'rank':8} {'names':>6} {'before':>8} {'after':>8} {'ratio':>6} {'none before':>12} {'none after':>11}",
          file=sys.stderr)
    for r in results:
        print(f"{r.rank:8} {r.names:6d} {r.before:8.2f} {r.after:8.2f} {r.ratio:6.2f} {r.none_before:12d} "
              f"{r.none_after:11d}", file=sys.stderr)
        print(json.dumps({**common, "figure": f"inside_of_{args.k}_{r.rank}", "before": round(r.before, 3),
                          "after": round(r.after, 3), "ratio": round(r.ratio, 3), "names": r.names,
                          "none_before": r.none_before, "none_after": r.none_after}))
    print(f"made-up words flagged weak: {weak}/{len(words)} (read as a taxon: {named}); "
          f"threshold {service.weak_score():.4f}; {time.perf_counter() - started:.0f} s", file=sys.stderr)
    print(json.dumps({**common, "figure": "nonsense_flagged_weak", "flagged": weak, "words": len(words),
                      "read_as_taxon": named, "threshold": round(service.weak_score(), 4)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
