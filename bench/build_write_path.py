"""Points/s of the build's write path, on precomputed vectors (no model, no GPU), against the synchronous path.

  sync     the loop the build ran before its writer thread: per encoded batch, `upsert_images`
           into the store, `mark_embedded` in the catalog, `update_run`, one after the other.
  writer   `embed.writer.BuildWriter`: the batches are put on its queue as fast as they come
           (a GPU far faster than the writer), so it writes groups of up to --flush-points.
  store    the writer's groups into the store alone (`upsert_images`: payload dicts, the engine's
           point objects, the upsert), to show where a writer core goes.
  catalog  the writer's groups into the catalog alone (`mark_embedded` + `update_run`).

Every round writes --points new points (fresh store and catalog each time: the build writes new
points) into an embedded store (a temporary folder) and an SQLite catalog. The synthetic images
draw their lineages from --species species (a group of 4,096 then holds ~1,750 distinct ones with
the default 2,000, as in a large shuffled collection). `points_per_s` is wall-clock points per
second; `points_per_cpu_s` divides by the process's CPU seconds over the same span (the writer's
thread and the engine's), i.e. points/s per fully used writer core. After a burn-in the paths
alternate --repeats times and the best of each is kept (the machine may be shared). A table goes
to stderr, one JSON line per path to stdout.

    .venv/bin/python bench/build_write_path.py [--points 50000] [--batch-size 256] [--flush-points 4096]
        [--species 2000] [--repeats 2]
"""
from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import git_commit  # bench/ is the script's folder, first on sys.path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from toolkit.cli import setup_logging  # noqa: E402
VECTOR = "bench"
DIM = 512
TARGET_POINTS_PER_S = 20_000  # a 6,000 images/s GPU must never wait for one writer core (issue 15)
PATHS = ("sync", "writer", "store", "catalog")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=50_000, help="points written per round (default: 50000)")
    parser.add_argument("--batch-size", type=int, default=256, help="encoded batch size (default: 256)")
    parser.add_argument("--flush-points", type=int, default=None,
                        help="the writer's group size at most (default: embed.writer.FLUSH_POINTS)")
    parser.add_argument("--species", type=int, default=2000, help="distinct lineages (default: 2000)")
    parser.add_argument("--dim", type=int, default=DIM, help=f"vector dimension (default: {DIM})")
    parser.add_argument("--repeats", type=int, default=2, help="alternating measured rounds (default: 2)")
    parser.add_argument("--paths", default=",".join(PATHS), help="which paths, comma-separated (default: all)")
    return parser.parse_args(argv)


def synthetic_records(n: int, species: int, seed: int = 0):
    """`n` image records with lineages drawn from `species` species, in a shuffled order."""
    from index.collection.entries import image_point_id
    from index.records import ImageRecord
    from taxonomy import Lineage

    rng = np.random.default_rng(seed)
    lineages = [Lineage.from_ranks({
        "kingdom": "Animalia", "phylum": "Chordata", "class": f"Class{s % 7}", "order": f"Order{s % 41}",
        "family": f"Family{s % 211}", "genus": f"Genus{s % 997}", "species": f"species{s}"}, f"common {s}")
        for s in range(species)]
    draw = rng.integers(0, species, n)
    return [ImageRecord(id=image_point_id(f"bench/{i:08d}.jpg"), root="/bench", path=f"bench/{i:08d}.jpg",
                        sha256=f"{i:064x}", bytes=50_000, width=500, height=375, lineage=lineages[draw[i]],
                        split="train", source="bench", license="CC-BY") for i in range(n)]


def unit_vectors(n: int, dim: int, seed: int = 1) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def fresh(workdir: Path, records, dim: int) -> tuple[object, object, int]:
    """A new embedded store and an SQLite catalog listing `records` (inserted directly: no image files)."""
    from sqlalchemy import insert

    from index.catalog import Catalog
    from index.orm import ImageRow
    from index.store import open_store

    workdir.mkdir(parents=True)
    catalog = Catalog(str(workdir / "catalog.db"))
    rows = [{"id": r.id, "root": r.root, "path": r.path, "sha256": r.sha256, "bytes": r.bytes, "width": r.width,
             "height": r.height, "taxon": r.taxon} for r in records]
    # The catalog's ingest reads and hashes image files; the bench has none, so its rows go in as they are.
    with catalog._engine.begin() as connection:
        connection.execute(insert(ImageRow), rows)
    store = open_store(str(workdir / "qdrant"))
    store.ensure_vector(VECTOR, dim)
    run_id = catalog.start_run(VECTOR, "bench", store.location)
    return store, catalog, run_id



