"""What counts as an image, and how collections on disk name their classes and splits."""
from __future__ import annotations

# File suffixes read as images from folders (compared lower-case); catalogs may name any file.
IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".avif", ".bmp", ".gif", ".tif", ".tiff", ".jp2"}
)
# Ancestor folders with these names give an image its split (iNat21's `train/`, `val/`).
SPLIT_FOLDERS: frozenset[str] = frozenset({"train", "val", "validation", "test"})

# Class folder names: iNat21 `00001_Animalia_..._hudsonia` and Rare Species `Animalia-...-hudsonia`.
CLASS_FOLDER_SEPARATORS: tuple[str, ...] = ("_", "-")

# Pillow's names of the raster formats that are decoded; any other (EPS, which runs Ghostscript, PDF,
# PSD, ...) is refused by name, so no external program is ever started on a user's file.
ACCEPTED_IMAGE_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "AVIF", "TIFF", "BMP", "GIF", "JPEG2000")
# Longest side over shortest side. A model's resize scales the short side up to ~224 px, so a wider
# image costs memory in proportion: a 40000x2 strip would grow to 4 GB. Wider images are refused.
MAX_ASPECT_RATIO = 20

WHITE = (255, 255, 255)
SIXTEEN_BIT_MAX = 65535  # the white of 16-bit greyscale; 32-bit integers scale by their own maximum
FLOAT_MAX = 1.0  # the white of floating-point greyscale; larger values scale by their own maximum
