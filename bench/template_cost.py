"""What `embed taxa --templates N` costs in accuracy: zero-shot top-1 with N templates against all 81.

On a built demo store (images embedded by the demo model), every taxon of the catalog at each rank is
embedded with SPEC §4's 81 templates averaged (the baseline, what `embed build` and `embed taxa`
write by default) and with the first N (`a photo of {c}.` first), and the `val` images' stored
vectors are classified among them by cosine. A table goes to stderr (top-1 per rank, the difference,
the strings encoded and their time), one JSON line per figure to stdout.

    .venv/bin/python bench/template_cost.py [--store var/qdrant] [--db var/catalog.db] [--model var/models/demo]
        [--templates 1] [--split val]
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from common import git_commit  # bench/ is the script's folder, first on sys.path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default=str(REPO / "var" / "qdrant"), help="a built demo store")
    parser.add_argument("--db", default=str(REPO / "var" / "catalog.db"), help="its catalog")
    parser.add_argument("--model", default=str(REPO / "var" / "models" / "demo"), help="the model it was built with")
    parser.add_argument("--templates", type=int, default=1, help="templates of the cheap variant (default 1)")
    parser.add_argument("--split", default="val", help="the images classified (default val)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from embed.encoder import Encoder
    from embed.models import load_model
    from index.catalog import Catalog
    from index.schema import IMAGES
    from index.store import open_store
    from taxonomy import Rank
    from taxonomy.text import TEMPLATE_COUNT

    loaded = load_model(args.model)
    encoder = Encoder(loaded)
    with Catalog(args.db) as catalog, open_store(args.store, read_only=True) as store:
        images = [r for r in catalog.images(split=args.split) if r.lineage.deepest_rank == Rank.SPECIES]
        hits = store.retrieve(IMAGES, [r.id for r in images], loaded.vector_name)
        vectors = np.stack([hit.vector for hit in hits])
        by_id = {r.id: r for r in images}
        truth = [by_id[hit.id].lineage for hit in hits]
        taxa = {rank: catalog.taxa(rank) for rank in Rank}
    common = {"commit": git_commit(), "machine": platform.machine(), "model": args.model, "split": args.split,
              "images": len(truth)}
    print(f"{'rank':8} {'taxa':>5} {f'{TEMPLATE_COUNT} templates':>13} {f'{args.templates} template(s)':>13} "
          f"{'difference':>10}", file=sys.stderr)
    seconds = {TEMPLATE_COUNT: 0.0, args.templates: 0.0}
    for rank, candidates in taxa.items():
        keys = [t.key for t in candidates]
        top1 = {}
        for templates in (TEMPLATE_COUNT, args.templates):
            start = time.perf_counter()
            classes = encoder.encode_taxa(candidates, templates=templates)
            seconds[templates] += time.perf_counter() - start
            predicted = (vectors @ classes.T).argmax(axis=1)
            top1[templates] = float(np.mean([keys[p] == lineage.key(rank) for p, lineage in zip(predicted, truth)]))
        difference = top1[args.templates] - top1[TEMPLATE_COUNT]
        print(f"{rank.label:8} {len(keys):5d} {100 * top1[TEMPLATE_COUNT]:12.1f}% {100 * top1[args.templates]:12.1f}% "
              f"{100 * difference:+9.1f}", file=sys.stderr)
        print(json.dumps({**common, "figure": f"top1_{rank.label}", "templates_all": round(top1[TEMPLATE_COUNT], 4),
                          "templates": args.templates, "top1": round(top1[args.templates], 4),
                          "difference": round(difference, 4)}))
    ratio = seconds[TEMPLATE_COUNT] / seconds[args.templates] if seconds[args.templates] else float("inf")
    print(f"text encoding: {seconds[TEMPLATE_COUNT]:.1f} s with {TEMPLATE_COUNT} templates, "
          f"{seconds[args.templates]:.1f} s with {args.templates} ({ratio:.0f}x)", file=sys.stderr)
    print(json.dumps({**common, "figure": "text_encoding_s", "templates_all_s": round(seconds[TEMPLATE_COUNT], 2),
                      "templates": args.templates, "seconds": round(seconds[args.templates], 2),
                      "ratio": round(ratio, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
