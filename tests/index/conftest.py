"""Real files for the catalog tests: images made with Pillow, bad files made on purpose, SQLite in tmp_path."""
from __future__ import annotations

import csv
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import EpsImagePlugin, Image

from index.catalog import Catalog
from taxonomy import Lineage

MAGPIE = Lineage.from_ranks(["Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Pica", "hudsonia"],
                            "black-billed magpie")
JAY = Lineage.from_ranks(["Animalia", "Chordata", "Aves", "Passeriformes", "Corvidae", "Cyanocitta", "cristata"],
                         "blue jay")
MULBERRY = Lineage.from_ranks(["Plantae", "Streptophyta", "Magnoliopsida", "Rosales", "Moraceae", "Morus", "alba"])
GANNET = Lineage.from_ranks(["Animalia", "Chordata", "Aves", "Suliformes", "Sulidae", "Morus", "bassanus"])

HEADER = ["filepath", "kingdom", "phylum", "class", "order", "family", "genus", "species", "common_name", "split"]


def make_image(path: Path, size: tuple[int, int] = (32, 24), colour: tuple[int, ...] | int = (200, 40, 40),
               mode: str = "RGB", fmt: str | None = None, **save: object) -> Path:
    """An image file at `path` (folders created); the format follows the suffix unless `fmt` is given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path, fmt, **save)
    return path


def make_noisy_jpeg(path: Path, size: tuple[int, int] = (256, 192), seed: int = 0) -> Path:
    """A JPEG with enough entropy-coded data that cutting it leaves a truncated scan."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.frombytes("RGB", size, bytes((i * 7919 + seed * 104729) % 251 for i in range(size[0] * size[1] * 3))) \
        .save(path, "JPEG", quality=95)
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def make_png_bomb(path: Path, side: int = 30_000) -> Path:
    """A PNG whose header claims side x side pixels (900 M, over Pillow's default limit) in ~100 bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1-bit greyscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
                     + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _png_chunk(b"IEND", b""))
    return path


# A whole EPS file: Pillow's EPS plugin reads this header and would hand the file to Ghostscript.
EPS = (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 32 24\n%%EndComments\n"
       b"newpath 0 0 moveto 32 24 lineto stroke\nshowpage\n%%EOF\n")


def fake_ghostscript(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make Pillow's EPS plugin run a `gs` that leaves a mark and fails; returns the mark's path.

    The mark shows whether Ghostscript was ever started, and the failure is the raw
    `CalledProcessError` a real Ghostscript failure gives.
    """
    folder.mkdir(parents=True, exist_ok=True)
    mark = folder / "ghostscript-ran"
    gs = folder / "gs"
    gs.write_text(f"#!/bin/sh\ntouch '{mark}'\nexit 1\n")
    gs.chmod(0o755)
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", str(gs))
    return mark


def make_strip(path: Path, size: tuple[int, int] = (40_000, 2)) -> Path:
    """A bilevel PNG of an extreme shape in under a hundred bytes."""
    return make_image(path, size=size, mode="1", colour=0)


def make_grey_tiff(path: Path, values: list[float], dtype: type) -> Path:
    """A one-row greyscale TIFF of 32-bit floats (mode "F") or integers (mode "I")."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.array([values], dtype=dtype)).save(path, "TIFF")
    return path


def lineage_row(path: str, lineage: Lineage, split: str = "") -> list[str]:
    return [path, *lineage.names, lineage.common_name, split]


def write_csv(path: Path, rows: list[list[str]], header: list[str] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header or HEADER)
        writer.writerows(rows)
    return path


@pytest.fixture
def catalog(db_url: str) -> Iterator[Catalog]:
    """A new catalog, once on SQLite and once on PostgreSQL."""
    with Catalog(db_url) as opened:
        yield opened


@pytest.fixture
def collection(tmp_path: Path) -> tuple[Path, Path]:
    """Three good images of two species and their CSV catalog: (catalog, images root)."""
    root = tmp_path / "images"
    make_image(root / "birds" / "magpie1.jpg", colour=(10, 10, 10))
    make_image(root / "birds" / "magpie2.png", colour=(20, 20, 20))
    make_image(root / "birds" / "jay.jpg", colour=(30, 30, 200))
    rows = [lineage_row("birds/magpie1.jpg", MAGPIE, "train"), lineage_row("birds/magpie2.png", MAGPIE, "val"),
            lineage_row("birds/jay.jpg", JAY, "train")]
    return write_csv(tmp_path / "catalog.csv", rows), root
