"""Reference taxa at scale: a synthetic set in BioCLIP's published layout imported into the embedded store.

Stages, each against a baseline run in the same process:

  import     `embed.reference.add_tol` (lookup, merge into `sources`, higher-rank means, HNSW build)
             of N species (random unit vectors, --dim) and their derived ranks, against the naive
             write of the same species rows with `VectorStore.upsert_taxa` into a second store
             (no lookup, no higher ranks) plus its HNSW build. Peak RSS and disk.
  re-add     the same import again (idempotent: nothing written), against the first import.
  identify   top-5 species for one query at a time through `VectorStore.search` (rank == species,
             HNSW), against exact numpy (matmul + argpartition over the species matrix); recall@5.
  encode     text-tower throughput on this machine's CPU (tol-tiny and ViT-B-16, random weights),
             strings/s, and what N species cost at 81 templates and at 1 (`--templates 1`).

A table goes to stderr, one JSON line per figure to stdout.

    .venv/bin/python bench/reference_taxa.py [--species 500000] [--dim 512] [--queries 200] [--skip-encode]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from common import git_commit  # bench/ is the script's folder, first on sys.path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from toolkit.cli import ProgressBars, setup_logging  # noqa: E402
logger = logging.getLogger("bench.reference_taxa")

VECTOR_SPEC = "ViT-B-16"  # a 512-d built-in: the vector name the synthetic set fills (no weights needed)
BRANCHING = (3, 10, 5, 6, 8)  # children per taxon, kingdom .. family: 7,200 families
SPECIES_PER_GENUS = 5  # about TreeOfLife-10M's: ~450k species in ~90k genera
K = 5
BURN_IN = 20
SEED = 0
ENCODE_STRINGS = 2048


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--species", type=int, default=500_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--hnsw-ef", type=int, default=128)
    parser.add_argument("--workdir", type=Path, default=None, help="where files and stores go (default: a temp dir)")
    parser.add_argument("--skip-encode", action="store_true", help="skip the text-tower throughput stage")
    return parser.parse_args(argv)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class MemorySampler:
    """Peak anonymous and file-backed resident memory (MB), sampled from /proc every `every` seconds.

    The engine maps its files, so RSS counts page cache the kernel can drop; anonymous memory is what
    a set really costs in RAM."""

    def __init__(self, every: float = 0.5) -> None:
        self.every, self.peak = every, {"RssAnon": 0, "RssFile": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def now() -> dict[str, int]:
        with open("/proc/self/status") as status:
            fields = dict(line.split(":", 1) for line in status if line.startswith("Rss"))
        return {k: int(v.split()[0]) // 1024 for k, v in fields.items() if k in ("RssAnon", "RssFile")}

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            for key, value in self.now().items():
                self.peak[key] = max(self.peak[key], value)

    def __enter__(self) -> "MemorySampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def disk_mb(path: Path) -> float:
    """Blocks actually used (the engine's files are sparse)."""
    return sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file()) / 2**20


def emit(results: list[dict], **figure: object) -> None:
    record = {"bench": "reference_taxa", "commit": git_commit(), "cores": len(os.sched_getaffinity(0)),
              "machine": platform.machine(), **figure}
    results.append(record)
    print(json.dumps(record), flush=True)


