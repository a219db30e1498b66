"""A seeded tiny collection for the training tests: real image files (PNG and JPEG) and a real CSV catalog."""
from __future__ import annotations

import csv
import random
from pathlib import Path

from PIL import Image, ImageDraw

# Two kingdoms, a homonym-free handful of real lineages, each with its own colour and shape.
LINEAGES = [
    ("Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Pica", "hudsonia", "black-billed magpie"),
    ("Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Corvus", "corax", "common raven"),
    ("Animalia", "Chordata", "Mammalia", "Carnivora", "Felidae", "Lynx", "rufus", "bobcat"),
    ("Animalia", "Arthropoda", "Insecta", "Lepidoptera", "Nymphalidae", "Danaus", "plexippus", "monarch"),
    ("Plantae", "Tracheophyta", "Magnoliopsida", "Rosales", "Moraceae", "Morus", "alba", "white mulberry"),
    ("Plantae", "Tracheophyta", "Liliopsida", "Poales", "Poaceae", "Zea", "mays", "maize"),
]
COLUMNS = ["filepath", "kingdom", "phylum", "class", "order", "family", "genus", "species", "common_name", "split"]


def make_tiny_collection(out: Path, per_species: int = 8, val_per_species: int = 2, size: int = 32,
                         seed: int = 0) -> tuple[Path, Path]:
    rng = random.Random(seed)
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows = []
    for s, lineage in enumerate(LINEAGES):
        colour = ((s * 97) % 256, (s * 53 + 80) % 256, (s * 31 + 160) % 256)
        for i in range(per_species + val_per_species):
            image = Image.new("RGB", (size, size), tuple(rng.randrange(40) for _ in range(3)))
            draw = ImageDraw.Draw(image)
            x, y = rng.randrange(size // 4), rng.randrange(size // 4)
            box = (x, y, x + size // 2 + s, y + size // 2 + s)
            (draw.ellipse if s % 2 else draw.rectangle)(box, fill=colour)
            name = f"{lineage[5]}_{lineage[6]}_{i}.{'png' if i % 3 == 0 else 'jpg'}"
            image.save(images / name)
            split = "train" if i < per_species else "val"
            rows.append([name, *lineage, split])
    catalog = out / "catalog.csv"
    with catalog.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    return catalog, images
