"""Collection -> webdataset shards in TreeOfLife-10M's layout (`python -m training shards`).

Each sample is `KEY.jpg` plus the five captions under TreeOfLife-10M's keys (`taxon.txt`,
`sci.txt`, `com.txt`, `sci_com.txt`, `taxon_com.txt`, see `constants.SHARD_TEXT_KEYS`) and the
bare names (`taxonomic_name.txt`, `scientific_name.txt`, `common_name.txt`). KEY is the image's
point id (UUIDv5 of its path), as TreeOfLife-10M keys samples by UUID. JPEG files are copied as
they are; other formats are re-encoded. `sizes.json` lists each shard's sample count.
"""
from __future__ import annotations

import argparse
import io
import json
import logging
import random
from collections.abc import Sequence
from pathlib import Path

from index.collection.entries import CatalogEntry, image_point_id
from taxonomy import Lineage, class_name
from taxonomy.constants import TEXT_TYPES
from training.constants import (
    DEFAULT_PER_SHARD,
    DEFAULT_SEED,
    DEFAULT_SPLIT,
    SHARD_IMAGE_KEY,
    SHARD_JPEG_QUALITY,
    SHARD_PATTERN,
    SHARD_SIZES_FILE,
    SHARD_TEXT_KEYS,
)
from training.text import lineage_captions

logger = logging.getLogger(__name__)

ALL_SPLITS = "all"
_JPEG_MAGIC = b"\xff\xd8\xff"


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--catalog", help="CSV catalog (SPEC §2); optional with class folders")
    parser.add_argument("--images", required=True, help="images root of the collection")
    parser.add_argument("--out", required=True, help="folder for shard-NNNNNN.tar and sizes.json")
    parser.add_argument("--per-shard", type=int, default=DEFAULT_PER_SHARD, help="samples per shard")
    parser.add_argument("--split", default=DEFAULT_SPLIT, help=f"split to write, or {ALL_SPLITS!r}")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the order across shards")
    return parser


def sample_texts(lineage: Lineage) -> dict[str, str]:
    """The text keys of one sample: captions of the five types, and the bare names."""
    texts = {SHARD_TEXT_KEYS[t]: text for t, text in zip(TEXT_TYPES, lineage_captions(lineage))}
    texts["taxonomic_name.txt"] = class_name(lineage, "taxonomic")
    texts["scientific_name.txt"] = lineage.binomial
    texts["common_name.txt"] = lineage.common_name
    return texts


def _jpeg_bytes(root: Path, entry: CatalogEntry) -> bytes:
    from index.collection.images import open_image, resolve_inside  # Pillow; kept out of `--help`

    image = open_image(root, entry.path)  # validates the file, whatever its format
    data = resolve_inside(root, entry.path).read_bytes()
    if data.startswith(_JPEG_MAGIC):
        return data
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=SHARD_JPEG_QUALITY)
    return buffer.getvalue()


def write_shards(root: Path, entries: Sequence[CatalogEntry], out: Path, per_shard: int = DEFAULT_PER_SHARD,
                 seed: int = DEFAULT_SEED) -> list[Path]:
    """Write the entries, shuffled by `seed`, `per_shard` to a tar; returns the shard files."""
    import webdataset as wds
    from tqdm import tqdm

    from index.collection.images import ImageError

    if per_shard < 1:
        raise ValueError(f"--per-shard must be at least 1, got {per_shard}")
    out.mkdir(parents=True, exist_ok=True)
    order = list(entries)
    random.Random(seed).shuffle(order)
    sizes: dict[str, int] = {}
    paths: list[Path] = []
    writer = None
    for entry in tqdm(order, desc="shards", unit="img"):
        try:
            image = _jpeg_bytes(root, entry)
        except ImageError as e:
            logger.warning("skipped: %s", e)
            continue
        if writer is None or sizes[paths[-1].name] == per_shard:
            if writer is not None:
                writer.close()
            paths.append(out / (SHARD_PATTERN % len(paths)))
            sizes[paths[-1].name] = 0
            writer = wds.TarWriter(str(paths[-1]))
        sample = {"__key__": image_point_id(entry.path), SHARD_IMAGE_KEY: image}
        sample.update({key: text.encode("utf-8") for key, text in sample_texts(entry.lineage).items()})
        writer.write(sample)
        sizes[paths[-1].name] += 1
    if writer is not None:
        writer.close()
    (out / SHARD_SIZES_FILE).write_text(json.dumps(sizes, indent=2), encoding="utf-8")
    logger.info("%d samples in %d shards under %s", sum(sizes.values()), len(paths), out)
    return paths


def shard_spec(paths: Sequence[Path]) -> str:
    """The brace spec of consecutive shards: `dir/shard-{000000..000003}.tar`."""
    if len(paths) == 1:
        return str(paths[0])
    first, last = paths[0].stem.split("-")[-1], paths[-1].stem.split("-")[-1]
    return str(paths[0].parent / f"shard-{{{first}..{last}}}.tar")


def run(args: argparse.Namespace) -> list[Path]:
    from training.data import read_split

    split = None if args.split == ALL_SPLITS else args.split
    root, entries = read_split(args.catalog, args.images, split)
    paths = write_shards(root, entries, Path(args.out), args.per_shard, args.seed)
    print(shard_spec(paths))  # the command's result: what --shards takes
    return paths

