"""The one safe way to open a collection's image, used by ingest, the build, the UI and training.

Every failure becomes an `ImageError(path, reason)`: a path that escapes the collection root (`..`,
an absolute path, a symlink pointing outside, a NUL byte), a missing, empty, truncated or non-image
file, a format outside `ACCEPTED_IMAGE_FORMATS` (named: EPS would run Ghostscript, so no plugin
outside the list is ever tried), an aspect ratio over `MAX_ASPECT_RATIO` (its resize to the model's
size would take gigabytes), and a decompression bomb (over `PIL.Image.MAX_IMAGE_PIXELS`; Pillow only
warns below twice that limit, here it is an error). Odd modes (CMYK, 16-bit, 32-bit integer or
float, palette, alpha) are converted to RGB, never rejected.

A path through a webdataset shard, `shard-000042.tar/KEY.jpg` (index.collection.shards), names the
member `KEY.jpg` of the tar `shard-000042.tar` under the root: its bytes are read from inside the tar
and go through the same checks as a file's.

Truncation is only detected while `PIL.ImageFile.LOAD_TRUNCATED_IMAGES` is False (Pillow's default).
"""
from __future__ import annotations

import functools
import hashlib
import io
import logging
import math
import os
from pathlib import Path
from typing import NamedTuple

from PIL import EpsImagePlugin, Image, ImageOps, UnidentifiedImageError

from index.collection.constants import (
    ACCEPTED_IMAGE_FORMATS, FLOAT_MAX, MAX_ASPECT_RATIO, SIXTEEN_BIT_MAX, WHITE,
)

logger = logging.getLogger(__name__)

# Should anything in this process open an EPS file all the same, Pillow finds no Ghostscript to run.
EpsImagePlugin.gs_binary = False

_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_WIDE_MODES = frozenset({"I", "F"})  # 32-bit integer and floating-point greyscale
_EIGHT_BIT_MAX = 255
_PREFIX_BYTES = 16  # what Pillow's format checks look at
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
    if "\0" in relpath:
        raise ImageError(relpath.replace("\0", "\\0"), "NUL byte in the path")
    if Path(relpath).is_absolute() or relpath.startswith(("/", "\\")):
        raise ImageError(relpath, f"absolute path; paths must be relative to the images root {root}")
    base = Path(root).resolve()
    target = (base / relpath).resolve()
    if not target.is_relative_to(base):
        what = "symlink pointing" if (base / relpath).is_symlink() else "path leading"
        raise ImageError(relpath, f"{what} outside the images root {base}")
    return target


def tar_member(root: str | os.PathLike[str], relpath: str) -> tuple[Path, str] | None:
    """(the shard, the member) when `relpath` names a sample's image inside a webdataset shard under `root`
    (`shard-000042.tar/KEY.jpg`, see index.collection.shards), else None. Raises ImageError as `resolve_inside`."""
    from index.collection.shards import split_member

    target = resolve_inside(root, relpath)
    if target.is_file():
        return None
    return split_member(target, Path(root).resolve())


def _read_member(relpath: str, tar: Path, member: str) -> bytes:
    from index.collection.shards import ShardError, read_member

    try:
        data = read_member(tar, member)
    except KeyError:
        raise ImageError(relpath, f"no member {member} in the shard {tar}") from None
    except ShardError as e:
        raise ImageError(relpath, str(e)) from e
    except OSError as e:
        raise ImageError(relpath, f"cannot read: {e.strerror or e}") from e
    if not data:
        raise ImageError(relpath, "empty file (0 bytes)")
    return data


def _read(root: str | os.PathLike[str], relpath: str) -> bytes:
    path = resolve_inside(root, relpath)
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        inside = tar_member(root, relpath)
        if inside is not None:
            return _read_member(relpath, *inside)
        raise ImageError(relpath, f"file not found under {root}") from None
    except IsADirectoryError:
        raise ImageError(relpath, "is a folder, not an image file") from None
    except OSError as e:
        raise ImageError(relpath, f"cannot read: {e.strerror or e}") from e
    if not data:
        raise ImageError(relpath, "empty file (0 bytes)")
    return data


@functools.cache
def _formats() -> tuple[str, ...]:
    """The accepted formats this Pillow can decode (AVIF and JPEG 2000 depend on how it was built)."""
    Image.init()
    return tuple(name for name in ACCEPTED_IMAGE_FORMATS if name in Image.OPEN)


def _unaccepted(data: bytes) -> str:
    """Why no accepted format opened `data`: the refused format by name when Pillow knows it.

    Only the plugins' signature checks run on the first bytes; their decoders never see the file.
    """
    prefix = data[:_PREFIX_BYTES]
    for name, (_, accept) in Image.OPEN.items():
        if name in ACCEPTED_IMAGE_FORMATS or accept is None:
            continue
        try:
            matched = accept(prefix)
        except Exception:  # a signature check that trips on odd bytes does not recognise them
            continue
        if matched:
            return f"{name} is not an accepted image format (accepted: {', '.join(_formats())})"
    return "not an image file (unrecognised format)"


def _check_size(relpath: str, size: tuple[int, int]) -> None:
    width, height = size
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > limit:
        raise ImageError(relpath, f"decompression bomb: more pixels than the limit of {limit} "
                                  f"({width}x{height} = {width * height} pixels)")
    if min(width, height) < 1:
        raise ImageError(relpath, f"{width}x{height}: no pixels")
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        ratio = max(width, height) / min(width, height)
        shown = f"{ratio:.0f}" if ratio >= 100 else f"{ratio:.1f}"
        raise ImageError(relpath, f"aspect ratio {shown}:1 ({width}x{height} pixels) is over the limit "
                                  f"of {MAX_ASPECT_RATIO}:1")


