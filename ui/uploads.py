"""Uploaded query images: size and pixel limits first, then the collection's own safe decoder.

Pure (no streamlit): the app calls `load_upload(name, data)` with the bytes of `st.file_uploader`.
An upload is never written to disk: it is decoded in memory by `index.collection.images.decode_image` (accepted
formats only, EXIF orientation, RGB, aspect ratio, truncation and bomb checks) and only its pixels
are kept.
"""
from __future__ import annotations

import logging

from PIL import Image

from index.collection.images import ImageError, decode_image, image_header

logger = logging.getLogger(__name__)

MAX_UPLOAD_MB = 10
MAX_UPLOAD_BYTES = MAX_UPLOAD_MB * 1024 * 1024
MAX_UPLOAD_PIXELS = 40_000_000  # 40 MP: a large camera photo; Pillow's bomb limit is ~89 MP
UPLOAD_TYPES: tuple[str, ...] = ("jpg", "jpeg", "png", "webp", "avif", "bmp", "gif", "tif", "tiff", "jp2")


class UploadError(ValueError):
    """An upload that is refused; the message says why, for the user."""


def load_upload(name: str, data: bytes) -> Image.Image:
    """The uploaded picture, decoded to RGB.

    Raises:
        UploadError: empty, over `MAX_UPLOAD_BYTES`, not an image of an accepted format, too
            elongated, over `MAX_UPLOAD_PIXELS`, or broken.
    """
    if not data:
        raise UploadError(f"{name}: the file is empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadError(f"{name}: {len(data) / 1024 / 1024:.1f} MB is over the {MAX_UPLOAD_MB} MB limit")
    try:
        kind, width, height = image_header(name, data)
    except ImageError as e:
        raise UploadError(f"{name}: {e.reason}") from e
    if width * height > MAX_UPLOAD_PIXELS:
        raise UploadError(
            f"{name}: {width}x{height} pixels is over the limit of {MAX_UPLOAD_PIXELS / 1e6:.0f} megapixels"
        )
    try:
        image = decode_image(name, data)
    except ImageError as e:
        raise UploadError(f"{name}: {e.reason}") from e
    logger.debug("upload %s: %s %dx%d", name, kind, width, height)
    return image
