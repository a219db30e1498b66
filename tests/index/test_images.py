"""index.collection.images: the one safe opener; every bad file becomes an ImageError with a readable reason."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, features

from index.collection.constants import ACCEPTED_IMAGE_FORMATS, MAX_ASPECT_RATIO
from index.collection.images import ImageError, inspect_image, open_image, resolve_inside
from tests.index.conftest import (
    EPS, fake_ghostscript, make_grey_tiff, make_image, make_noisy_jpeg, make_png_bomb, make_strip, truncate,
)


def _close(pixel: tuple[int, ...], expected: tuple[int, ...], tolerance: int = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, expected, strict=True))


def test_a_good_image_opens_in_rgb_and_is_inspected_once(tmp_path):
    path = make_image(tmp_path / "a" / "b.png", size=(40, 30), colour=(1, 2, 3))
    image = open_image(tmp_path, "a/b.png")
    assert (image.mode, image.size, image.getpixel((5, 5))) == ("RGB", (40, 30), (1, 2, 3))
    sha, size, width, height = inspect_image(tmp_path, "a/b.png")
    assert sha == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (size, width, height) == (path.stat().st_size, 40, 30)


def test_a_jpeg_is_sized_at_full_scale_though_decoded_in_draft(tmp_path):
    make_noisy_jpeg(tmp_path / "big.jpg", size=(400, 240))
    assert inspect_image(tmp_path, "big.jpg")[2:] == (400, 240)


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 20, 20))  # left half red, right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: turn 90 degrees clockwise to display
    image.save(tmp_path / "rotated.jpg", exif=exif.tobytes(), quality=95)
    upright = open_image(tmp_path, "rotated.jpg")
    assert upright.size == (20, 40)
    assert _close(upright.getpixel((10, 5)), (255, 0, 0)) and _close(upright.getpixel((10, 35)), (0, 0, 255))
    assert inspect_image(tmp_path, "rotated.jpg")[2:] == (20, 40)


@pytest.mark.parametrize(("name", "mode", "colour", "expected"), [
    ("cmyk.jpg", "CMYK", (0, 255, 255, 0), (255, 0, 0)),
    ("cmyk.tif", "CMYK", (255, 0, 255, 0), (0, 255, 0)),
    ("grey16.png", "I;16", 128 * 257, (128, 128, 128)),
    ("grey16-white.png", "I;16", 65535, (255, 255, 255)),
    ("transparent.png", "RGBA", (255, 0, 0, 0), (255, 255, 255)),
    ("half.png", "RGBA", (255, 0, 0, 128), (255, 127, 127)),
    ("grey-alpha.png", "LA", (0, 0), (255, 255, 255)),
    ("grey.png", "L", 77, (77, 77, 77)),
    ("bilevel.png", "1", 1, (255, 255, 255)),
])
def test_odd_modes_are_converted_not_rejected(tmp_path, name, mode, colour, expected):
    make_image(tmp_path / name, mode=mode, colour=colour)
    with Image.open(tmp_path / name) as stored:
        assert stored.mode.startswith(mode[0])  # the file really holds the odd mode
    image = open_image(tmp_path, name)
    assert image.mode == "RGB" and _close(image.getpixel((3, 3)), expected, tolerance=3)


def test_palette_images_with_and_without_transparency(tmp_path):
    palette = Image.new("P", (16, 16))
    palette.putpalette([0, 128, 0, 250, 0, 0] + [0] * 762)
    palette.paste(1, (0, 0, 8, 16))
    palette.save(tmp_path / "plain.png")
    palette.save(tmp_path / "clear.gif", transparency=1)
    plain = open_image(tmp_path, "plain.png")
    assert (plain.getpixel((2, 2)), plain.getpixel((12, 2))) == ((250, 0, 0), (0, 128, 0))
    clear = open_image(tmp_path, "clear.gif")
    assert (clear.mode, clear.getpixel((2, 2)), clear.getpixel((12, 2))) == ("RGB", (255, 255, 255), (0, 128, 0))


def _reason(root: Path, relpath: str) -> str:
    with pytest.raises(ImageError) as opened:
        open_image(root, relpath)
    with pytest.raises(ImageError) as inspected:
        inspect_image(root, relpath)
    assert opened.value.reason == inspected.value.reason and opened.value.path == relpath
    assert isinstance(opened.value, ValueError) and str(opened.value).startswith(f"{relpath}: ")
    return opened.value.reason


def test_missing_empty_text_and_truncated_files(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "notes.jpg").write_text("these are field notes, not a photo")
    truncate(make_noisy_jpeg(tmp_path / "cut.jpg"))
    (tmp_path / "folder.jpg").mkdir()
    assert "not found" in _reason(tmp_path, "nowhere.jpg")
    assert _reason(tmp_path, "empty.jpg") == "empty file (0 bytes)"
    assert _reason(tmp_path, "notes.jpg") == "not an image file (unrecognised format)"
    assert _reason(tmp_path, "cut.jpg") == "truncated image"
    assert "folder" in _reason(tmp_path, "folder.jpg")


def test_paths_escaping_the_root_are_refused(tmp_path):
    root = tmp_path / "root"
    outside = make_image(tmp_path / "secret.png")
    make_image(root / "inside.png")
    (root / "link-out.png").symlink_to(outside)
    (root / "link-in.png").symlink_to(root / "inside.png")
    assert "outside the images root" in _reason(root, "../secret.png")
    assert "outside the images root" in _reason(root, "../../etc/passwd")
    assert "absolute path" in _reason(root, str(outside))
    assert "absolute path" in _reason(root, "/etc/passwd")
    assert _reason(root, "link-out.png").startswith("symlink pointing outside")
    assert open_image(root, "link-in.png").size == (32, 24)  # a symlink that stays inside is fine
    assert resolve_inside(root, "sub/../inside.png") == (root / "inside.png").resolve()


def test_a_nul_byte_in_a_path_is_refused_not_raised(tmp_path):
    with pytest.raises(ImageError) as refused:
        open_image(tmp_path, "a\0b.jpg")
    assert str(refused.value) == "a\\0b.jpg: NUL byte in the path"


def test_a_symlinked_folder_leading_outside_is_refused(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    make_image(tmp_path / "elsewhere" / "x.png")
    os.symlink(tmp_path / "elsewhere", root / "sub")
    assert "outside the images root" in _reason(root, "sub/x.png")


def test_decompression_bombs_are_errors(tmp_path, monkeypatch):
    make_png_bomb(tmp_path / "huge.png")
    assert _reason(tmp_path, "huge.png").startswith("decompression bomb")
    make_image(tmp_path / "warned.png", size=(40, 40))  # 1600 pixels: Pillow only warns below 2x the limit
    make_image(tmp_path / "small.png", size=(20, 20))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.warns(Image.DecompressionBombWarning):  # Pillow's warning, made an error by the opener
        assert _reason(tmp_path, "warned.png").startswith("decompression bomb")
    assert open_image(tmp_path, "small.png").size == (20, 20)


def test_min_side_decodes_a_large_jpeg_smaller_but_never_below_it(tmp_path):
    make_noisy_jpeg(tmp_path / "large.jpg", size=(800, 600))
    make_image(tmp_path / "large.png", size=(800, 600))
    assert open_image(tmp_path, "large.jpg", min_side=224).size == (400, 300)
    assert open_image(tmp_path, "large.jpg", min_side=100).size == (200, 150)
    assert open_image(tmp_path, "large.jpg").size == (800, 600)
    assert open_image(tmp_path, "large.png", min_side=224).size == (800, 600)  # only JPEG has DCT scaling
    truncate(tmp_path / "large.jpg")
    with pytest.raises(ImageError, match="truncated"):
        open_image(tmp_path, "large.jpg", min_side=224)


# --- hostile files: formats, shapes, pixels ----------------------------------------------------------------

_SUFFIX = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "AVIF": "avif", "TIFF": "tif", "BMP": "bmp", "GIF": "gif",
           "JPEG2000": "jp2"}
_BUILT_WITH = {"WEBP": "webp", "AVIF": "avif", "JPEG2000": "jpg_2000"}


@pytest.mark.parametrize("fmt", ACCEPTED_IMAGE_FORMATS)
def test_every_accepted_format_opens(tmp_path, fmt):
    if fmt in _BUILT_WITH and not features.check(_BUILT_WITH[fmt]):
        pytest.skip(f"this Pillow has no {fmt} codec")
    name = f"a.{_SUFFIX[fmt]}"
    make_image(tmp_path / name, size=(40, 30), colour=(0, 0, 250), fmt=fmt)
    image = open_image(tmp_path, name)
    assert (image.mode, image.size) == ("RGB", (40, 30)) and _close(image.getpixel((20, 15)), (0, 0, 250), 30)


def test_other_formats_are_refused_by_name_and_ghostscript_never_runs(tmp_path, monkeypatch):
    ran = fake_ghostscript(tmp_path / "bin", monkeypatch)
    (tmp_path / "photo.jpg").write_bytes(EPS)  # the name says JPEG, the content is EPS
    (tmp_path / "drawing.eps").write_bytes(EPS)
    make_image(tmp_path / "icon.png", size=(16, 16), fmt="ICO")
    accepted = ", ".join(ACCEPTED_IMAGE_FORMATS)
    assert _reason(tmp_path, "photo.jpg") == f"EPS is not an accepted image format (accepted: {accepted})"
    assert _reason(tmp_path, "drawing.eps").startswith("EPS is not an accepted image format")
    assert _reason(tmp_path, "icon.png").startswith("ICO is not an accepted image format")
    assert not ran.exists()


@pytest.mark.parametrize(("size", "ratio"), [
    ((40_000, 2), "20000"), ((2, 40_000), "20000"), ((MAX_ASPECT_RATIO * 10 + 1, 10), f"{MAX_ASPECT_RATIO}.1"),
])
def test_extreme_aspect_ratios_are_refused(tmp_path, size, ratio):
    make_strip(tmp_path / "strip.png", size)
    assert _reason(tmp_path, "strip.png") == (
        f"aspect ratio {ratio}:1 ({size[0]}x{size[1]} pixels) is over the limit of {MAX_ASPECT_RATIO}:1")


def test_memory_per_image_is_bounded_whatever_its_shape(tmp_path):
    """What a model's resize (short side to 224 px) makes of any image the opener lets through."""
    side = 224
    bound = side * side * MAX_ASPECT_RATIO  # ~1 M pixels: 3 MB in RGB
    shapes = [(40_000, 2), (2, 40_000), (60_000, 1), (MAX_ASPECT_RATIO * 10, 10), (10, MAX_ASPECT_RATIO * 10),
              (300, 200), (1, 1)]
    opened = []
    for i, size in enumerate(shapes):
        make_strip(tmp_path / f"{i}.png", size)
        try:
            image = open_image(tmp_path, f"{i}.png")
        except ImageError:
            continue
        scale = side / min(image.size)
        resized = (round(image.width * scale), round(image.height * scale))
        assert resized[0] * resized[1] <= bound, f"{size} would grow to {resized}"  # before allocating it
        width, height = image.resize(resized).size
        assert width * height <= bound
        opened.append(size)
    assert opened == [(MAX_ASPECT_RATIO * 10, 10), (10, MAX_ASPECT_RATIO * 10), (300, 200), (1, 1)]


@pytest.mark.parametrize(("values", "dtype", "expected"), [
    ([0.0, 0.5, 1.0], np.float32, (0, 127, 255)),  # floats in 0..1: white is 1.0
    ([0.0, 2000.0, 4000.0], np.float32, (0, 127, 255)),  # beyond 1.0: white is the image's maximum
    ([-1.0, 0.0, 1.0], np.float32, (0, 127, 255)),  # below 0: black is the image's minimum
    ([0, 1_500_000, 3_000_000], np.int32, (0, 127, 255)),  # beyond 16 bits: white is the image's maximum
    ([0, 128 * 257, 65535], np.int32, (0, 128, 255)),  # 16-bit values in a 32-bit file: the 16-bit scale
])
def test_high_bit_greyscale_is_scaled_not_clipped(tmp_path, values, dtype, expected):
    make_grey_tiff(tmp_path / "grey.tif", values, dtype)
    with Image.open(tmp_path / "grey.tif") as stored:
        assert stored.mode == ("F" if dtype is np.float32 else "I")
    image = open_image(tmp_path, "grey.tif")
    assert all(_close(image.getpixel((x, 0)), (grey,) * 3, tolerance=1) for x, grey in enumerate(expected))
