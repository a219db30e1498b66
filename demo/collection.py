"""Write the demo collection: the images and a SPEC §2 catalog with train / val / unseen splits.

`unseen` holds whole species kept out of training (about a tenth, at most one per genus, only from
genera with another species in training) for zero-shot tests; `val` holds about a fifth of the
pictures of every other species. Everything is a function of the arguments: the same call writes
the same bytes.
"""
from __future__ import annotations

import csv
import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from demo.constants import (
    CATALOG_NAME, IMAGE_SUFFIX, IMAGES_DIR, JPEG_QUALITY, LICENSE, MAX_SIZE, MIN_SIZE, SOURCE, SPLIT_TRAIN,
    SPLIT_UNSEEN, SPLIT_VAL, UNSEEN_FRACTION, VAL_FRACTION,
)
from demo.traits import keyed_rng
from taxonomy import Lineage, Rank
from taxonomy.columns import CANONICAL_COLUMNS
from toolkit.cli import Progress

logger = logging.getLogger(__name__)



@dataclass(frozen=True)
class CollectionPaths:
    """Where a collection was written: pass them as `--catalog` and `--images`."""

    catalog: Path
    images: Path


@dataclass(frozen=True)
class DemoImage:
    """One picture to draw and its catalog row."""

    path: str  # relative to the images folder, POSIX
    lineage: Lineage
    index: int  # of the picture within its species
    split: str

    @property
    def id(self) -> str:
        return Path(self.path).stem

    def row(self) -> dict[str, str]:
        return {"filepath": self.path, **self.lineage.as_dict(), "id": self.id, "split": self.split,
                "source": SOURCE, "license": LICENSE}


def validate(species: int, per_species: int, size: int) -> None:
    """Raise ValueError naming the allowed range for a bad argument (species is checked by `choose`)."""
    if species < 1:
        raise ValueError(f"--species must be at least 1, got {species}")
    if per_species < 1:
        raise ValueError(f"--per-species must be at least 1, got {per_species}")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"--size must be between {MIN_SIZE} and {MAX_SIZE} pixels, got {size}")


def unseen_species(chosen: list[Lineage], seed: int) -> set[str]:
    """Keys of the species held out of training: one per genus at most, never a genus's last species."""
    by_genus: dict[str, list[Lineage]] = {}
    for lineage in chosen:
        by_genus.setdefault(lineage.key(Rank.GENUS), []).append(lineage)
    eligible = sorted(key for key, members in by_genus.items() if len(members) >= 2)
    wanted = min(len(eligible), max(1, round(UNSEEN_FRACTION * len(chosen))))
    order = keyed_rng("unseen", seed, *eligible).permutation(len(eligible))[:wanted]
    return {by_genus[eligible[i]][-1].key() for i in order}


def plan(chosen: list[Lineage], per_species: int, seed: int) -> list[DemoImage]:
    """Every picture of the collection with its path and split, species by species."""
    unseen = unseen_species(chosen, seed)
    n_val = round(VAL_FRACTION * per_species) if per_species > 1 else 0
    images: list[DemoImage] = []
    for lineage in chosen:
        folder = f"{lineage.genus}_{lineage.species}"
        val = set(keyed_rng("val", seed, lineage.key()).permutation(per_species)[:n_val].tolist())
        for index in range(per_species):
            split = SPLIT_UNSEEN if lineage.key() in unseen else SPLIT_VAL if index in val else SPLIT_TRAIN
            images.append(DemoImage(f"{folder}/{folder}_{index:03d}{IMAGE_SUFFIX}", lineage, index, split))
    return images


def encode(image, quality: int = JPEG_QUALITY) -> bytes:
    """JPEG bytes at a fixed quality, with no optimisation pass: identical on every run."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def write_catalog(images: list[DemoImage], path: Path) -> None:
    """The SPEC §2 catalog, written to a temporary file and renamed into place."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(CANONICAL_COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(image.row() for image in images)
    os.replace(tmp, path)


def make_collection(
    out: Path, species: int, per_species: int, size: int, seed: int, progress: Progress | None = None
) -> CollectionPaths:
    """Draw `species` x `per_species` pictures of `size` px into `out/images` and write `out/catalog.csv`.

    Args:
        out: the collection folder, created when missing; files of the same names are overwritten.
        progress: called with (fraction done, message) after each species.
    Raises:
        ValueError: for an argument out of range (the message names the range).
    """
    from demo.render import render
    from demo.species import choose
    from demo.traits import traits_of

    validate(species, per_species, size)
    chosen = choose(species, seed)
    images = plan(chosen, per_species, seed)
    out = Path(out)
    root = out / IMAGES_DIR
    for n, lineage in enumerate(chosen):
        traits = traits_of(lineage)
        mine = images[n * per_species:(n + 1) * per_species]
        (root / Path(mine[0].path).parent).mkdir(parents=True, exist_ok=True)
        for image in mine:
            picture = render(traits, size, keyed_rng("image", seed, lineage.key(), image.index))
            (root / image.path).write_bytes(encode(picture))
        if progress is not None:
            progress((n + 1) / len(chosen), lineage.binomial)
    catalog = out / CATALOG_NAME
    write_catalog(images, catalog)
    counts = {split: sum(image.split == split for image in images) for split in (SPLIT_TRAIN, SPLIT_VAL, SPLIT_UNSEEN)}
    logger.info("wrote %d images of %d species to %s (%s)", len(images), len(chosen), root, counts)
    return CollectionPaths(catalog=catalog, images=root)
