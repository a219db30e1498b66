"""How fast the demo collection draws and writes, on one core.

Three paths per size, over the same organisms and seeds, after a burn-in:
  render       drawing only, the picture kept in memory;
  png-save     baseline: drawing, then `Image.save(path)` as PNG, one file per picture;
  jpeg-bytes   the collection's path: drawing, fixed-quality JPEG into memory, one write per file.
Rates are per CPU second of this process (one core; the figure that holds on a busy machine), with
the wall-clock time beside it. A table goes to stderr and one JSON line per result to stdout
(device, commit, size, images, rates).

    .venv/bin/python bench/demo_render.py [--images 1000] [--sizes 128 224] [--burn-in 20]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from demo.collection import encode  # noqa: E402
from demo.render import render  # noqa: E402
from demo.species import choose  # noqa: E402
from demo.traits import keyed_rng, traits_of  # noqa: E402

from common import git_commit  # bench/ is the script's folder, first on sys.path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000, help="pictures per measured path and size")
    parser.add_argument("--sizes", type=int, nargs="+", default=[128], help="picture sides in pixels")
    parser.add_argument("--burn-in", type=int, default=20, help="pictures drawn before measuring")
    parser.add_argument("--species", type=int, default=300, help="organisms cycled through")
    return parser.parse_args(argv)



def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    organisms = [(lineage.key(), traits_of(lineage)) for lineage in choose(args.species, seed=0)]

    def picture(i: int, size: int):
        key, traits = organisms[i % len(organisms)]
        return render(traits, size, keyed_rng("bench", key, i))

    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        paths: dict[str, Callable[[int, int], None]] = {  # the baseline first: the others are compared to it
            "png-save": lambda i, size: picture(i, size).save(out / f"{i}.png"),
            "jpeg-bytes": lambda i, size: (out / f"{i}.jpg").write_bytes(encode(picture(i, size))),
            "render": lambda i, size: picture(i, size),
        }
        device = f"cpu: {platform.processor() or platform.machine()}, 1 process ({os.cpu_count()} cores seen)"
        commit = git_commit()
        header = ("size", "path", "images", "cpu s", "wall s", "img/s (cpu)", "vs png-save")
        print("{:>5} {:<11} {:>7} {:>7} {:>7} {:>12} {:>12}".format(*header), file=sys.stderr)
        for size in args.sizes:
            for i in range(args.burn_in):
                paths["jpeg-bytes"](i, size)
            baseline = 0.0
            for name, step in paths.items():
                wall, cpu = time.perf_counter(), time.process_time()
                for i in range(args.images):
                    step(i, size)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                rate = args.images / cpu
                baseline = baseline or rate
                print(f"{size:>5} {name:<11} {args.images:>7} {cpu:>7.2f} {wall:>7.2f} {rate:>12.1f} "
                      f"{rate / baseline:>11.2f}x", file=sys.stderr)
                print(json.dumps({"bench": "demo_render", "path": name, "size": size, "images": args.images,
                                  "cpu_seconds": round(cpu, 3), "wall_seconds": round(wall, 3),
                                  "images_per_cpu_s": round(rate, 1), "images_per_wall_s": round(args.images / wall, 1),
                                  "device": device, "commit": commit}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
