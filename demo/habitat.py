"""The habitat behind an organism: a gradient in its colours, mottled, with a few things of its own."""
from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from demo.constants import BG_HUE_SHIFT, HABITAT_COLOURS, MOTTLE_COLOUR, MOTTLE_LEVEL
from demo.palette import Colour, hsv, mix, shift_hsv
from demo.shapes import TAU
from demo.traits import Traits


def background(t: Traits, size: int, rng: np.random.Generator) -> Image.Image:
    """The habitat: a gradient in its colours, mottled, with a few things of its own."""
    dh, dv = (t.g("bg_hue") - 0.5) * 2 * BG_HUE_SHIFT, (t.g("bg_value") - 0.5) * 0.3
    top, bottom = (np.asarray(shift_hsv(c, dh, dv), np.float32) for c in HABITAT_COLOURS[t.habitat])
    ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None, None]
    rgb = np.broadcast_to(top * (1 - ramp) + bottom * ramp, (size, size, 3))
    shade = rng.normal(0, MOTTLE_LEVEL, (5, 5, 1)) + rng.normal(0, MOTTLE_COLOUR, (5, 5, 3))
    coarse = Image.fromarray((shade + 128).clip(0, 255).astype(np.uint8), "RGB")
    mottle = np.asarray(coarse.resize((size, size), Image.Resampling.BICUBIC), np.float32) - 128
    image = Image.fromarray(np.clip(rgb + mottle, 0, 255).astype(np.uint8), "RGB")
    _decorate(ImageDraw.Draw(image), t.habitat, tuple(int(c) for c in bottom), size, rng)
    return image


def _decorate(draw: ImageDraw.ImageDraw, habitat: str, base: Colour, size: int, rng: np.random.Generator) -> None:
    s = size
    darker, lighter = mix(base, (0, 0, 0), 0.3), mix(base, (255, 255, 255), 0.45)
    if habitat == "meadow":
        for _ in range(30):
            x, h = rng.uniform(0, s), rng.uniform(0.08, 0.25) * s
            draw.line([(x, s), (x + rng.uniform(-0.05, 0.05) * s, s - h)], fill=darker, width=max(1, s // 128))
    elif habitat == "water":
        for _ in range(6):
            y = rng.uniform(0, s)
            xs = np.linspace(0, s, 12)
            ys = y + 0.01 * s * np.sin(xs / s * 12 + rng.uniform(0, 6))
            draw.line(list(zip(xs, ys)), fill=lighter, width=max(1, s // 160))
        for _ in range(5):
            x, y, r = rng.uniform(0, s), rng.uniform(0, s), rng.uniform(0.005, 0.015) * s
            draw.ellipse([x - r, y - r, x + r, y + r], outline=lighter, width=max(1, s // 200))
    elif habitat == "forest":
        for _ in range(3):
            x, w = rng.uniform(0, s), rng.uniform(0.04, 0.1) * s
            draw.rectangle([x, 0, x + w, s], fill=mix(base, (0, 0, 0), 0.15))
        for _ in range(25):
            x, y, r = rng.uniform(0, s), rng.uniform(0.8, 1.0) * s, rng.uniform(0.005, 0.015) * s
            draw.ellipse([x - r, y - r, x + r, y + r], fill=mix(base, (200, 120, 40), 0.4))
    elif habitat == "sand":
        for _ in range(60):
            x, y = rng.uniform(0, s), rng.uniform(0, s)
            draw.point((x, y), fill=darker)
        for _ in range(4):
            y = rng.uniform(0.5, 1.0) * s
            draw.arc([rng.uniform(-0.3, 0.5) * s, y, rng.uniform(0.6, 1.3) * s, y + 0.08 * s], 190, 350, fill=darker)
    elif habitat == "sky":
        for _ in range(int(rng.integers(1, 4))):
            x, y = rng.uniform(0, s), rng.uniform(0, 0.7) * s
            for k in range(4):
                r = rng.uniform(0.04, 0.08) * s
                draw.ellipse([x + k * r * 0.8 - r, y - r * 0.7, x + k * r * 0.8 + r, y + r * 0.7], fill=(248, 250, 252))
    elif habitat == "rock":
        for _ in range(5):
            x, y, r = rng.uniform(0, s), rng.uniform(0.5, 1.0) * s, rng.uniform(0.05, 0.14) * s
            angles = np.sort(rng.uniform(0, TAU, 6))
            draw.polygon([(x + r * math.cos(a), y + r * 0.7 * math.sin(a)) for a in angles],
                         fill=mix(base, (rng.integers(60, 200),) * 3, 0.3), outline=darker)
    elif habitat == "reef":
        for _ in range(5):
            x, r = rng.uniform(0, s), rng.uniform(0.03, 0.08) * s
            colour = mix(hsv(rng.uniform(), 0.45, 0.8), base, 0.4)
            draw.ellipse([x - r, s - r * 1.2, x + r, s + r * 0.8], fill=colour)
        for _ in range(2):
            x = rng.uniform(0, s)
            draw.line([(x, 0), (x + 0.3 * s, s)], fill=mix(lighter, base, 0.5), width=max(1, s // 96))
    elif habitat == "snow":
        for _ in range(40):
            x, y, r = rng.uniform(0, s), rng.uniform(0, s), rng.uniform(0.003, 0.009) * s
            draw.ellipse([x - r, y - r, x + r, y + r], fill=(255, 255, 255))