def _decoding_failure(error: Exception) -> str:
    return "truncated image" if "truncated" in str(error) else f"cannot decode: {error}"


def _open(relpath: str, data: bytes) -> Image.Image:
    """The image's header, read only by the decoders of `ACCEPTED_IMAGE_FORMATS`; its size checked."""
    try:
        image = Image.open(io.BytesIO(data), formats=_formats())
    except UnidentifiedImageError as e:
        raise ImageError(relpath, _unaccepted(data)) from e
    except Image.DecompressionBombError as e:
        raise ImageError(relpath, f"decompression bomb: more pixels than the limit of "
                                  f"{Image.MAX_IMAGE_PIXELS} ({e})") from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(relpath, _decoding_failure(e)) from e
    # Pillow raises over twice MAX_IMAGE_PIXELS and only warns over it; the check makes the warning
    # an error too. `warnings.catch_warnings` would do it, but it is not thread-safe and ingest
    # decodes in threads.
    _check_size(relpath, image.size)
    return image


def _decode(relpath: str, data: bytes, draft_to: tuple[int, int] | None = None
            ) -> tuple[Image.Image, tuple[int, int]]:
    """Open and fully decode, so that truncation and bombs surface here and not later.

    A JPEG is decoded at the smallest DCT scale that keeps it at least `draft_to`; the scale still
    reads every entropy-coded byte, so truncation is found all the same. Returns the image and its
    stored size.
    """
    image = _open(relpath, data)
    size = image.size
    try:
        if draft_to is not None and image.format == "JPEG":
            image.draft(image.mode, draft_to)
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(relpath, _decoding_failure(e)) from e
    return image, size


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # a broken EXIF block must not cost the image
        return 1


def _grey_to_rgb(image: Image.Image, black: float, white: float) -> Image.Image:
    """An "I" or "F" image mapped linearly from `black`..`white` onto 0..255."""
    if not (math.isfinite(black) and math.isfinite(white)):
        raise ValueError(f"pixel values run from {black} to {white}")
    scale = _EIGHT_BIT_MAX / (white - black)
    return image.point(lambda v: (v - black) * scale).convert("L").convert("RGB")


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB: alpha composited on white, palette and CMYK converted, greyscale beyond 8 bits scaled to 8.

    16-bit greyscale is scaled by its mode's white (65535), floating-point by 1.0 and 32-bit integers by
    65535, each by the image's own maximum when its values go beyond; negative values make black lower.
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "P" and "transparency" in image.info:
        image, mode = image.convert("RGBA"), "RGBA"
    if mode in _ALPHA_MODES:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*WHITE, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode in _SIXTEEN_BIT_MODES:
        return _grey_to_rgb(image.convert("I"), 0, SIXTEEN_BIT_MAX)
    if mode in _WIDE_MODES:
        low, high = image.getextrema()
        if mode == "I" and low >= 0 and high <= _EIGHT_BIT_MAX:
            return image.convert("RGB")
        return _grey_to_rgb(image, min(low, 0), max(high, FLOAT_MAX if mode == "F" else SIXTEEN_BIT_MAX))
    return image.convert("RGB")


def read_image_bytes(root: str | os.PathLike[str], relpath: str) -> bytes:
    """The bytes of the file at `relpath` under `root`, with `open_image`'s path checks; nothing decoded.

    Raises:
        ImageError: the path escapes `root`, or the file is missing, a folder, unreadable or empty.
    """
    return _read(root, relpath)


def open_image(root: str | os.PathLike[str], relpath: str, min_side: int | None = None) -> Image.Image:
    """The image at `relpath` under `root`, decoded, upright (EXIF orientation) and in RGB.

    With `min_side` (e.g. the model's 224), a large JPEG may be decoded at 1/2, 1/4 or 1/8 scale,
    never below `min_side` on either side: a resize to that size afterwards gives the same picture
    for a fraction of the decoding.

    Raises:
        ImageError: the path escapes `root`, or the file is missing, empty, truncated, not an
            image, of a format not accepted, too elongated, or a decompression bomb.
    """
    return decode_image(relpath, _read(root, relpath), min_side)


def decode_image(name: str, data: bytes, min_side: int | None = None) -> Image.Image:
    """`open_image` for bytes already in memory (an upload, a training shard's sample); errors name `name`.

    Raises:
        ImageError: as `open_image`, but for the path checks.
    """
    if not data:
        raise ImageError(name, "empty file (0 bytes)")
    draft_to = (min_side, min_side) if min_side else None
    image, _ = _decode(name, data, draft_to)
    try:
        if _orientation(image) != 1:
            image = ImageOps.exif_transpose(image)
        return to_rgb(image)
    except (OSError, ValueError) as e:
        raise ImageError(name, f"cannot convert {image.mode} to RGB: {e}") from e


def image_header(name: str, data: bytes) -> tuple[str, int, int]:
    """Format, width and height from the header alone, with the format, shape and bomb checks.

    Raises:
        ImageError: `data` is empty, not an accepted format, too elongated or a bomb.
    """
    if not data:
        raise ImageError(name, "empty file (0 bytes)")
    with _open(name, data) as image:
        return image.format or "", image.width, image.height


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
