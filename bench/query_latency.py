"""Query latency (p50/p95) of the search paths, against exact numpy search in the same run, with recall@10.

  demo       a demo collection embedded with tol-tiny (drawn and built once, cached under var/bench/),
             every mode of `embed.search.SearchService` end to end, without and within a clade
             (the largest kingdom): describe (text -> images, the text encoded in the query),
             look-alikes of a collection image (its stored vector), look-alikes of an upload (the
             image encoded), identify (both methods), text -> taxa. Look-alikes by id is also run
             with numpy over the same vectors (recall@10 and the ratio).
  synthetic  N points (--points, 100k by default; 1M with --points 100000,1000000) of --dim
             clustered vectors (kingdom > phylum > ... > species centres, points around their
             species) in the embedded store (qdrant-edge, HNSW built by `optimize()`), searched
             through `VectorStore.search` (what the app calls) unfiltered, within two kingdoms
             (~50% of the points), within a phylum (~6%) and within a family (~0.2%), against exact
             numpy search over the same float32 vectors (the clade's rows pre-gathered, so numpy
             pays no filter cost). The store picks its search parameters from the filter's size
             (`index.search_params`); each row names the plan. Also reported: the upsert and HNSW
             build times, the store's disk use, and the RAM of a fresh process that opens the store
             and runs the searches (its RSS growth), each per million points. --quantization int8
             builds the store with scalar int8 copies in RAM and the float32 originals on disk.

Every stage runs a burn-in, then --queries measured queries, one at a time. A table goes to
stderr, one JSON line per result to stdout (device, cores, commit, dim, hnsw_ef, ...).

    .venv/bin/python bench/query_latency.py [--points 100000] [--dim 512] [--queries 200]
        [--hnsw-ef 128] [--skip-demo] [--skip-synthetic] [--demo-species 40] [--demo-per-species 10]
        [--quantization int8] [--store FOLDER]

1M points on 2 shared cores takes long (upsert plus HNSW build, tens of minutes): opt in with
--points 100000,1000000.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from common import git_commit  # bench/ is the script's folder, first on sys.path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from toolkit.cli import setup_logging  # noqa: E402
logger = logging.getLogger("bench.query_latency")

CACHE = REPO / "var" / "bench"
K = 10
BURN_IN = 20
BRANCHING = (4, 4, 4, 3, 3, 2, 2)  # children per taxon, kingdom .. species: 2304 species
SPREAD = (1.0, 0.55, 0.45, 0.38, 0.32, 0.27, 0.22)  # centre noise per rank, relative to the kingdom
POINT_SPREAD = 0.2  # an image around its species centre
SYNTHETIC_VECTOR = "synthetic"
DEMO_MODEL = "tol-tiny"
SEED = 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", default="100000",
                        help="synthetic store sizes, comma-separated (default: 100000; add 1000000 to opt in)")
    parser.add_argument("--dim", type=int, default=512, help="synthetic vector dimension (default: 512, BioCLIP's)")
    parser.add_argument("--queries", type=int, default=200, help="measured queries per result (default: 200)")
    parser.add_argument("--hnsw-ef", type=int, default=128,
                        help="HNSW beam width of the searches (default: 128; 0 = the engine's default)")
    parser.add_argument("--demo-species", type=int, default=40, help="species of the demo collection (default: 40)")
    parser.add_argument("--demo-per-species", type=int, default=10, help="images per demo species (default: 10)")
    parser.add_argument("--skip-demo", action="store_true", help="skip the demo-index stage")
    parser.add_argument("--skip-synthetic", action="store_true", help="skip the synthetic stage")
    parser.add_argument("--cache", type=Path, default=CACHE, help=f"demo index cache (default: {CACHE})")
    parser.add_argument("--keep", action="store_true", help="keep the synthetic stores (in --cache)")
    parser.add_argument("--quantization", choices=("int8",), default=None,
                        help="build the synthetic store with scalar int8 quantization (rescored searches)")
    parser.add_argument("--store", type=Path, default=None,
                        help="synthetic store folder (one size): built there when empty, reused when it "
                             "holds the points (its build times read from build.json), kept")
    args = parser.parse_args(argv)
    try:
        args.points = [int(p) for p in args.points.split(",") if p.strip()]
    except ValueError:
        parser.error(f"--points: expected comma-separated integers, got {args.points!r}")
    if any(p < 1000 for p in args.points) or args.queries < 1 or args.dim < 2:
        parser.error("--points must be >= 1000, --queries >= 1, --dim >= 2")
    if args.store is not None and len(args.points) != 1:
        parser.error("--store takes one --points size")
    return args



@dataclass
class Result:
    stage: str
    mode: str
    points: int
    filter: str  # "none" or the clade's rank
    filter_fraction: float
    queries: int
    p50_ms: float
    p95_ms: float
    mean_ms: float
    numpy_p50_ms: float | None = None
    numpy_p95_ms: float | None = None
    recall_at_10: float | None = None
    extra: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        return self.p50_ms / self.numpy_p50_ms if self.numpy_p50_ms else None


def timed(run: Callable[[int], object], n: int, burn_in: int = BURN_IN) -> tuple[np.ndarray, list[object]]:
    """Run `run(i)` for a burn-in, then n times; the latencies in ms and the answers."""
    for i in range(min(burn_in, n)):
        run(i)
    latencies, answers = [], []
    for i in range(n):
        start = time.perf_counter()
        answers.append(run(i))
        latencies.append((time.perf_counter() - start) * 1000)
    return np.asarray(latencies), answers


def stats(latencies: np.ndarray) -> tuple[float, float, float]:
    return float(np.percentile(latencies, 50)), float(np.percentile(latencies, 95)), float(latencies.mean())


def exact_top(matrix: np.ndarray, query: np.ndarray, k: int = K) -> np.ndarray:
    """Row indices of the k largest dot products, best first (rows and query are unit vectors)."""
    scores = matrix @ query
    k = min(k, len(scores))
    top = np.argpartition(-scores, k - 1)[:k]
    return top[np.argsort(-scores[top])]


def recall(found: Sequence[Sequence[str]], expected: Sequence[Sequence[str]]) -> float:
    return float(np.mean([len(set(f) & set(e)) / max(1, len(e)) for f, e in zip(found, expected)]))


# --- synthetic clustered vectors ----------------------------------------------------------------------

def synthetic(points: int, dim: int, rng: np.random.Generator):
    """Unit vectors around a tree of centres; returns (vectors, species index per point, lineages per species)."""
    from taxonomy import Lineage

    centres = [np.zeros((1, dim), dtype=np.float32)]  # the root, at the origin
    names: list[list[str]] = [[]]
    for depth, (children, spread) in enumerate(zip(BRANCHING, SPREAD)):
        parents = np.concatenate(centres)
        step = parents.repeat(children, axis=0) + spread * rng.standard_normal((len(parents) * children, dim))
        centres = [step.astype(np.float32)]
        names = [parent + [f"{'kpcofgs'[depth].upper()}{len(parent)}x{c}"] for parent in names for c in range(children)]
    species = centres[0]
    lineages = [Lineage.from_ranks(n[:6] + [n[6].lower()]) for n in names]
    which = rng.integers(0, len(species), points)
    vectors = species[which] + POINT_SPREAD * rng.standard_normal((points, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32), which, lineages, species


def load_synthetic(store, vectors: np.ndarray, which: np.ndarray, lineages: list) -> tuple[float, float, float]:
    """Upsert the points as images (payload with lineage keys), then build the HNSW index.

    Returns the wall seconds of each and the CPU seconds of the build (all threads of this process:
    steadier than wall time on a shared machine).
    """
    from index.collection.entries import image_point_id
    from index.records import ImageRecord

    start = time.perf_counter()
    store.ensure_vector(SYNTHETIC_VECTOR, vectors.shape[1])
    chunk = 4096
    for begin in range(0, len(vectors), chunk):
        rows = range(begin, min(begin + chunk, len(vectors)))
        records = [ImageRecord(id=image_point_id(f"p{i}"), root="/synthetic", path=f"p{i}", sha256="0" * 64,
                               bytes=0, width=1, height=1, lineage=lineages[which[i]]) for i in rows]
        store.upsert_images(SYNTHETIC_VECTOR, records, vectors[begin:begin + len(records)])
        if (begin // chunk) % 25 == 0:
            logger.info("upserted %d/%d points", begin + len(records), len(vectors))
    loaded, cpu = time.perf_counter(), time.process_time()
    store.optimize()
    built = time.perf_counter()
    logger.info("upsert %.0f s, HNSW build %.0f s", loaded - start, built - loaded)
    return loaded - start, built - loaded, time.process_time() - cpu


def rss_bytes() -> int:
    """This process's resident set (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


