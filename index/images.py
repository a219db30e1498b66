"""The one safe way to open a collection's image, used by ingest, the build, the UI and training.

Every failure becomes an `ImageError(path, reason)`: a path that escapes the collection root (`..`,
an absolute path, a symlink pointing outside), a missing, empty, truncated or non-image file, and a
decompression bomb (over `PIL.Image.MAX_IMAGE_PIXELS`; Pillow only warns below twice that limit, here
it is an error). Odd modes (CMYK, 16-bit, palette, alpha) are converted to RGB, never rejected.

Truncation is only detected while `PIL.ImageFile.LOAD_TRUNCATED_IMAGES` is False (Pillow's default).
"""
from __future__ import annotations

import hashlib
import io
import logging
import os
from pathlib import Path
from typing import NamedTuple

from PIL import Image, ImageOps, UnidentifiedImageError

from index.constants import SIXTEEN_BIT_SCALE, WHITE

logger = logging.getLogger(__name__)

_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_EIGHT_BIT_MAX = 255
_ROTATED_ORIENTATIONS = frozenset({5, 6, 7, 8})  # EXIF orientations that swap width and height
_EXIF_ORIENTATION = 0x0112


class ImageError(ValueError):
    """An image that cannot be used, with the path as given and a readable reason."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ImageInfo(NamedTuple):
    """What ingest records of a file; unpacks as `(sha256, bytes, width, height)`."""

    sha256: str
    bytes: int
    width: int  # as displayed, EXIF orientation applied
    height: int


def resolve_inside(root: str | os.PathLike[str], relpath: str) -> Path:
    """The real path of `relpath` under `root`, refusing anything that leads outside it.

    Raises:
        ImageError: `relpath` is absolute or empty, or it (or a symlink on the way) leaves `root`.
    """
    if not relpath or not relpath.strip():
        raise ImageError(relpath, "empty path")
    if Path(relpath).is_absolute() or relpath.startswith(("/", "\\")):
        raise ImageError(relpath, f"absolute path; paths must be relative to the images root {root}")
    base = Path(root).resolve()
    target = (base / relpath).resolve()
    if not target.is_relative_to(base):
        what = "symlink pointing" if (base / relpath).is_symlink() else "path leading"
        raise ImageError(relpath, f"{what} outside the images root {base}")
    return target


def _read(root: str | os.PathLike[str], relpath: str) -> bytes:
    path = resolve_inside(root, relpath)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageError(relpath, f"file not found under {root}") from None
    except IsADirectoryError:
        raise ImageError(relpath, "is a folder, not an image file") from None
    except OSError as e:
        raise ImageError(relpath, f"cannot read: {e.strerror or e}") from e
    if not data:
        raise ImageError(relpath, "empty file (0 bytes)")
    return data


def _decode(relpath: str, data: bytes, draft_to: tuple[int, int] | None = None
            ) -> tuple[Image.Image, tuple[int, int]]:
    """Open and fully decode, so that truncation and bombs surface here and not later.

    A JPEG is decoded at the smallest DCT scale that keeps it at least `draft_to`; the scale still
    reads every entropy-coded byte, so truncation is found all the same. Returns the image and its
    stored size.
    """
    try:
        # Pillow raises over twice MAX_IMAGE_PIXELS and only warns over it; the check below makes the
        # warning an error too. `warnings.catch_warnings` would do it, but it is not thread-safe and
        # ingest decodes in threads.
        image = Image.open(io.BytesIO(data))
        size = image.size
        limit = Image.MAX_IMAGE_PIXELS
        if limit is not None and size[0] * size[1] > limit:
            raise Image.DecompressionBombError(f"{size[0]}x{size[1]} = {size[0] * size[1]} pixels")
        if draft_to is not None and image.format == "JPEG":
            image.draft(image.mode, draft_to)
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(relpath, f"decompression bomb: more pixels than the limit of "
                                  f"{Image.MAX_IMAGE_PIXELS} ({e})") from e
    except UnidentifiedImageError as e:
        raise ImageError(relpath, "not an image file (unrecognised format)") from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        reason = "truncated image" if "truncated" in str(e) else f"cannot decode: {e}"
        raise ImageError(relpath, reason) from e
    return image, size


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # a broken EXIF block must not cost the image
        return 1


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB: alpha composited on white, 16-bit scaled to 8, palette and CMYK converted."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "P" and "transparency" in image.info:
        image, mode = image.convert("RGBA"), "RGBA"
    if mode in _ALPHA_MODES:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*WHITE, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode in _SIXTEEN_BIT_MODES or (mode == "I" and (image.getextrema()[1] or 0) > _EIGHT_BIT_MAX):
        return image.convert("I").point(lambda v: v * SIXTEEN_BIT_SCALE).convert("L").convert("RGB")
    return image.convert("RGB")


def open_image(root: str | os.PathLike[str], relpath: str, min_side: int | None = None) -> Image.Image:
    """The image at `relpath` under `root`, decoded, upright (EXIF orientation) and in RGB.

    With `min_side` (e.g. the model's 224), a large JPEG may be decoded at 1/2, 1/4 or 1/8 scale,
    never below `min_side` on either side: a resize to that size afterwards gives the same picture
    for a fraction of the decoding.

    Raises:
        ImageError: the path escapes `root`, or the file is missing, empty, truncated, not an
            image, or a decompression bomb.
    """
    draft_to = (min_side, min_side) if min_side else None
    image, _ = _decode(relpath, _read(root, relpath), draft_to)
    try:
        if _orientation(image) != 1:
            image = ImageOps.exif_transpose(image)
        return to_rgb(image)
    except (OSError, ValueError) as e:
        raise ImageError(relpath, f"cannot convert {image.mode} to RGB: {e}") from e


def inspect_image(root: str | os.PathLike[str], relpath: str) -> ImageInfo:
    """Hash and size the file, and decode it once (JPEGs at 1/8 scale) to prove it is whole.

    Raises:
        ImageError: as `open_image`.
    """
    data = _read(root, relpath)
    digest = hashlib.sha256(data).hexdigest()
    image, (width, height) = _decode(relpath, data, draft_to=(1, 1))  # smallest scale: size comes from the header
    if _orientation(image) in _ROTATED_ORIENTATIONS:
        width, height = height, width
    return ImageInfo(digest, len(data), width, height)