def batches(records, vectors: np.ndarray, size: int):
    for start in range(0, len(records), size):
        yield records[start:start + size], vectors[start:start + size]


def run_path(path: str, records, vectors: np.ndarray, args: argparse.Namespace, workdir: Path) -> tuple[float, float]:
    """(points/s, points per CPU-second) of one round of `path`."""
    from embed.writer import FLUSH_POINTS, BuildWriter

    flush = args.flush_points or FLUSH_POINTS
    store, catalog, run_id = fresh(workdir, records, args.dim)
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        if path == "sync":
            for good, matrix in batches(records, vectors, args.batch_size):
                store.upsert_images(VECTOR, good, matrix)
                catalog.mark_embedded(VECTOR, store.location, good)
                catalog.update_run(run_id, done=len(good), rate=0.0)
        elif path == "writer":
            with BuildWriter(store, catalog, VECTOR, run_id, flush_points=flush) as writer:
                for good, matrix in batches(records, vectors, args.batch_size):
                    writer.put(good, matrix)
            assert writer.counts.done == len(records)
        elif path == "store":
            for good, matrix in batches(records, vectors, flush):
                store.upsert_images(VECTOR, good, matrix)
        elif path == "catalog":
            for good, _ in batches(records, vectors, flush):
                catalog.mark_embedded(VECTOR, store.location, good)
                catalog.update_run(run_id, done=len(good), rate=0.0)
        else:
            raise ValueError(f"unknown path {path!r}; expected one of {', '.join(PATHS)}")
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if path in ("sync", "writer", "store"):
            assert store.count("images", vector=VECTOR) == len(records)
        if path in ("sync", "writer", "catalog"):
            assert catalog.embedded_count(VECTOR, store.location) == len(records)
    finally:
        store.close()
        catalog.close()
    return len(records) / wall, len(records) / cpu if cpu > 0 else 0.0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    for p in paths:
        if p not in PATHS:
            raise SystemExit(f"unknown path {p!r}; expected some of {', '.join(PATHS)}")
    setup_logging(logging.WARNING)
    from embed.writer import FLUSH_POINTS

    records = synthetic_records(args.points, args.species)
    vectors = unit_vectors(args.points, args.dim)
    best = {p: (0.0, 0.0) for p in paths}
    with tempfile.TemporaryDirectory() as tmp:
        burn = min(len(records), 2 * args.batch_size)
        run_path("sync", records[:burn], vectors[:burn], args, Path(tmp) / "burn-in")
        for round_ in range(args.repeats):
            for p in paths:
                rate, per_cpu = run_path(p, records, vectors, args, Path(tmp) / f"{p}-{round_}")
                best[p] = max(best[p], (rate, per_cpu))
    common = {"bench": "build_write_path", "device": "cpu", "device_name": platform.processor() or "cpu",
              "commit": git_commit(), "points": args.points, "dim": args.dim, "species": args.species,
              "batch_size": args.batch_size, "flush_points": args.flush_points or FLUSH_POINTS}
    sync = best.get("sync", (0.0, 0.0))[0]
    rows = [{**common, "path": p, "points_per_s": round(rate, 1), "points_per_cpu_s": round(per_cpu, 1),
             "over_sync": round(rate / sync, 2) if sync else None, "target_points_per_s": TARGET_POINTS_PER_S}
            for p, (rate, per_cpu) in best.items()]
    print(f"\n{'path':<8} {'points/s':>10} {'per cpu-s':>10} {'over sync':>10}", file=sys.stderr)
    for row in rows:
        over = f"{row['over_sync']:.2f}x" if row["over_sync"] else "-"
        print(f"{row['path']:<8} {row['points_per_s']:>10.0f} {row['points_per_cpu_s']:>10.0f} {over:>10}",
              file=sys.stderr)
    print(f"({args.points} points of {args.dim}-d, {args.species} species, batches of {args.batch_size}, "
          f"best of {args.repeats}; target {TARGET_POINTS_PER_S} points/s per writer core)", file=sys.stderr)
    for row in rows:
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