def synthetic_lineages(n: int, rng: np.random.Generator) -> list[list[str]]:
    """N species, SPECIES_PER_GENUS to a genus, the genera spread over a fixed tree of families."""
    families: list[list[str]] = []

    def walk(prefix: list[str], depth: int) -> None:
        if depth == len(BRANCHING):
            families.append(prefix)
            return
        for child in range(BRANCHING[depth]):
            walk(prefix + [f"Rank{depth}n{len(families)}c{child}"], depth + 1)

    walk([], 0)
    n_genera = max(1, n // SPECIES_PER_GENUS)
    genus_family = rng.integers(0, len(families), n_genera)
    letters = lambda i: "".join(chr(97 + int(d)) for d in str(i))  # noqa: E731 - an epithet is lower-case letters
    return [[*families[genus_family[i % n_genera]], f"Genus{letters(i % n_genera)}", f"sp{letters(i)}"]
            for i in range(n)]


def write_set(folder: Path, n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    from index.constants import TOL_NAMES_FILE, TOL_VECTORS_FILE

    folder.mkdir(parents=True, exist_ok=True)
    matrix = rng.standard_normal((dim, n), dtype=np.float32)
    matrix /= np.linalg.norm(matrix, axis=0, keepdims=True)
    np.save(folder / TOL_VECTORS_FILE, matrix)
    entries = [[names, f"common {i}"] for i, names in enumerate(synthetic_lineages(n, rng))]
    (folder / TOL_NAMES_FILE).write_text(json.dumps(entries))
    return matrix


def stage_import(args: argparse.Namespace, work: Path, results: list[dict]) -> tuple[np.ndarray, Path]:
    from embed.reference import TaxaOptions, add_tol
    from index.catalog import Catalog
    from index.store import open_store
    from index.tol import read_tol_embeddings
    from taxonomy.taxon import Taxon

    rng = np.random.default_rng(SEED)
    started = time.perf_counter()
    matrix = write_set(work / "tol", args.species, args.dim, rng)
    logger.info("synthetic set written in %.1f s", time.perf_counter() - started)
    options = TaxaOptions(model=VECTOR_SPEC)
    rss_before = peak_rss_mb()
    with open_store(str(work / "store")) as store, Catalog(str(work / "catalog.db")) as catalog:
        started = time.perf_counter()
        bars = ProgressBars("import")
        with MemorySampler() as memory:
            summary = add_tol(work / "tol", options, progress=bars, store=store, catalog=catalog)
        bars.close()
        seconds = time.perf_counter() - started
        rss = peak_rss_mb()
        points = store.count("taxa")
        started = time.perf_counter()
        again = add_tol(work / "tol", options, store=store, catalog=catalog)
        readd = time.perf_counter() - started
    assert again.new == again.copied == 0, again
    disk = disk_mb(work / "store" / "taxa")
    emit(results, stage="import", species=args.species, points=points, dim=args.dim, seconds=round(seconds, 1),
         rows_per_s=round(points / seconds), peak_rss_mb=round(rss), rss_before_mb=round(rss_before),
         peak_anon_mb=memory.peak["RssAnon"], peak_file_mb=memory.peak["RssFile"],
         disk_mb=round(disk), per_rank=summary.per_rank)
    emit(results, stage="re-add", species=args.species, seconds=round(readd, 1),
         rows_per_s=round(points / readd), ratio_to_import=round(readd / seconds, 3))

    # Baseline: the same species rows written as plain taxa (no lookup, no merge, no higher ranks).
    tol = read_tol_embeddings(work / "tol")
    taxa = [Taxon(lineage, lineage.deepest_rank) for lineage in tol.lineages]  # type: ignore[arg-type]
    with open_store(str(work / "naive")) as naive:
        started = time.perf_counter()
        naive.ensure_vector("vit-b-16", args.dim)
        chunk = 512
        for start in range(0, len(taxa), chunk):
            part = taxa[start:start + chunk]
            naive.upsert_taxa("vit-b-16", part, [t.text("taxon_com") for t in part],
                              tol.rows(list(range(start, start + len(part)))), [("naive",)] * len(part))
        naive.optimize()
        naive_seconds = time.perf_counter() - started
    emit(results, stage="naive upsert", species=args.species, points=len(taxa), seconds=round(naive_seconds, 1),
         rows_per_s=round(len(taxa) / naive_seconds), import_ratio=round(seconds / naive_seconds, 2),
         import_rows_ratio=round((points / seconds) / (len(taxa) / naive_seconds), 2))
    shutil.rmtree(work / "naive")
    return matrix, work / "store"


def stage_identify(args: argparse.Namespace, matrix: np.ndarray, store_path: Path, results: list[dict]) -> None:
    from index.filters import SearchFilter
    from index.store import open_store
    from taxonomy import Rank

    rng = np.random.default_rng(SEED + 1)
    species = np.ascontiguousarray(matrix.T)  # (N, dim), unit rows: cosine = dot
    # A query near a known species, as a photo's embedding would be near its species' text vector.
    picks = rng.integers(0, species.shape[0], args.queries + BURN_IN)
    queries = species[picks] + 0.9 * rng.standard_normal((len(picks), args.dim), dtype=np.float32) / np.sqrt(args.dim)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    only_species = SearchFilter(rank=Rank.SPECIES)
    with open_store(str(store_path)) as store:
        hnsw, exact, hits, first = [], [], 0, 0
        for i, query in enumerate(queries):
            started = time.perf_counter()
            found = store.search("taxa", "vit-b-16", query, k=K, filter=only_species, hnsw_ef=args.hnsw_ef)
            took = time.perf_counter() - started
            started = time.perf_counter()
            scores = species @ query
            top = np.argpartition(-scores, K)[:K]
            top = top[np.argsort(-scores[top])]
            numpy_took = time.perf_counter() - started
            if i < BURN_IN:
                continue
            hnsw.append(took)
            exact.append(numpy_took)
            want = {float(round(s, 4)) for s in scores[top]}
            hits += len(want & {float(round(h.score, 4)) for h in found})
            first += bool(found) and abs(found[0].score - float(scores[top[0]])) < 1e-4
    p50, p50_numpy = float(np.median(hnsw)) * 1000, float(np.median(exact)) * 1000
    emit(results, stage="identify", species=args.species, k=K, hnsw_ef=args.hnsw_ef, queries=args.queries,
         p50_ms=round(p50, 2), p95_ms=round(float(np.percentile(hnsw, 95)) * 1000, 2),
         numpy_p50_ms=round(p50_numpy, 2), speedup_vs_numpy=round(p50_numpy / p50, 2),
         recall_at_5=round(hits / (K * args.queries), 3), top1_agreement=round(first / args.queries, 3))


def stage_encode(args: argparse.Namespace, results: list[dict]) -> None:
    import torch

    from embed.encoder import Encoder
    from embed.models import load_model
    from taxonomy import Lineage

    lineage = Lineage.from_ranks(["Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Pica", "hudsonia"],
                                 "black-billed magpie")
    from taxonomy import template_texts

    texts = (template_texts(lineage, "taxon_com") * (ENCODE_STRINGS // 81 + 1))[:ENCODE_STRINGS]
    for spec in ("tol-tiny", VECTOR_SPEC):
        encoder = Encoder(load_model(spec), text_batch_size=256)
        encoder.encode_texts(texts[:256])  # burn-in
        started = time.perf_counter()
        encoder.encode_texts(texts)
        rate = len(texts) / (time.perf_counter() - started)
        emit(results, stage="encode", model=spec, device="cpu", threads=torch.get_num_threads(),
             strings_per_s=round(rate), species=args.species,
             hours_81_templates=round(args.species * 81 / rate / 3600, 1),
             minutes_1_template=round(args.species / rate / 60, 1), speedup_1_template=81)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(logging.INFO)
    results: list[dict] = []
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        matrix, store_path = stage_import(args, work, results)
        stage_identify(args, matrix, store_path, results)
    if not args.skip_encode:
        stage_encode(args, results)
    for record in results:
        figures = {k: v for k, v in record.items() if k not in ("bench", "commit", "cores", "machine", "per_rank")}
        print("  ".join(f"{k}={v}" for k, v in figures.items()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
