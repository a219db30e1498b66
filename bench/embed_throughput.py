"""Images/s of `python -m embed build` against a naive loop, on a demo collection, in one run.

  naive   pybioclip's default: one PIL decode at a time in the main process, batches of 10,
          the model's preprocessing, encode; nothing written anywhere; torch's default threads.
  naive-1t  the same with one torch thread (on CPU only): on a small or shared machine, torch's
          default intra-op threads spin against each other, so this separates what the build
          gains from batching and parallel decoding from what it gains by setting threads.
  build   `embed.build.run_build`'s image stage: DataLoader workers decode and preprocess,
          batches of --batch-size are encoded, written to an embedded Qdrant store and marked in
          the SQL catalog (so it does more work per image than the naive loop).

Both use the same loaded model. The collection is drawn once per (images, size) and cached
under var/bench/. After a burn-in, the two paths alternate --repeats times and the best rate of
each is kept (the machine may be shared). A table goes to stderr, one JSON line per result to
stdout (device, commit, batch size, ...).

    .venv/bin/python bench/embed_throughput.py [--model tol-tiny] [--device cpu] [--images 1024]
        [--size 128] [--batch-size 64] [--workers 2] [--repeats 2]
    # on a GPU: --model ViT-B-16 --device cuda --size 224 --batch-size 256 --workers 14
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import git_commit  # bench/ is the script's folder, first on sys.path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from toolkit.cli import setup_logging  # noqa: E402
CACHE = REPO / "var" / "bench"
NAIVE_BATCH = 10  # pybioclip's default batch size
SPECIES = 12
BURN_IN_BATCHES = 3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tol-tiny", help="model spec (default: tol-tiny)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--images", type=int, default=1024,
                        help="images of the demo collection, rounded up to 12 species (default: 1024)")
    parser.add_argument("--size", type=int, default=128, help="side of the demo pictures in px (default: 128)")
    parser.add_argument("--batch-size", type=int, default=64, help="build batch size (default: 64)")
    parser.add_argument("--workers", type=int, default=None,
                        help="build DataLoader workers (default: the build's, embed.build.default_workers)")
    parser.add_argument("--repeats", type=int, default=2, help="alternating measured rounds (default: 2)")
    parser.add_argument("--cache", type=Path, default=CACHE, help=f"collection cache (default: {CACHE})")
    return parser.parse_args(argv)



def _collection(cache: Path, images: int, size: int):
    from demo.collection import CollectionPaths, make_collection

    out = cache / f"demo-{images}-{size}"
    paths = CollectionPaths(catalog=out / "catalog.csv", images=out / "images")
    if not paths.catalog.is_file():
        print(f"drawing {images} demo images at {size} px into {out} (once)", file=sys.stderr)
        paths = make_collection(out, species=SPECIES, per_species=math.ceil(images / SPECIES), size=size, seed=0)
    return paths


def naive_rate(records, loaded, encoder) -> float:
    """One decode at a time, batches of 10, as pybioclip's `predict` loop does."""
    import torch

    from index.collection.images import open_image

    start = time.perf_counter()
    for i in range(0, len(records), NAIVE_BATCH):
        chunk = records[i:i + NAIVE_BATCH]
        pixels = torch.stack([loaded.preprocess(open_image(r.root, r.path)) for r in chunk])
        encoder.encode_images(pixels)
    if encoder.device.type == "cuda":
        torch.cuda.synchronize()
    return len(records) / (time.perf_counter() - start)


def build_rate(collection, loaded, args, workdir: Path) -> tuple[float, int]:
    """A fresh store and catalog each round, ingested first (not timed); the image stage's rate."""
    from embed.build import BuildOptions, run_build, set_cpu_threads
    from index.catalog import Catalog
    from index.collection.readers import read_collection

    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    db = str(workdir / "catalog.db")
    with Catalog(db) as catalog:
        catalog.ingest(read_collection(collection.catalog, collection.images))
    threads = None
    if args.device == "cpu":
        import torch

        threads = torch.get_num_threads()
        set_cpu_threads(args.workers)
    try:
        summary = run_build(BuildOptions(model=args.model, store=str(workdir / "qdrant"), db=db,
                                         batch_size=args.batch_size, workers=args.workers, device=args.device),
                            loaded=loaded)
    finally:
        if threads is not None:
            import torch

            torch.set_num_threads(threads)
    return summary.rate, summary.images_embedded


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.workers is None:
        from embed.build import default_workers

        args.workers = default_workers(args.device)
    setup_logging(logging.WARNING)
    import torch

    from embed.encoder import Encoder
    from embed.models import load_model
    from index.catalog import Catalog
    from index.collection.readers import read_collection

    collection = _collection(args.cache, args.images, args.size)
    loaded = load_model(args.model, device=args.device)
    encoder = Encoder(loaded)
    with tempfile.TemporaryDirectory() as tmp:
        with Catalog(str(Path(tmp) / "list.db")) as catalog:
            catalog.ingest(read_collection(collection.catalog, collection.images))
            records = catalog.images()
        naive_rate(records[: BURN_IN_BATCHES * NAIVE_BATCH], loaded, encoder)  # burn-in
        default_threads = torch.get_num_threads()
        cpu = not args.device.startswith("cuda")
        best = {"naive": 0.0, "naive-1t": 0.0, "build": 0.0} if cpu else {"naive": 0.0, "build": 0.0}
        n_build = 0
        for _ in range(args.repeats):
            best["naive"] = max(best["naive"], naive_rate(records, loaded, encoder))
            if cpu:
                torch.set_num_threads(1)
                best["naive-1t"] = max(best["naive-1t"], naive_rate(records, loaded, encoder))
                torch.set_num_threads(default_threads)
            rate, n_build = build_rate(collection, loaded, args, Path(tmp) / "build")
            best["build"] = max(best["build"], rate)
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    common = {"bench": "embed_throughput", "device": args.device, "device_name": device, "commit": git_commit(),
              "model": args.model, "size": args.size}
    rows = []
    for method, rate in best.items():
        build = method == "build"
        rows.append({**common, "method": method, "images": n_build if build else len(records),
                     "batch_size": args.batch_size if build else NAIVE_BATCH,
                     "workers": args.workers if build else 0,
                     "threads": (1 if method == "naive-1t" else default_threads) if not build or not cpu
                     else max(1, _cores() - args.workers),
                     "images_per_s": round(rate, 1),
                     "build_over_this": round(best["build"] / rate, 2) if rate else None})
    print(f"\n{'method':<9} {'batch':>6} {'workers':>8} {'threads':>8} {'images/s':>10} {'build/this':>11}",
          file=sys.stderr)
    for row in rows:
        print(f"{row['method']:<9} {row['batch_size']:>6} {row['workers']:>8} {row['threads']:>8} "
              f"{row['images_per_s']:>10.1f} {row['build_over_this']:>10.2f}x", file=sys.stderr)
    print(f"({args.model} on {args.device} [{device}], {args.size} px, {len(records)} images, "
          f"best of {args.repeats})", file=sys.stderr)
    for row in rows:
        print(json.dumps(row))
    return 0


def _cores() -> int:
    from embed.build import cpu_cores

    return cpu_cores()


if __name__ == "__main__":
    sys.exit(main())
