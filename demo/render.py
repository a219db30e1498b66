"""Draw one picture of an imaginary organism from its traits, with numpy and Pillow.

An organism is a list of parts in its own frame (`demo.bodies`). `render` draws a pose, paints the
habitat at twice the size, places the parts, fills the body with the taxon's pattern computed in
the organism's frame (so the pattern turns with the body), halves the picture, then varies light,
tint, blur and noise. Every random draw comes from the generator passed in, so a picture is a
function of its seed.
"""
from __future__ import annotations

import logging
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from demo.bodies import DRAWERS
from demo.constants import ORGANISM_SCALE, SUPERSAMPLE
from demo.habitat import background
from demo.palette import Colour, palette
from demo.pose import Pose
from demo.shapes import TAU, Part
from demo.traits import Traits

logger = logging.getLogger(__name__)


def parts_of(t: Traits, pose: Pose) -> list[Part]:
    """The organism's parts in its own frame, back to front."""
    return DRAWERS[t.style](t, pose)


def _pattern(t: Traits, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Where the second colour shows (0..1), from coordinates in the organism's frame."""
    freq = 3.0 + 9.0 * t.g("pattern_scale")
    amount = t.g("pattern_amount")
    kind = t.pattern
    if kind == "stripes":
        return (np.sin(TAU * freq * u) > 1.2 * amount - 0.6).astype(np.float32)
    if kind == "bands":
        return (np.sin(TAU * freq * 0.6 * v + 1.0) > 1.2 * amount - 0.4).astype(np.float32)
    if kind == "rings":
        return (np.sin(TAU * freq * 0.7 * np.hypot(u, v)) > 1.2 * amount - 0.6).astype(np.float32)
    if kind == "spots":
        cu, cv = u * freq, v * freq
        fu = cu - np.floor(cu) - 0.5 + 0.2 * np.sin(3.1 * np.floor(cv))
        fv = cv - np.floor(cv) - 0.5
        return (np.hypot(fu, fv) < 0.15 + 0.2 * amount).astype(np.float32)
    if kind == "countershade":
        return (v > 0.02 - 0.25 * (amount - 0.5)).astype(np.float32)
    if kind == "speckle":
        cu, cv = np.floor(u * freq * 3), np.floor(v * freq * 3)
        noise = np.sin(cu * 12.9898 + cv * 78.233) * 43758.5453
        return (noise - np.floor(noise) < 0.15 + 0.35 * amount).astype(np.float32)
    if kind == "eyespots":
        out = np.zeros_like(u, dtype=np.float32)
        r = 0.08 + 0.08 * amount
        for cx, cy in ((0.25, 0.3), (-0.25, -0.3), (0.25, -0.3), (-0.25, 0.3)):
            d = np.hypot(u - cx, v - cy)
            out = np.maximum(out, ((d < r) & (d > r * 0.45)).astype(np.float32))
        return out
    return np.zeros_like(u, dtype=np.float32)


def _affine(size: int, pose: Pose) -> tuple[np.ndarray, np.ndarray]:
    """The 2x2 matrix and the offset that take frame coordinates to pixels."""
    s = ORGANISM_SCALE * size * pose.scale
    a = math.radians(pose.angle)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    matrix = s * rot @ np.diag([-1.0 if pose.mirror else 1.0, 1.0])
    offset = np.array([size * (0.5 + pose.shift[0]), size * (0.5 + pose.shift[1])])
    return matrix, offset


def _body_fill(
    t: Traits, colours: dict[str, Colour], matrix: np.ndarray, offset: np.ndarray, size: tuple[int, int]
) -> Image.Image:
    """The patterned, textured and shaded body colour over a `size` (width, height) rectangle."""
    inv = np.linalg.inv(matrix).astype(np.float32)
    x = np.arange(size[0], dtype=np.float32)[None, :] + 0.5 - offset[0]
    y = np.arange(size[1], dtype=np.float32)[:, None] + 0.5 - offset[1]
    u, v = inv[0, 0] * x + inv[0, 1] * y, inv[1, 0] * x + inv[1, 1] * y
    mix = _pattern(t, u, v)[..., None]
    body, second = np.asarray(colours["body"], np.float32), np.asarray(colours["second"], np.float32)
    rgb = body * (1.0 - mix) + second * mix
    grain = 3.0 + 40.0 * t.g("segments")
    texture = 1.0 + 0.14 * t.g("texture") * np.sin(grain * u) * np.sin(grain * v)
    shade = 1.12 - 0.28 * (np.clip(v, -1.0, 1.0) + 1.0) / 2.0  # lit from the organism's back
    rgb *= (texture * shade)[..., None]
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")


def _paint(canvas: Image.Image, t: Traits, parts: list[Part], pose: Pose) -> None:
    size = canvas.size[0]
    matrix, offset = _affine(size, pose)
    colours = palette(t)
    placed = [part.points @ matrix.T + offset for part in parts]
    body = [xy for part, xy in zip(parts, placed) if part.kind == "body" and part.width == 0]
    if body:  # the pattern is computed once, over the pixels the body parts can cover
        corners = np.concatenate(body)
        x0, y0 = np.clip(np.floor(corners.min(0)).astype(int) - 1, 0, size)
        x1, y1 = np.clip(np.ceil(corners.max(0)).astype(int) + 2, 0, size)
        fill = _body_fill(t, colours, matrix, offset - (x0, y0), (x1 - x0, y1 - y0))
    draw = ImageDraw.Draw(canvas)
    outline_width = max(1, round(size / 128 * (0.6 + 0.8 * t.g("outline"))))
    scale = float(np.sqrt(abs(np.linalg.det(matrix))))
    for part, points in zip(parts, placed):
        xy = [tuple(p) for p in points.tolist()]
        if part.width > 0:
            draw.line(xy, fill=colours[part.kind], width=max(1, round(part.width * scale)), joint="curve")
        elif part.kind == "body":
            _paste_body(canvas, fill, (x0, y0), points, part.opacity)
            draw.line(xy + xy[:1], fill=colours["outline"], width=outline_width, joint="curve")
        else:
            draw.polygon(xy, fill=colours[part.kind], outline=colours["outline"], width=outline_width)


def _paste_body(
    canvas: Image.Image, fill: Image.Image, origin: tuple[int, int], points: np.ndarray, opacity: int
) -> None:
    """Paste the patterned fill through the polygon, touching only its bounding box."""
    ox, oy = origin
    x0, y0 = np.maximum(np.floor(points.min(0)).astype(int) - 1, (ox, oy))
    x1, y1 = np.minimum(np.ceil(points.max(0)).astype(int) + 2, (ox + fill.size[0], oy + fill.size[1]))
    if x1 <= x0 or y1 <= y0:
        return
    mask = Image.new("L", (int(x1 - x0), int(y1 - y0)), 0)
    ImageDraw.Draw(mask).polygon([tuple(p) for p in (points - (x0, y0)).tolist()], fill=opacity)
    canvas.paste(fill.crop((int(x0 - ox), int(y0 - oy), int(x1 - ox), int(y1 - oy))), (int(x0), int(y0)), mask)


def _finish(image: Image.Image, pose: Pose, rng: np.random.Generator) -> Image.Image:
    size = image.size[0]
    if pose.blur > 0.05:
        image = image.filter(ImageFilter.GaussianBlur(pose.blur * size / 128))
    rgb = np.asarray(image, np.float32)
    ramp = np.linspace(-0.5, 0.5, size, dtype=np.float32)
    light = 1.0 + 0.22 * (math.cos(pose.light) * ramp[None, :] + math.sin(pose.light) * ramp[:, None])
    gain = (pose.brightness * light)[..., None] * np.asarray(pose.tint, np.float32)
    rgb = ((rgb - 128.0) * pose.contrast + 128.0) * gain
    rgb += rng.normal(0.0, pose.noise, size=rgb.shape).astype(np.float32)
    return Image.fromarray(np.clip(rgb + 0.5, 0, 255).astype(np.uint8), "RGB")


def render(t: Traits, size: int, rng: np.random.Generator) -> Image.Image:
    """One picture of the organism `t`, `size` pixels square, every variation drawn from `rng`."""
    pose = Pose.draw(t.plan, rng)
    big = size * SUPERSAMPLE
    canvas = background(t, big, rng)
    _paint(canvas, t, parts_of(t, pose), pose)
    return _finish(canvas.reduce(SUPERSAMPLE), pose, rng)
