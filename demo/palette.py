"""Colours: the palette of an organism from its colour genes, and small colour helpers."""
from __future__ import annotations

import colorsys

from demo.constants import BODY_HUES, EYE_PUPIL, EYE_WHITE, OUTLINE_DARKEN, SATURATION_RANGE, VALUE_RANGE
from demo.traits import Traits

Colour = tuple[int, int, int]


def hsv(h: float, s: float, v: float) -> Colour:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return (round(r * 255), round(g * 255), round(b * 255))


def mix(a: Colour, b: Colour, t: float) -> Colour:
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b))  # type: ignore[return-value]


def _span(lo_hi: tuple[float, float], x: float) -> float:
    return lo_hi[0] + (lo_hi[1] - lo_hi[0]) * x


def palette(t: Traits) -> dict[str, Colour]:
    """The colour of each part kind, from the colour genes."""
    low, high = BODY_HUES[t.plan]
    hue = t.g("hue") if (low, high) == (0.0, 1.0) else low + (high - low) * (1.0 - abs(2.0 * t.g("hue") - 1.0))
    body = hsv(hue, _span(SATURATION_RANGE, t.g("saturation")), _span(VALUE_RANGE, t.g("value")))
    second = hsv(t.g("hue2"), _span(SATURATION_RANGE, t.g("saturation2")), _span(VALUE_RANGE, t.g("value2")))
    accent = hsv(t.g("accent_hue"), 0.65 + 0.3 * t.g("saturation2"), 0.85 + 0.1 * t.g("value"))
    return {
        "body": body,
        "second": second,
        "limb": mix(body, (0, 0, 0), 0.3),
        "wing": mix(second, body, 0.35),
        "accent": accent,
        "light": mix(body, (255, 255, 255), 0.65),
        "dark": mix(body, (0, 0, 0), 0.75),
        "stem": hsv(0.22 + 0.12 * t.g("hue2"), 0.45, 0.32 + 0.25 * t.g("value2")),
        "wood": hsv(0.06 + 0.04 * t.g("hue2"), 0.45 + 0.2 * t.g("saturation"), 0.28 + 0.2 * t.g("value2")),
        "eye": EYE_WHITE,
        "pupil": EYE_PUPIL,
        "outline": mix(body, (0, 0, 0), OUTLINE_DARKEN + 0.3 * t.g("outline")),
    }


def shift_hsv(colour: Colour, dh: float, dv: float) -> Colour:
    """The colour turned by `dh` on the hue circle and brightened by a factor `1 + dv`."""
    h, s, v = colorsys.rgb_to_hsv(*(c / 255 for c in colour))
    return hsv(h + dh, s, v * (1.0 + dv))