SERVE_PROBE = """
import json, sys, numpy as np
sys.path.insert(0, sys.argv[1])
from index.store import SearchFilter, open_store
def rss_bytes():
    return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmRSS:"))
queries = np.load(sys.argv[3]); keys = json.loads(sys.argv[4])
before = rss_bytes()
with open_store(sys.argv[2]) as store:
    for key in keys:
        f = SearchFilter(within=tuple(key)) if key else None
        for q in queries:
            store.search("images", sys.argv[5], q, 10, f, hnsw_ef=int(sys.argv[6]) or None)
    print(rss_bytes() - before)
"""


def serving_rss(folder: Path, queries: np.ndarray, filters: list[tuple[str, ...]], ef: int | None) -> int:
    """RSS growth of a fresh process that opens the store and runs `queries` under each filter."""
    import subprocess

    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "q.npy", queries)
        out = subprocess.run([sys.executable, "-c", SERVE_PROBE, str(REPO), str(folder), str(Path(tmp) / "q.npy"),
                              json.dumps([list(f) for f in filters]), SYNTHETIC_VECTOR, str(ef or 0)],
                             capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def run_synthetic(points: int, args: argparse.Namespace) -> list[Result]:
    from index.edge_replica import allocated_bytes
    from index.collection.entries import image_point_id
    from index.search_params import plan_search
    from index.store import EdgeSettings, SearchFilter, open_store
    from taxonomy import Rank

    rng = np.random.default_rng(SEED)
    logger.info("synthetic: %d points of %d-d", points, args.dim)
    vectors, which, lineages, species = synthetic(points, args.dim, rng)
    ids = np.array([image_point_id(f"p{i}") for i in range(points)])
    if args.store is not None:
        folder = args.store
    else:
        folder = Path(tempfile.mkdtemp(prefix=f"query-latency-{points}-", dir=args.cache if args.keep else None))
    ef = args.hnsw_ef or None
    results = []
    settings = EdgeSettings(quantization=args.quantization)
    timings = folder / "build.json"
    try:
        with open_store(str(folder), edge_settings=settings) as store:
            reused = store.count("images") == points and timings.is_file()
            if reused:
                saved = json.loads(timings.read_text())
                upsert_s, build_s, build_cpu_s = saved["upsert_s"], saved["build_s"], saved.get("build_cpu_s", 0.0)
                logger.info("reusing the store %s (%d points)", folder, points)
            else:
                upsert_s, build_s, build_cpu_s = load_synthetic(store, vectors, which, lineages)
                timings.write_text(json.dumps({"upsert_s": upsert_s, "build_s": build_s, "build_cpu_s": build_cpu_s}))
        # Queries: new points near random species (not in the store).
        picks = rng.integers(0, len(species), args.queries + BURN_IN)
        queries = species[picks] + POINT_SPREAD * rng.standard_normal((len(picks), args.dim)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        kingdoms = sorted({lin.key(Rank.KINGDOM) for lin in lineages})
        # Each filtered query stays inside the clade of its own species, as a user narrowing to it would;
        # "2 kingdoms" is its kingdom and the next one (half the points).
        clades: dict[str, list[tuple[str, ...]]] = {"none": [()] * len(queries)}
        clades["2 kingdoms"] = [(k, kingdoms[(kingdoms.index(k) + 1) % len(kingdoms)])
                                for k in (lineages[p].key(Rank.KINGDOM) for p in picks)]
        for rank in (Rank.PHYLUM, Rank.FAMILY):
            clades[rank.label] = [(lineages[p].key(rank),) for p in picks]
        disk = allocated_bytes(folder)
        probe = [keys[BURN_IN] for keys in clades.values()]
        ram = serving_rss(folder, queries[BURN_IN:BURN_IN + min(50, args.queries)], probe, ef)
        per_million = 1e6 / points
        resources = {"disk_mb_per_million": round(disk / 1e6 * per_million), "serving_rss_mb_per_million":
                     round(ram / 1e6 * per_million), "upsert_s": round(upsert_s, 1), "build_s": round(build_s, 1),
                     "build_cpu_s": round(build_cpu_s, 1),
                     "quantization": args.quantization or "none", "reused_store": reused}
        logger.info("%d points: disk %.0f MB, serving RSS %.0f MB, upsert %.0f s, HNSW build %.0f s", points,
                    disk / 1e6, ram / 1e6, upsert_s, build_s)
        store = open_store(str(folder), edge_settings=settings)
        try:
            for label, keys in clades.items():
                point_keys: dict[str, np.ndarray] = {}
                for key in {k for pair in keys for k in pair}:
                    rank = Rank.KINGDOM if label == "2 kingdoms" else Rank.parse(label)
                    species_key = np.array([lin.key(rank) for lin in lineages])
                    point_keys[key] = np.flatnonzero(species_key[which] == key)
                rows_of = {pair: np.concatenate([point_keys[k] for k in pair]) for pair in set(keys) if pair}
                subsets = {pair: (vectors[rows], ids[rows]) for pair, rows in rows_of.items()}
                fraction = float(np.mean([len(rows_of[k]) for k in keys]) / points) if rows_of else 1.0
                size = int(np.mean([len(rows_of[k]) for k in keys])) if rows_of else None
                plan = plan_search(filtered=bool(rows_of), cardinality=size, total=points, k=K, hnsw_ef=ef)

                def store_query(i: int, keys=keys) -> list[str]:
                    search_filter = SearchFilter(within=keys[i]) if keys[i] else None
                    return [h.id for h in store.search("images", SYNTHETIC_VECTOR, queries[i], K, search_filter,
                                                       hnsw_ef=ef)]

                def numpy_query(i: int, keys=keys, subsets=subsets) -> list[str]:
                    matrix, row_ids = subsets[keys[i]] if keys[i] else (vectors, ids)
                    return list(row_ids[exact_top(matrix, queries[i])])

                store_ms, found = timed(lambda i: store_query(i + BURN_IN), args.queries)
                numpy_ms, exact = timed(lambda i: numpy_query(i + BURN_IN), args.queries)
                del subsets
                p50, p95, mean = stats(store_ms)
                n50, n95, _ = stats(numpy_ms)
                plan_text = "exact" if plan.exact else f"hnsw_ef {plan.hnsw_ef}" + (" + ACORN" if plan.acorn else "")
                if plan.post_filter:
                    plan_text = f"unfiltered top {plan.post_filter} narrowed to the filter, else {plan_text}"
                results.append(Result(
                    "synthetic", "vector -> images", points, label, fraction, args.queries, p50, p95, mean, n50, n95,
                    recall(found, exact), {"hnsw_ef": ef, "dim": args.dim, "plan": plan_text, **resources},
                ))
                logger.info("%s filter=%s (%s): p50 %.2f ms (numpy %.2f ms), recall@10 %.3f", points, label,
                            plan_text, p50, n50, results[-1].recall_at_10)
        finally:
            store.close()
    finally:
        if args.store is None and not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    return results


# --- the demo index ---------------------------------------------------------------------------------

def demo_index(args: argparse.Namespace) -> tuple[Path, str]:
    """The demo collection built with tol-tiny, once per size (store folder, catalog URL)."""
    from demo.collection import make_collection
    from embed.build import BuildOptions, run_build

    out = args.cache / f"query-demo-{args.demo_species}x{args.demo_per_species}"
    store, db = out / "qdrant", f"sqlite:///{out / 'catalog.db'}"
    done = out / "built"
    if not done.is_file():
        shutil.rmtree(out, ignore_errors=True)
        logger.info("drawing and building the demo index in %s (once)", out)
        paths = make_collection(out / "collection", args.demo_species, args.demo_per_species, 128, SEED)
        run_build(BuildOptions(model=DEMO_MODEL, store=str(store), db=db, catalog=str(paths.catalog),
                               images=str(paths.images), workers=0))
        done.write_text("ok\n")
    return store, db


def run_demo(args: argparse.Namespace) -> list[Result]:
    from embed.search import SearchService
    from index.catalog import Catalog
    from index.collection.images import open_image
    from index.store import SearchFilter, open_store
    from taxonomy import Rank, caption

    store_path, db = demo_index(args)
    rng = np.random.default_rng(SEED)
    results = []
    with Catalog(db) as catalog, open_store(str(store_path)) as store:
        service = SearchService(store, catalog, DEMO_MODEL)
        records = catalog.images()
        species = catalog.taxa(Rank.SPECIES)
        kingdom = max(catalog.taxa(Rank.KINGDOM), key=lambda t: t.n_images)
        n = args.queries + BURN_IN
        picked = [records[i] for i in rng.integers(0, len(records), n)]
        texts = [caption(species[i].lineage, "sci_com") for i in rng.integers(0, len(species), n)]
        uploads = [open_image(r.root, r.path) for r in picked[: min(n, 60)]]
        vectors = np.stack([h.vector for h in store.retrieve("images", [r.id for r in records], service.vector_name)])
        ids = np.array([r.id for r in records])
        inside = np.array([r.lineage.kingdom == kingdom.lineage.kingdom for r in records])
        service.text_vector("warm up")  # loads the model outside the measurements
        for label, search_filter, mask in (("none", None, np.ones(len(records), bool)),
                                           ("kingdom", SearchFilter(within=(kingdom.key,)), inside)):
            fraction = float(mask.mean())
            modes: dict[str, Callable[[int], object]] = {
                "describe (text -> images)": lambda i, f=search_filter: service.text_to_images(texts[i], K, f),
                "look-alikes (id -> images)": lambda i, f=search_filter: [
                    h.id for h in service.image_to_images(picked[i].id, K, f)],
                "look-alikes (upload -> images)": lambda i, f=search_filter: service.image_to_images(
                    uploads[i % len(uploads)], K, f),
                "identify (sum)": lambda i, f=search_filter: service.identify(picked[i].id, 5, "sum", f),
                "identify (taxa)": lambda i, f=search_filter: service.identify(picked[i].id, 5, "taxa", f),
                "text -> taxa": lambda i, f=search_filter: service.text_to_taxa(texts[i], 5, None, f),
            }
            for mode, run in modes.items():
                latencies, answers = timed(lambda i: run(i + BURN_IN), args.queries)
                p50, p95, mean = stats(latencies)
                result = Result("demo", mode, len(records), label, fraction, args.queries, p50, p95, mean,
                                extra={"model": DEMO_MODEL, "taxa": sum(1 for _ in catalog.taxa())})
                if mode.startswith("look-alikes (id"):
                    matrix, row_ids = vectors[mask], ids[mask]

                    def numpy_query(i: int, matrix=matrix, row_ids=row_ids) -> list[str]:
                        query = vectors[np.flatnonzero(ids == picked[i + BURN_IN].id)[0]]
                        return [x for x in row_ids[exact_top(matrix, query, K + 1)] if x != picked[i + BURN_IN].id][:K]

                    numpy_ms, exact = timed(numpy_query, args.queries)
                    result.numpy_p50_ms, result.numpy_p95_ms, _ = stats(numpy_ms)
                    result.recall_at_10 = recall(answers, exact)  # type: ignore[arg-type]
                results.append(result)
                logger.info("demo %s filter=%s: p50 %.2f ms p95 %.2f ms", mode, label, p50, p95)
    return results


# --- output -------------------------------------------------------------------------------------------

def table(results: list[Result]) -> str:
    header = (f"{'stage':<9} {'mode':<31} {'points':>8} {'filter':<10} {'in filter':>9} {'p50 ms':>8} "
              f"{'p95 ms':>8} {'numpy p50':>9} {'ratio':>6} {'recall@10':>9}  plan")
    lines = [header, "-" * len(header)]
    for r in results:
        numpy_p50 = f"{r.numpy_p50_ms:9.2f}" if r.numpy_p50_ms is not None else f"{'-':>9}"
        ratio = f"{r.ratio:6.2f}" if r.ratio is not None else f"{'-':>6}"
        rec = f"{r.recall_at_10:9.3f}" if r.recall_at_10 is not None else f"{'-':>9}"
        lines.append(f"{r.stage:<9} {r.mode:<31} {r.points:>8} {r.filter:<10} {r.filter_fraction:>9.2%} "
                     f"{r.p50_ms:8.2f} {r.p95_ms:8.2f} {numpy_p50} {ratio} {rec}  {r.extra.get('plan', '')}")
    seen: set[tuple[int, str]] = set()
    for r in results:
        if "build_s" in r.extra and (r.points, r.extra["quantization"]) not in seen:
            seen.add((r.points, r.extra["quantization"]))
            e = r.extra
            lines.append(f"{r.points} points ({e['quantization']} vectors): upsert {e['upsert_s']:.0f} s, HNSW build "
                         f"{e['build_s']:.0f} s ({e['build_cpu_s'] or '?'} CPU s); per million points: disk {e['disk_mb_per_million']} MB, "
                         f"RAM serving {e['serving_rss_mb_per_million']} MB")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(logging.INFO)
    logging.getLogger("index").setLevel(logging.WARNING)
    args.cache.mkdir(parents=True, exist_ok=True)
    results: list[Result] = []
    if not args.skip_demo:
        results += run_demo(args)
    if not args.skip_synthetic:
        for points in args.points:
            results += run_synthetic(points, args)
    print(table(results), file=sys.stderr)
    context = {"bench": "query_latency", "device": "cpu", "cores": len(os.sched_getaffinity(0)),
               "commit": git_commit(), "python": platform.python_version(), "k": K}
    for r in results:
        row = {**context, **asdict(r), "ratio_p50": r.ratio}
        row.update(row.pop("extra"))
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
