"""Readers beside a writer on one embedded store: search latency while a build writes, against the same readers alone.

A store of --base points (--dim, random unit vectors with image payloads, HNSW built) is made
first. Then, in this one run:
  baseline  --readers processes search it (k=10, one query at a time) for --baseline-seconds, no writer;
  load      the same readers search for --seconds while a writer process adds --images points in
            batches of --batch (the build's write path: `upsert_images`, then `optimize`, `close`),
            paced to end within the window; afterwards every reader must count base + images.
Measured besides: a reader's cold open (its replica copied whole), the disk of the live shards, of
the published generations and of one replica, each publish (time, data copied), each refresh a
reader made inside a search, and how long after a batch was written a reader first saw it.

A table goes to stderr, one JSON line per figure to stdout (cores, commit, points, dim, ...).

    .venv/bin/python bench/readers_load.py [--base 100000] [--images 20000] [--readers 8] [--seconds 60]
"""
from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common import git_commit  # bench/ is the script's folder, first on sys.path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from toolkit.cli import setup_logging  # noqa: E402
logger = logging.getLogger("bench.readers_load")

VECTOR = "bench"
K = 10
BURN_IN = 5
COUNT_EVERY_S = 0.2  # how often a reader also counts the points it sees (for the lag figure)
DONE_FILE = "writer.done"
SEED = 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=int, default=100_000, help="points in the store before the build")
    parser.add_argument("--images", type=int, default=20_000, help="points the build adds")
    parser.add_argument("--readers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the readers search beside the build")
    parser.add_argument("--baseline-seconds", type=float, default=None, help="the readers alone (default: --seconds / 4)")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--batch", type=int, default=256, help="points per build batch")
    parser.add_argument("--workdir", type=Path, default=None, help="where the store goes (default: a temp folder)")
    args = parser.parse_args(argv)
    if args.baseline_seconds is None:
        args.baseline_seconds = args.seconds / 4
    for name in ("base", "images", "readers", "dim", "batch"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be positive")
    return args


def _records(start: int, n: int) -> list:
    from index.records import ImageRecord
    from taxonomy.lineage import Lineage

    lineage = Lineage.from_ranks(("Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Pica", "hudsonia"))
    return [ImageRecord(id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench/{i}")), root="/bench", path=f"{i}.jpg",
                        sha256=f"{i:064x}", bytes=1, width=1, height=1, lineage=lineage, split="train",
                        source=f"batch-{i // 256}") for i in range(start, start + n)]


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def make_base(root: Path, points: int, dim: int) -> float:
    """The store before the build; the seconds it took."""
    from index.store import open_store

    started = time.perf_counter()
    rng = np.random.default_rng(SEED)
    with open_store(str(root)) as store:
        for start in range(0, points, 4096):
            n = min(4096, points - start)
            store.upsert_images(VECTOR, _records(start, n), _unit(rng, n, dim))
        store.optimize()
    return time.perf_counter() - started


def writer(root: str, base: int, images: int, dim: int, batch: int, seconds: float, out: str) -> None:
    """The build: batches at a pace that ends within `seconds`, then optimize and close."""
    from index.edge_replica import current_generation
    from index.store import open_store

    rng = np.random.default_rng(SEED + 1)
    pause = max(0.0, 0.8 * seconds / max(1, -(-images // batch)))
    written: list[tuple[float, int]] = []
    publishes: list[tuple[float, int]] = []
    last = None
    store = open_store(root)
    started = time.perf_counter()
    for start in range(base, base + images, batch):
        n = min(batch, base + images - start)
        store.upsert_images(VECTOR, _records(start, n), _unit(rng, n, dim))
        written.append((time.time(), start + n))
        generation = current_generation(Path(root))
        if generation is not None and generation.number != last:
            last = generation.number
            publishes.append((generation.seconds, generation.copied_bytes))
        time.sleep(pause)
    write_s = time.perf_counter() - started
    optimize_started = time.perf_counter()
    store.optimize()
    optimize_s = time.perf_counter() - optimize_started
    final = current_generation(Path(root))
    store.close()
    closed = current_generation(Path(root))
    Path(out).write_text(json.dumps({
        "written": written, "publishes": publishes, "write_s": write_s, "optimize_s": optimize_s,
        "publish_after_optimize": [final.seconds, final.copied_bytes] if final else None,
        "publish_on_close": [closed.seconds, closed.copied_bytes] if closed and closed is not final else None,
        "done_at": time.time(),
    }))
    (Path(root).parent / DONE_FILE).write_text(str(time.time()))


def reader(root: str, seed: int, dim: int, seconds: float, expect: int, wait_writer: bool, out: str) -> None:
    """Search for `seconds`; then (after the writer, if any) count what this reader sees."""
    from index.schema import IMAGES
    from index.store import open_store

    rng = np.random.default_rng(SEED + 100 + seed)
    opened = time.perf_counter()
    store = open_store(root, read_only=True)
    open_s = time.perf_counter() - opened
    latencies: list[float] = []
    refreshes: list[float] = []
    counts: list[tuple[float, int]] = []
    failures: list[str] = []
    for _ in range(BURN_IN):
        store.search(IMAGES, VECTOR, _unit(rng, 1, dim)[0], k=K)
    end = time.monotonic() + seconds
    next_count = 0.0
    while time.monotonic() < end:
        query = _unit(rng, 1, dim)[0]
        before = store.generation.number if store.generation else 0
        t0 = time.perf_counter()
        try:
            hits = store.search(IMAGES, VECTOR, query, k=K)
            if len(hits) != K:
                failures.append(f"{len(hits)} hits")
        except Exception as e:  # every failure is a finding, counted and shown
            failures.append(repr(e))
        elapsed = (time.perf_counter() - t0) * 1000
        latencies.append(elapsed)
        if (store.generation.number if store.generation else 0) != before:
            refreshes.append(elapsed)
        if time.monotonic() >= next_count:
            counts.append((time.time(), store.count(IMAGES)))
            next_count = time.monotonic() + COUNT_EVERY_S
    done_file = Path(root).parent / DONE_FILE
    while wait_writer and not done_file.exists():
        time.sleep(0.05)
    seen_after = None
    final_deadline = time.monotonic() + 600
    while time.monotonic() < final_deadline:
        t0 = time.perf_counter()
        if store.count(IMAGES) == expect:
            seen_after = time.perf_counter() - t0
            break
        time.sleep(0.05)
    replica_bytes = 0
    if store._replicas is not None:
        from index.edge_replica import allocated_bytes

        replica_bytes = allocated_bytes(store._replicas)
    store.close()
    Path(out).write_text(json.dumps({
        "open_s": open_s, "latencies": latencies, "refreshes": refreshes, "counts": counts, "failures": failures,
        "saw_all": seen_after is not None, "final_refresh_s": seen_after, "replica_bytes": replica_bytes,
    }))


def _run_readers(ctx: mp.context.BaseContext, root: Path, args: argparse.Namespace, seconds: float, expect: int,
                 tag: str, with_writer: bool) -> list[dict]:
    outs = [root.parent / f"{tag}-reader-{i}.json" for i in range(args.readers)]
    procs = [ctx.Process(target=reader, args=(str(root), i, args.dim, seconds, expect, with_writer, str(o)))
             for i, o in enumerate(outs)]
    for p in procs:
        p.start()
    return [procs, outs]  # type: ignore[list-item]


def _join(procs: list, outs: list[Path]) -> list[dict]:
    for p in procs:
        p.join()
    missing = [str(o) for o in outs if not o.exists()]
    if missing:
        raise RuntimeError(f"readers died without a result: {missing}")
    return [json.loads(o.read_text()) for o in outs]


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    baseline: float | None = None

    @property
    def ratio(self) -> float | None:
        return self.value / self.baseline if self.baseline else None


def _lag(written: list[tuple[float, int]], readers: list[dict]) -> list[float]:
    """For each batch, how long after it was written each reader first counted it (seconds)."""
    lags = []
    for result in readers:
        counts = result["counts"]
        for at, total in written:
            seen = next((t for t, c in counts if c >= total and t >= at), None)
            if seen is not None:
                lags.append(seen - at)
    return lags


def run(args: argparse.Namespace) -> list[Figure]:
    from index.constants import GENERATIONS_DIR, PUBLISH_INTERVAL_S
    from index.edge_replica import allocated_bytes

    work = Path(tempfile.mkdtemp(prefix="readers-load-", dir=args.workdir))
    root = work / "qdrant"
    ctx = mp.get_context("spawn")
    try:
        logger.info("making a store of %d x %d-d points", args.base, args.dim)
        base_s = make_base(root, args.base, args.dim)
        live_mb = sum(allocated_bytes(root / c) for c in ("images", "taxa") if (root / c).exists()) / 1e6
        gens_mb = allocated_bytes(root / GENERATIONS_DIR) / 1e6
        logger.info("baseline: %d readers for %.0f s", args.readers, args.baseline_seconds)
        procs, outs = _run_readers(ctx, root, args, args.baseline_seconds, args.base, "baseline", False)
        baseline = _join(procs, outs)
        total = args.base + args.images
        logger.info("load: %d readers for %.0f s beside a build of %d points", args.readers, args.seconds, args.images)
        procs, outs = _run_readers(ctx, root, args, args.seconds, total, "load", True)
        wout = work / "writer.json"
        wproc = ctx.Process(target=writer, args=(str(root), args.base, args.images, args.dim, args.batch,
                                                 args.seconds, str(wout)))
        wproc.start()
        wproc.join()
        if wproc.exitcode != 0:
            raise RuntimeError(f"the writer failed (exit {wproc.exitcode})")
        load = _join(procs, outs)
        w = json.loads(wout.read_text())
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def lat(results: list[dict]) -> list[float]:
        return [x for r in results for x in r["latencies"]]

    base_lat, load_lat = lat(baseline), lat(load)
    refreshes = [x for r in load for x in r["refreshes"]]
    publishes = w["publishes"]
    lags = _lag([tuple(x) for x in w["written"]], load)
    failures = sum(len(r["failures"]) for r in load + baseline)
    figures = [
        Figure("searches answered", len(load_lat), "count", len(base_lat)),
        Figure("searches failed", failures, "count"),
        Figure("readers that saw every point after the build", sum(r["saw_all"] for r in load), "readers"),
        Figure("search p50", _pct(load_lat, 50), "ms", _pct(base_lat, 50)),
        Figure("search p95", _pct(load_lat, 95), "ms", _pct(base_lat, 95)),
        Figure("search p99", _pct(load_lat, 99), "ms", _pct(base_lat, 99)),
        Figure("search throughput, all readers", len(load_lat) / args.seconds, "queries/s",
               len(base_lat) / args.baseline_seconds),
        Figure("refresh inside a search during the build, p50", _pct(refreshes, 50), "ms"),
        Figure("refresh inside a search during the build, max", max(refreshes, default=float("nan")), "ms"),
        Figure("refreshes per reader during the build", len(refreshes) / args.readers, "count"),
        Figure("final refresh after optimize (every segment new), mean", float(np.mean(
            [r["final_refresh_s"] for r in load if r["final_refresh_s"] is not None] or [float("nan")])), "s"),
        Figure("reader cold open (replica copied whole)", float(np.mean([r["open_s"] for r in baseline])), "s"),
        Figure("publish during the build, p50", _pct([p[0] for p in publishes], 50), "s"),
        Figure("publish during the build, data copied p50", _pct([p[1] / 1e6 for p in publishes], 50), "MB"),
        Figure("publish after optimize", (w["publish_after_optimize"] or [float("nan")])[0], "s"),
        Figure("lag of a batch behind the writer, p50", _pct(lags, 50), "s"),
        Figure("lag of a batch behind the writer, max", max(lags, default=float("nan")), "s"),
        Figure("publish interval (constant)", PUBLISH_INTERVAL_S, "s"),
        Figure("disk: live shards", live_mb, "MB"),
        Figure("disk: published generations", gens_mb, "MB"),
        Figure("disk: one reader's replica", float(np.mean([r["replica_bytes"] for r in baseline])) / 1e6, "MB"),
        Figure("build: writing time", w["write_s"], "s"),
        Figure("build: optimize", w["optimize_s"], "s"),
        Figure("store set-up (not part of the run)", base_s, "s"),
    ]
    return figures


def table(figures: list[Figure]) -> str:
    header = f"{'figure':<58} {'value':>10} {'unit':<10} {'baseline':>10} {'ratio':>6}"
    lines = [header, "-" * len(header)]
    for f in figures:
        baseline = f"{f.baseline:10.2f}" if f.baseline is not None else f"{'-':>10}"
        ratio = f"{f.ratio:6.2f}" if f.ratio is not None else f"{'-':>6}"
        lines.append(f"{f.name:<58} {f.value:10.2f} {f.unit:<10} {baseline} {ratio}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(logging.INFO)
    logging.getLogger("index").setLevel(logging.WARNING)
    figures = run(args)
    print(table(figures), file=sys.stderr)
    context = {"bench": "readers_load", "device": "cpu", "cores": len(os.sched_getaffinity(0)),
               "commit": git_commit(), "python": platform.python_version(), "base": args.base,
               "images": args.images, "readers": args.readers, "seconds": args.seconds, "dim": args.dim,
               "batch": args.batch}
    for f in figures:
        print(json.dumps({**context, "figure": f.name, "value": f.value, "unit": f.unit, "baseline": f.baseline,
                          "ratio": f.ratio}))
    failed = next(f.value for f in figures if f.name == "searches failed")
    saw_all = next(f.value for f in figures if f.name.startswith("readers that saw"))
    return 0 if failed == 0 and saw_all == args.readers else 1


if __name__ == "__main__":
    sys.exit(main())
