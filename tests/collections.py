"""The tests' one synthetic collection builder: real image files (JPEG, PNG) and a real CSV catalog, seeded.

It is local to the tests so that they do not depend on the demo package (embed must not import
demo, and tests of embed should not need it either). The demo's own generator (`demo.collection`)
is what the demo tests test, and what the shared built index (tests/built_index.py) draws: real
NCBI taxa that the UI and search tests name.
"""
from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

# Rows: kingdom .. species epithet, then the common name.
Species = tuple[str, str, str, str, str, str, str, str]

# Three kingdoms' worth of homonyms and an empty rank, as SPEC §2-§3 describe.
SPECIES: tuple[Species, ...] = (
    ("Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Pica", "hudsonia", "black-billed magpie"),
    ("Animalia", "Chordata", "Aves", "Suliformes", "Sulidae", "Morus", "bassanus", "northern gannet"),
    ("Plantae", "Tracheophyta", "Magnoliopsida", "Rosales", "Moraceae", "Morus", "alba", "white mulberry"),
    ("Animalia", "Chordata", "Actinopteri", "", "Pomacentridae", "Amphiprion", "ocellaris", "clown anemonefish"),
)
# Two kingdoms, a homonym-free handful of real lineages: the training tests' taxa.
TRAINING_SPECIES: tuple[Species, ...] = (
    ("Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Pica", "hudsonia", "black-billed magpie"),
    ("Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Corvus", "corax", "common raven"),
    ("Animalia", "Chordata", "Mammalia", "Carnivora", "Felidae", "Lynx", "rufus", "bobcat"),
    ("Animalia", "Arthropoda", "Insecta", "Lepidoptera", "Nymphalidae", "Danaus", "plexippus", "monarch"),
    ("Plantae", "Tracheophyta", "Magnoliopsida", "Rosales", "Moraceae", "Morus", "alba", "white mulberry"),
    ("Plantae", "Tracheophyta", "Liliopsida", "Poales", "Poaceae", "Zea", "mays", "maize"),
)
CSV_COLUMNS = ("filepath", "kingdom", "phylum", "class", "order", "family", "genus", "species", "common_name",
               "split", "source", "license")


@dataclass(frozen=True)
class TestCollection:
    __test__ = False  # not a test class, whatever its name

    catalog: Path
    images: Path
    paths: tuple[str, ...]  # relative to `images`, in catalog order


def _picture(s: int, size: int, rng: np.random.Generator) -> Image.Image:
    """A (size + 8) x size picture: noise around species `s`'s grey, with its shape in its colour."""
    base = np.full((size, size + 8, 3), (60 * s) % 255, dtype=np.uint8)
    image = Image.fromarray(np.clip(base + rng.integers(0, 120, base.shape), 0, 255).astype(np.uint8))
    colour = ((s * 97) % 256, (s * 53 + 80) % 256, (s * 31 + 160) % 256)
    x, y = (int(v) for v in rng.integers(0, size // 4 + 1, 2))
    box = (x, y, x + size // 2 + s, y + size // 2 + s)
    (ImageDraw.Draw(image).ellipse if s % 2 else ImageDraw.Draw(image).rectangle)(box, fill=colour)
    return image


def make_collection(root: Path, per_species: int, size: int = 64, seed: int = 0, species: int | None = None,
                    lineages: Sequence[Species] = SPECIES, val_every: int = 4, png_every: int = 0) -> TestCollection:
    """`per_species` pictures of each of the first `species` (default all) `lineages`, and their catalog.

    Files are `root/images/<Genus>_<epithet>/<i>.jpg`, and `root/catalog.csv` lists them. Pictures
    0, `val_every`, 2 x `val_every`, ... of each species are in the val split, the rest in train;
    with `png_every`, pictures 0, `png_every`, ... are PNG files.
    """
    rng = np.random.default_rng(seed)
    images = root / "images"
    rows = []
    for s, names in enumerate(lineages[:species]):
        folder = images / f"{names[5]}_{names[6]}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_species):
            png = png_every and i % png_every == 0
            path = f"{folder.name}/{i:04d}.{'png' if png else 'jpg'}"
            _picture(s, size, rng).save(images / path, **({} if png else {"quality": 90}))
            rows.append((path, *names, "val" if i % val_every == 0 else "train", "generated", "CC0"))
    catalog = root / "catalog.csv"
    with catalog.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(rows)
    return TestCollection(catalog, images, tuple(row[0] for row in rows))


def _tar_add(tar, name: str, data: bytes) -> None:
    import io
    import tarfile

    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0  # the same bytes on every run: shards are as stable as the files they replace
    tar.addfile(info, io.BytesIO(data))


def make_shards(folder: Path, shards: int, per_shard: int, size: int = 32, seed: int = 0,
                lineages: Sequence[Species] = SPECIES, extra: dict[str, dict[str, bytes]] | None = None
                ) -> list[Path]:
    """`shards` tars `folder/shard-NNNNNN.tar` of `per_shard` samples each, in TreeOfLife-10M's layout:
    `KEY.jpg`, `KEY.taxonomic_name.txt` (the names with empty ranks left out), `KEY.scientific_name.txt`,
    `KEY.common_name.txt`, `KEY.taxon.txt` (a caption). Species cycle through `lineages`; keys are
    `s<shard>-<i>`. `extra`: more samples, by key, for the last shard (bad ones, for the tests).
    """
    import io
    import tarfile

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    n = 0
    for s in range(shards):
        path = folder / f"shard-{s:06d}.tar"
        with tarfile.open(path, "w") as tar:
            for i in range(per_shard):
                names = lineages[n % len(lineages)]
                n += 1
                buffer = io.BytesIO()
                _picture(n % len(lineages), size, rng).save(buffer, format="JPEG", quality=90)
                key = f"s{s}-{i:04d}"
                taxonomic = " ".join(name for name in names[:7] if name)
                _tar_add(tar, f"{key}.jpg", buffer.getvalue())
                _tar_add(tar, f"{key}.taxonomic_name.txt", taxonomic.encode())
                _tar_add(tar, f"{key}.scientific_name.txt", f"{names[5]} {names[6]}".encode())
                _tar_add(tar, f"{key}.common_name.txt", names[7].encode())
                _tar_add(tar, f"{key}.taxon.txt", f"a photo of {taxonomic}.".encode())
            if s == shards - 1:
                for key, members in (extra or {}).items():
                    for suffix, data in members.items():
                        _tar_add(tar, f"{key}.{suffix}", data)
        paths.append(path)
    return paths
