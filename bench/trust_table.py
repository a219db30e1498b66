"""`predict --trust P` on a built store: the share of images answered at each rank, and how often right.

For each image of a split (default `val`) the stored image vector is identified (`sum`, every
candidate of the store) and rolled up to the deepest rank of the best guess whose probability
reaches P. An answer is right when that taxon is in the image's own lineage. A markdown table goes
to stdout, one JSON line per P to stderr.

    TOL_STORE=... TOL_DB=... TOL_MODEL=... .venv/bin/python bench/trust_table.py [--split val] [--p 0.5,0.7,0.9]
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import git_commit  # noqa: E402
from embed.search import SearchService  # noqa: E402
from index.catalog import Catalog  # noqa: E402
from index.schema import IMAGES  # noqa: E402
from index.store import open_store  # noqa: E402
from taxonomy import Rank  # noqa: E402
from toolkit.settings import Settings  # noqa: E402

NONE = "none"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="val")
    parser.add_argument("--p", default="0.5,0.7,0.9", help="comma-separated thresholds")
    parser.add_argument("--store")
    parser.add_argument("--db")
    parser.add_argument("--model")
    args = parser.parse_args(argv)
    thresholds = [float(p) for p in args.p.split(",")]
    settings = Settings.resolve(args.store, args.db, args.model)
    with Catalog(settings.db) as catalog, open_store(settings.store) as store:
        records = [r for r in catalog.images() if r.split == args.split and not r.lineage.is_empty]
        service = SearchService(store, catalog, settings.model)
        hits = {h.id: h.vector for h in store.retrieve(IMAGES, [r.id for r in records], service.vector_name)}
        records = [r for r in records if hits.get(r.id) is not None]
        found = service.identify_vectors(np.stack([hits[r.id] for r in records]))
    header = ["P", *[r.label for r in Rank], NONE, "right %"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for p in thresholds:
        ranks: Counter[str] = Counter()
        right = 0
        for record, identification in zip(records, found):
            trusted = identification.trusted(p)
            ranks[trusted.rank.label if trusted else NONE] += 1
            right += trusted is not None and trusted.taxon in record.lineage.keys()
        answered = len(records) - ranks[NONE]
        shares = [100 * ranks[r.label] / len(records) for r in Rank] + [100 * ranks[NONE] / len(records)]
        accuracy = 100 * right / answered if answered else 0.0
        lines.append("| " + " | ".join([f"{p:g}", *[f"{s:.1f}" for s in shares], f"{accuracy:.1f}"]) + " |")
        print(json.dumps({"bench": "trust_table", "split": args.split, "images": len(records), "p": p,
                          "share_pct": dict(zip([*[r.label for r in Rank], NONE], [round(s, 1) for s in shares])),
                          "right_pct_of_answered": round(accuracy, 1), "model": settings.model, "commit": git_commit()}),
              file=sys.stderr)
    print(f"{len(records)} {args.split} images, share answered at each rank (%), right among the answered (%)")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
