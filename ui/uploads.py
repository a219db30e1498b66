"""Uploaded query images: size and pixel limits first, then the collection's own safe decoder.

Pure (no streamlit): the app calls `load_upload(name, data)` with the bytes of `st.file_uploader`.
An upload is never written where the app serves files from: it is decoded from a private
temporary folder by `index.images.open_image` (EXIF orientation, RGB, truncation and bomb checks)
and only its pixels are kept.
"""
from __future__ import annotations

import io
import logging
import tempfile
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from index.images import ImageError, open_image

logger = logging.getLogger(__name__)

MAX_UPLOAD_MB = 10
MAX_UPLOAD_BYTES = MAX_UPLOAD_MB * 1024 * 1024
MAX_UPLOAD_PIXELS = 40_000_000  # 40 MP: a large camera photo; Pillow's bomb limit is ~89 MP
UPLOAD_TYPES: tuple[str, ...] = ("jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff")
_UPLOAD_NAME = "upload"


class UploadError(ValueError):
    """An upload that is refused; the message says why, for the user."""


def load_upload(name: str, data: bytes) -> Image.Image:
    """The uploaded picture, decoded to RGB.

    Raises:
        UploadError: empty, over `MAX_UPLOAD_BYTES`, not an image, over `MAX_UPLOAD_PIXELS`, or broken.
    """
    if not data:
        raise UploadError(f"{name}: the file is empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadError(f"{name}: {len(data) / 1024 / 1024:.1f} MB is over the {MAX_UPLOAD_MB} MB limit")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as header:  # reads the header only
                width, height, kind = header.width, header.height, header.format
    except (UnidentifiedImageError, Image.DecompressionBombError):
        raise UploadError(f"{name}: not an image (accepted: {', '.join(UPLOAD_TYPES)})") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise UploadError(f"{name}: cannot read the image ({e})") from e
    if width * height > MAX_UPLOAD_PIXELS:
        raise UploadError(
            f"{name}: {width}x{height} pixels is over the limit of {MAX_UPLOAD_PIXELS / 1e6:.0f} megapixels"
        )
    with tempfile.TemporaryDirectory(prefix="tol-upload-") as folder:
        (Path(folder) / _UPLOAD_NAME).write_bytes(data)
        try:
            image = open_image(folder, _UPLOAD_NAME)
        except ImageError as e:
            raise UploadError(f"{name}: {e.reason}") from e
    logger.debug("upload %s: %s %dx%d", name, kind, width, height)
    return image
