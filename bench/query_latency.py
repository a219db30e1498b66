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
             through `VectorStore.search` (what the app calls) unfiltered, within a phylum (~6% of
             the points) and within a family (~0.2%), against exact numpy search over the same
             float32 vectors (the clade's rows pre-gathered, so numpy pays no filter cost).

Every stage runs a burn-in, then --queries measured queries, one at a time. A table goes to
stderr, one JSON line per result to stdout (device, cores, commit, dim, hnsw_ef, ...).

    .venv/bin/python bench/query_latency.py [--points 100000] [--dim 512] [--queries 200]
        [--hnsw-ef 128] [--skip-demo] [--skip-synthetic] [--demo-species 40] [--demo-per-species 10]

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
    args = parser.parse_args(argv)
    try:
        args.points = [int(p) for p in args.points.split(",") if p.strip()]
    except ValueError:
        parser.error(f"--points: expected comma-separated integers, got {args.points!r}")
    if any(p < 1000 for p in args.points) or args.queries < 1 or args.dim < 2:
        parser.error("--points must be >= 1000, --queries >= 1, --dim >= 2")
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


def load_synthetic(store, vectors: np.ndarray, which: np.ndarray, lineages: list) -> float:
    """Upsert the points as images (payload with lineage keys), then build the HNSW index; seconds taken."""
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
    loaded = time.perf_counter()
    store.optimize()
    logger.info("upsert %.0f s, HNSW build %.0f s", loaded - start, time.perf_counter() - loaded)
    return time.perf_counter() - start


def run_synthetic(points: int, args: argparse.Namespace) -> list[Result]:
    from index.collection.entries import image_point_id
    from index.store import EdgeSettings, SearchFilter, open_store
    from taxonomy import Rank

    rng = np.random.default_rng(SEED)
    logger.info("synthetic: %d points of %d-d", points, args.dim)
    vectors, which, lineages, species = synthetic(points, args.dim, rng)
    ids = np.array([image_point_id(f"p{i}") for i in range(points)])
    folder = Path(tempfile.mkdtemp(prefix=f"query-latency-{points}-", dir=args.cache if args.keep else None))
    ef = args.hnsw_ef or None
    results = []
    store = open_store(str(folder), edge_settings=EdgeSettings())
    try:
        build_s = load_synthetic(store, vectors, which, lineages)
        # Queries: new points near random species (not in the store).
        picks = rng.integers(0, len(species), args.queries + BURN_IN)
        queries = species[picks] + POINT_SPREAD * rng.standard_normal((len(picks), args.dim)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        clades: list[tuple[str, str | None]] = [("none", None)]
        # Each filtered query stays inside the clade of its own species, as a user narrowing to it would.
        for rank in (Rank.PHYLUM, Rank.FAMILY):
            clades.append((rank.label, rank.label))
        for label, rank_label in clades:
            if rank_label is None:
                keys = [None] * len(queries)
            else:
                rank = Rank.parse(rank_label)
                keys = [lineages[p].key(rank) for p in picks]
            point_keys = {}
            if rank_label is not None:
                rank = Rank.parse(rank_label)
                species_key = np.array([lin.key(rank) for lin in lineages])
                point_keys = {key: np.flatnonzero(species_key[which] == key) for key in set(keys)}
            subsets = {key: (vectors[rows], ids[rows]) for key, rows in point_keys.items()}
            fraction = float(np.mean([len(point_keys[k]) for k in keys]) / points) if point_keys else 1.0

            def store_query(i: int, keys=keys) -> list[str]:
                search_filter = SearchFilter(within=(keys[i],)) if keys[i] else None
                return [h.id for h in store.search("images", SYNTHETIC_VECTOR, queries[i], K, search_filter,
                                                   hnsw_ef=ef)]

            def numpy_query(i: int, keys=keys, subsets=subsets) -> list[str]:
                matrix, row_ids = subsets[keys[i]] if keys[i] else (vectors, ids)
                return list(row_ids[exact_top(matrix, queries[i])])

            store_ms, found = timed(lambda i: store_query(i + BURN_IN), args.queries)
            numpy_ms, exact = timed(lambda i: numpy_query(i + BURN_IN), args.queries)
            p50, p95, mean = stats(store_ms)
            n50, n95, _ = stats(numpy_ms)
            results.append(Result(
                "synthetic", "vector -> images", points, label, fraction, args.queries, p50, p95, mean, n50, n95,
                recall(found, exact), {"build_s": round(build_s, 1), "hnsw_ef": ef, "dim": args.dim},
            ))
            logger.info("%s filter=%s: p50 %.2f ms (numpy %.2f ms), recall@10 %.3f", points, label, p50, n50,
                        results[-1].recall_at_10)
    finally:
        store.close()
        if not args.keep:
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
    header = (f"{'stage':<9} {'mode':<31} {'points':>8} {'filter':<8} {'in filter':>9} {'p50 ms':>8} "
              f"{'p95 ms':>8} {'numpy p50':>9} {'ratio':>6} {'recall@10':>9}")
    lines = [header, "-" * len(header)]
    for r in results:
        numpy_p50 = f"{r.numpy_p50_ms:9.2f}" if r.numpy_p50_ms is not None else f"{'-':>9}"
        ratio = f"{r.ratio:6.2f}" if r.ratio is not None else f"{'-':>6}"
        rec = f"{r.recall_at_10:9.3f}" if r.recall_at_10 is not None else f"{'-':>9}"
        lines.append(f"{r.stage:<9} {r.mode:<31} {r.points:>8} {r.filter:<8} {r.filter_fraction:>9.2%} "
                     f"{r.p50_ms:8.2f} {r.p95_ms:8.2f} {numpy_p50} {ratio} {rec}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
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
