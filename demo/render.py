"""Draw one picture of an imaginary organism from its traits, with numpy and Pillow.

An organism is a list of parts (polygons and strokes) in its own frame, about [-1, 1] on each
axis, x forward and y down. `render` places it with a random pose (angle, mirror, scale, shift),
fills its body with the taxon's pattern computed in that frame (so the pattern turns with the body),
draws it over its habitat at twice the size, halves it, then varies light, tint, blur and noise.
Every random draw comes from the generator passed in, so a picture is a function of its seed.
"""
from __future__ import annotations

import colorsys
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from demo.constants import (
    BG_HUE_SHIFT, BLUR_RANGE, BODY_HUES, MOTTLE_COLOUR, MOTTLE_LEVEL, BRIGHTNESS_RANGE, CONTRAST_RANGE, EYE_PUPIL, EYE_WHITE, HABITAT_COLOURS,
    NOISE_RANGE, ORGANISM_SCALE, OUTLINE_DARKEN, SATURATION_RANGE, SCALE_RANGE, SHIFT_RANGE, SUPERSAMPLE,
    TILT, TINT_RANGE, VALUE_RANGE,
)
from demo.traits import Traits

logger = logging.getLogger(__name__)

TAU = 2.0 * math.pi
Colour = tuple[int, int, int]


# --- parts and shapes, in the organism's frame ------------------------------------------------------

@dataclass(frozen=True)
class Part:
    """A polygon (`width == 0`) or a stroke through `points`, filled with the colour of `kind`."""

    kind: str  # body (patterned) | limb | wing | accent | light | dark | stem | wood | eye | pupil
    points: np.ndarray  # (n, 2)
    width: float = 0.0  # stroke width in frame units
    opacity: int = 255  # for body parts: the mask value, below 255 lets the habitat show through


def _pts(xy: list[tuple[float, float]]) -> np.ndarray:
    return np.asarray(xy, dtype=np.float64)


def ellipse(cx: float, cy: float, rx: float, ry: float, rot: float = 0.0, n: int = 28) -> np.ndarray:
    t = np.linspace(0.0, TAU, n, endpoint=False)
    x, y = rx * np.cos(t), ry * np.sin(t)
    c, s = math.cos(rot), math.sin(rot)
    return np.stack([cx + c * x - s * y, cy + s * x + c * y], axis=1)


def blob(cx: float, cy: float, r: float, wobble: float, lobes: int, phase: float, n: int = 36) -> np.ndarray:
    """A circle whose radius wavers with `lobes` bumps."""
    t = np.linspace(0.0, TAU, n, endpoint=False)
    rr = r * (1.0 + wobble * np.sin(lobes * t + phase) + 0.5 * wobble * np.sin((lobes + 3) * t + 2 * phase))
    return np.stack([cx + rr * np.cos(t), cy + rr * np.sin(t)], axis=1)


def curve(p0: tuple[float, float], p1: tuple[float, float], bend: float, n: int = 14) -> np.ndarray:
    """A quadratic arc from p0 to p1 whose middle is pushed sideways by `bend` (frame units)."""
    a, b = np.asarray(p0, float), np.asarray(p1, float)
    d = b - a
    normal = np.array([-d[1], d[0]]) / (np.hypot(*d) + 1e-9)
    ctrl = (a + b) / 2 + bend * normal
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 2 * a + 2 * (1 - t) * t * ctrl + t**2 * b


def band(path: np.ndarray, w0: float, w1: float) -> np.ndarray:
    """A polygon around `path`, `w0` wide at its start and `w1` at its end."""
    d = np.gradient(path, axis=0)
    normal = np.stack([-d[:, 1], d[:, 0]], axis=1) / (np.hypot(d[:, 0], d[:, 1])[:, None] + 1e-9)
    half = np.linspace(w0, w1, len(path))[:, None] / 2
    return np.concatenate([path + normal * half, (path - normal * half)[::-1]])


def star(cx: float, cy: float, r_out: float, r_in: float, arms: int, rot: float) -> np.ndarray:
    t = rot + np.arange(2 * arms) * math.pi / arms
    r = np.where(np.arange(2 * arms) % 2 == 0, r_out, r_in)
    return _smooth(np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1), 2)


def _smooth(points: np.ndarray, rounds: int) -> np.ndarray:
    """Chaikin corner cutting: rounds the corners of a closed polygon."""
    for _ in range(rounds):
        nxt = np.roll(points, -1, axis=0)
        points = np.concatenate([0.75 * points + 0.25 * nxt, 0.25 * points + 0.75 * nxt], axis=1).reshape(-1, 2)
    return points


def mirror_y(points: np.ndarray) -> np.ndarray:
    return points * np.array([1.0, -1.0])


def _wave(i: float, k: float) -> float:
    """A fixed pseudo-random number in [-1, 1] from two numbers: shape detail without a generator."""
    return math.sin(12.9898 * i + 78.233 * k) * 0.5 + math.sin(4.1 * i + 2.3 * k) * 0.5


# --- pose and palette --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Pose:
    """The per-picture variation: placement, movement, light and camera."""

    angle: float  # degrees
    mirror: bool
    scale: float
    shift: tuple[float, float]  # fraction of the side
    phase: float  # in [0, 1): wing beat, tentacle wave, stride
    light: float  # direction of the light gradient, radians
    brightness: float
    contrast: float
    tint: tuple[float, float, float]
    blur: float  # radius in pixels of a 128 px picture
    noise: float  # standard deviation, 0-255 levels

    @classmethod
    def draw(cls, plan: str, rng: np.random.Generator) -> "Pose":
        tilt = TILT[plan]
        return cls(
            angle=float(rng.uniform(-tilt, tilt)),
            mirror=bool(rng.uniform() < 0.5),
            scale=float(rng.uniform(*SCALE_RANGE)),
            shift=(float(rng.uniform(-SHIFT_RANGE, SHIFT_RANGE)), float(rng.uniform(-SHIFT_RANGE, SHIFT_RANGE))),
            phase=float(rng.uniform()),
            light=float(rng.uniform(0.0, TAU)),
            brightness=float(rng.uniform(*BRIGHTNESS_RANGE)),
            contrast=float(rng.uniform(*CONTRAST_RANGE)),
            tint=tuple(float(x) for x in 1.0 + rng.uniform(-TINT_RANGE, TINT_RANGE, size=3)),
            blur=float(rng.uniform(*BLUR_RANGE)),
            noise=float(rng.uniform(*NOISE_RANGE)),
        )


def _hsv(h: float, s: float, v: float) -> Colour:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return (round(r * 255), round(g * 255), round(b * 255))


def _mix(a: Colour, b: Colour, t: float) -> Colour:
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b))  # type: ignore[return-value]


def _span(lo_hi: tuple[float, float], x: float) -> float:
    return lo_hi[0] + (lo_hi[1] - lo_hi[0]) * x


def palette(t: Traits) -> dict[str, Colour]:
    """The colour of each part kind, from the colour genes."""
    low, high = BODY_HUES[t.plan]
    hue = t.g("hue") if (low, high) == (0.0, 1.0) else low + (high - low) * (1.0 - abs(2.0 * t.g("hue") - 1.0))
    body = _hsv(hue, _span(SATURATION_RANGE, t.g("saturation")), _span(VALUE_RANGE, t.g("value")))
    second = _hsv(t.g("hue2"), _span(SATURATION_RANGE, t.g("saturation2")), _span(VALUE_RANGE, t.g("value2")))
    accent = _hsv(t.g("accent_hue"), 0.65 + 0.3 * t.g("saturation2"), 0.85 + 0.1 * t.g("value"))
    return {
        "body": body,
        "second": second,
        "limb": _mix(body, (0, 0, 0), 0.3),
        "wing": _mix(second, body, 0.35),
        "accent": accent,
        "light": _mix(body, (255, 255, 255), 0.65),
        "dark": _mix(body, (0, 0, 0), 0.75),
        "stem": _hsv(0.22 + 0.12 * t.g("hue2"), 0.45, 0.32 + 0.25 * t.g("value2")),
        "wood": _hsv(0.06 + 0.04 * t.g("hue2"), 0.45 + 0.2 * t.g("saturation"), 0.28 + 0.2 * t.g("value2")),
        "eye": EYE_WHITE,
        "pupil": EYE_PUPIL,
        "outline": _mix(body, (0, 0, 0), OUTLINE_DARKEN + 0.3 * t.g("outline")),
    }


# --- body plans: creatures --------------------------------------------------------------------------

def _torso(t: Traits) -> tuple[float, float, float, float]:
    """Half-length, half-width, head radius and eye radius of a vertebrate."""
    length = 0.55 + 0.3 * t.g("length")
    width = length * (0.22 + 0.28 * t.g("width"))
    head = width * (0.55 + 0.45 * t.g("head"))
    return length, width, head, head * (0.2 + 0.2 * t.g("eye"))


def _eye(x: float, y: float, r: float) -> list[Part]:
    return [Part("eye", ellipse(x, y, r, r, n=16)), Part("pupil", ellipse(x + r * 0.2, y, r * 0.55, r * 0.55, n=12))]


def _spindle(length: float, width: float, bulge: float, n: int = 30) -> np.ndarray:
    """A fish-like outline from tail (-length) to snout (+length), fattest ahead of the middle."""
    s = np.linspace(0.0, 1.0, n)
    x = -length + 2 * length * s
    half = width * np.sin(math.pi * s) ** 0.7 * (1 + bulge * (s - 0.5))
    return np.concatenate([np.stack([x, -half], 1), np.stack([x[::-1], half[::-1]], 1)])


def _fins(t: Traits, p: Pose) -> list[Part]:
    L, W, H, E = _torso(t)
    tail, fin = 0.18 + 0.3 * t.g("tail"), 0.25 + 0.5 * t.g("limb_length")
    flap = 0.15 * math.sin(TAU * p.phase)
    return [
        Part("limb", _smooth(_pts([(-L * 0.8, 0), (-L - tail, -W * (0.7 + 0.6 * fin)), (-L - tail * 0.5, 0),
                                    (-L - tail, W * (0.7 + 0.6 * fin))]), 1)),
        Part("limb", _pts([(-L * 0.4, -W * 0.8), (L * 0.15, -W * 0.85), (-L * 0.3, -W * (1.25 + fin))])),
        Part("limb", _pts([(-L * 0.15, W * 0.8), (L * 0.05, W * 0.75), (-L * 0.35, W * (1.2 + 0.6 * fin))])),
        Part("body", _spindle(L, W, 0.4 + 0.4 * t.g("head"))),
        Part("dark", curve((L * 0.42, -W * 0.55), (L * 0.42, W * 0.5), -W * 0.25), width=W * 0.06),
        Part("wing", _pts([(L * 0.3, W * 0.05), (L * 0.4, W * 0.2), (L * 0.0, W * (0.6 + 0.4 * fin + flap))])),
        *_eye(L * 0.66, -W * 0.2, E * 1.2),
    ]


def _wings(t: Traits, p: Pose) -> list[Part]:
    L, W, H, E = _torso(t)
    L, W = L * 0.8, W * 1.15
    span, lift = 0.35 + 0.45 * t.g("limb_length"), 0.1 + 0.9 * p.phase
    hx, hy = L * 0.95, -W * 0.75
    beak = H * (0.6 + 1.2 * t.g("curl"))
    tail = 0.15 + 0.4 * t.g("tail")
    legs = [Part("dark", _pts([(x, W * 0.7), (x + 0.05, W * 0.7 + 0.22)]), width=0.03) for x in (-L * 0.1, L * 0.2)]
    wing_length, wing_width = L * 0.9 + span * 0.6, W * (0.55 + 0.3 * t.g("width"))
    return [
        *legs,
        Part("limb", _leaf((L * 0.25, -W * 0.45), math.pi + 0.45 + 0.9 * lift, wing_length * 0.9, wing_width * 0.9)),
        Part("wing", _smooth(_pts([(-L * 0.5, -W * 0.2), (-L * 0.5, W * 0.3), (-L - tail, W * 0.25),
                                   (-L - tail, -W * 0.05)]), 1)),
        Part("body", ellipse(0, 0, L, W, rot=-0.15)),
        Part("body", ellipse(hx, hy, H * 1.05, H)),
        Part("accent", _pts([(hx + H * 0.8, hy - H * 0.3), (hx + H * 0.8, hy + H * 0.35), (hx + H * 0.8 + beak, hy)])),
        Part("wing", _leaf((L * 0.35, -W * 0.25), math.pi + 0.15 + 0.75 * lift, wing_length, wing_width)),
        *_eye(hx + H * 0.25, hy - H * 0.15, E * 1.3),
    ]


def _legs(t: Traits, p: Pose) -> list[Part]:
    L, W, H, E = _torso(t)
    L, W = L * 0.85, W * 1.45
    leg = W * (1.1 + 1.4 * t.g("limb_length"))
    swing = 0.35 * math.sin(TAU * p.phase)
    hx, hy = L * 1.0, -W * 0.75
    H *= 1.3

    def limb(x: float, sign: float, kind: str) -> Part:
        foot = (x + sign * swing * leg * 0.5, W * 0.55 + leg)
        return Part(kind, band(curve((x, W * 0.3), foot, 0.05 * sign, n=6), W * 0.5, W * 0.28))

    tail = curve((-L * 0.9, -W * 0.2), (-L - 0.15 - 0.5 * t.g("tail"), -W * (0.1 + 1.2 * t.g("curl"))), 0.12)
    return [
        limb(-L * 0.55, -1, "dark"), limb(L * 0.55, 1, "dark"),
        Part("limb", band(tail, W * 0.3, W * 0.12)),
        Part("limb", _pts([(hx - H * 0.6, hy - H * 0.5), (hx - H * 0.1, hy - H * 0.7), (hx - H * 0.5, hy - H * (1.3 + t.g("eye")))])),
        Part("body", ellipse(0, 0, L, W)),
        Part("body", ellipse(L * 0.75, -W * 0.4, H * 0.9, H * 0.8, rot=-0.6)),
        Part("body", ellipse(hx, hy, H * 1.1, H * 0.95)),
        Part("body", ellipse(hx + H * 0.95, hy + H * 0.25, H * 0.6, H * 0.45)),
        Part("pupil", ellipse(hx + H * 1.5, hy + H * 0.15, H * 0.14, H * 0.12, n=10)),
        limb(-L * 0.45, 1, "limb"), limb(L * 0.65, -1, "limb"),
        *_eye(hx + H * 0.35, hy - H * 0.25, E * 1.3),
    ]


def _crawler(t: Traits, p: Pose) -> list[Part]:
    L, W, H, E = _torso(t)
    W *= 1.3
    leg = 0.6 + 0.8 * t.g("limb_length")
    stride = 0.15 * math.sin(TAU * p.phase)
    front = [(L * 0.45, W * 0.3), (L * (0.65 + stride), W * (0.9 + 0.4 * leg)), (L * (0.95 + stride), W * (1.0 + 0.4 * leg))]
    hind = [(-L * 0.45, W * 0.2), (-L * (0.05 - stride), W * (0.8 + 0.6 * leg)), (-L * (0.8 - stride), W * (1.05 + 0.6 * leg))]
    tail_len = 0.05 + 0.7 * t.g("tail")
    tail = curve((-L * 0.85, 0.0), (-L - tail_len, W * 0.3), W * 0.5 * math.sin(TAU * p.phase))
    hx = L * 0.85
    return [
        Part("dark", band(np.asarray(hind[::-1]) * [1, 1] + [0.06, 0.0], W * 0.25, W * 0.45)),
        Part("limb", band(tail, W * 0.6, W * 0.05)),
        Part("body", _spindle(L, W * 0.85, 0.2)),
        Part("body", ellipse(hx, -W * 0.1, H * 1.35, H * 0.95)),
        Part("limb", band(_pts(front), W * 0.3, W * 0.2)),
        Part("limb", band(_pts(hind), W * 0.5, W * 0.28)),
        *_eye(hx + H * 0.3, -W * 0.1 - H * 0.75, E * 1.7),
    ]


def _serpent(t: Traits, p: Pose) -> list[Part]:
    _, W, H, E = _torso(t)
    s = np.linspace(0.0, 1.0, 40)
    reach = 0.8 + 0.15 * t.g("length")
    amp, waves = 0.12 + 0.2 * t.g("curl"), 1.0 + 1.2 * t.g("segments")
    path = np.stack([-reach + 2 * reach * s, amp * np.sin(TAU * (waves * s + p.phase))], 1)
    width = W * 1.1 * np.minimum(1.0, 0.25 + 1.6 * s)
    d = np.gradient(path, axis=0)
    normal = np.stack([-d[:, 1], d[:, 0]], 1) / np.hypot(d[:, 0], d[:, 1])[:, None]
    outline = np.concatenate([path + normal * width[:, None] / 2, (path - normal * width[:, None] / 2)[::-1]])
    hx, hy = path[-1]
    tongue = [(hx + H * 1.1, hy), (hx + H * 1.9, hy - H * 0.3), (hx + H * 1.6, hy), (hx + H * 1.9, hy + H * 0.3)]
    return [
        Part("accent", _pts(tongue), width=H * 0.15),
        Part("body", outline),
        Part("body", ellipse(hx + H * 0.3, hy, H * 1.3, H * 0.85)),
        *_eye(hx + H * 0.6, hy - H * 0.35, E * 1.2),
    ]


def _insect_body(t: Traits) -> list[Part]:
    seg = 0.09 + 0.05 * t.g("width")
    abdomen = 0.25 + 0.25 * t.g("length")
    return [
        Part("dark", ellipse(-abdomen * 0.75, 0, abdomen, seg * 0.9)),
        Part("dark", ellipse(0.05, 0, seg * 1.3, seg * 1.1)),
        Part("dark", ellipse(0.22, 0, seg * 0.9, seg * 0.9)),
        Part("accent", ellipse(0.26, -seg * 0.5, seg * 0.3, seg * 0.3, n=10)),
        Part("accent", ellipse(0.26, seg * 0.5, seg * 0.3, seg * 0.3, n=10)),
    ]


def _winged(t: Traits, p: Pose) -> list[Part]:
    span = (0.5 + 0.4 * t.g("limb_length")) * (0.7 + 0.3 * p.phase)
    round_ = 0.45 + 0.5 * t.g("curl")
    hind = 0.5 + 0.5 * t.g("width")
    parts: list[Part] = []
    for sign in (-1.0, 1.0):
        fore = ellipse(0.1 + 0.12 * t.g("head"), sign * span * 0.5, span * 0.32 * round_ + 0.08, span * 0.52, rot=sign * 0.45)
        back = ellipse(-0.12, sign * span * 0.38 * hind, span * 0.3 * hind, span * 0.4 * hind, rot=-sign * 0.4)
        parts += [Part("body", back), Part("body", fore)]
    antenna = 0.25 + 0.35 * t.g("tail")
    for sign in (-1.0, 1.0):
        tip = (0.3 + antenna, sign * antenna * 0.6)
        parts += [Part("dark", curve((0.27, sign * 0.03), tip, sign * 0.06), width=0.018),
                  Part("dark", ellipse(*tip, 0.025, 0.025, n=8))]
    return parts + _insect_body(t)


def _spider(t: Traits, p: Pose) -> list[Part]:
    abdomen = 0.22 + 0.14 * t.g("width")
    reach = 0.45 + 0.35 * t.g("limb_length")
    parts: list[Part] = []
    for sign in (-1.0, 1.0):
        for i in range(4):
            angle = sign * (0.55 + i * 0.6 + 0.08 * math.sin(TAU * p.phase + i))
            base = np.array([0.12, 0.0])
            direction = np.array([math.cos(angle), math.sin(angle)])
            knee = base + direction * reach * 0.55 + np.array([0.0, 0.0])
            foot = knee + np.array([math.cos(angle * 1.15), math.sin(angle * 1.15)]) * reach * 0.6
            parts.append(Part("limb", _pts([tuple(base), tuple(knee), tuple(foot)]), width=0.035))
    return parts + [
        Part("body", ellipse(-0.18 - abdomen * 0.6, 0, abdomen * 1.25, abdomen)),
        Part("body", ellipse(0.14, 0, 0.16, 0.13)),
        *[Part("eye", ellipse(0.26, dy, 0.022, 0.022, n=8)) for dy in (-0.04, 0.04)],
    ]


def _clawed(t: Traits, p: Pose) -> list[Part]:
    long_ = t.g("length")
    shell_x, shell_y = 0.22 + 0.2 * long_, 0.38 - 0.16 * long_ + 0.1 * t.g("width")
    claw = 0.13 + 0.1 * t.g("limb_length")
    gape = 0.2 + 0.5 * p.phase
    parts: list[Part] = []
    for sign in (-1.0, 1.0):
        for i in range(4):
            x = shell_x * (0.45 - 0.4 * i)
            foot = (x + 0.06 - 0.1 * i, sign * (shell_y + 0.3 + 0.12 * t.g("limb_length")))
            parts.append(Part("limb", curve((x, sign * shell_y * 0.7), foot, sign * 0.08, n=6), width=0.05))
        arm = curve((shell_x * 0.6, sign * shell_y * 0.55), (shell_x + 0.2, sign * (shell_y * 0.55 + 0.12)), sign * 0.06, n=8)
        cx, cy = arm[-1]
        hand = ellipse(cx + claw * 0.7, cy, claw, claw * 0.55, rot=-sign * 0.2)
        finger = _leaf((cx + claw * 1.1, cy + sign * claw * 0.25), sign * gape * 0.6, claw * 1.1, claw * 0.22)
        thumb = _leaf((cx + claw * 1.1, cy - sign * claw * 0.2), -sign * gape * 0.4, claw * 1.2, claw * 0.28)
        parts += [Part("limb", band(arm, 0.11, 0.09)), Part("limb", finger), Part("body", hand), Part("body", thumb)]
    if long_ > 0.45:
        for i in range(4):
            r = 0.11 - 0.015 * i
            parts.append(Part("body", ellipse(-shell_x - 0.05 - i * 0.12, 0, 0.08, r * (1.2 + t.g("width")))))
        parts.append(Part("limb", _pts([(-shell_x - 0.5, 0), (-shell_x - 0.68, -0.16), (-shell_x - 0.68, 0.16)])))
    parts.append(Part("body", ellipse(0, 0, shell_x, shell_y)))
    parts += [Part("dark", ellipse(shell_x * 0.95, dy, 0.03, 0.03, n=8)) for dy in (-0.07, 0.07)]
    return parts


def _snail(t: Traits, p: Pose) -> list[Part]:
    r = 0.36 + 0.16 * t.g("width")
    foot = 0.7 + 0.2 * t.g("length")
    stalk = 0.18 + 0.2 * t.g("limb_length")
    turns = 2.0 + 1.5 * t.g("segments")
    theta = np.linspace(0.0, turns * TAU, 90)
    radius = r * (theta / theta[-1]) ** 0.8
    spiral = np.stack([-0.1 + radius * np.cos(-theta), -0.1 + radius * np.sin(-theta)], 1)
    head = (foot * 0.75, 0.2)
    sway = 0.05 * math.sin(TAU * p.phase)
    stalks = [Part("dark", _pts([head, (head[0] + dx + sway, head[1] - stalk)]), width=0.025) for dx in (0.0, 0.12)]
    tips = [Part("dark", ellipse(head[0] + dx + sway, head[1] - stalk, 0.035, 0.035, n=8)) for dx in (0.0, 0.12)]
    return [
        *stalks, *tips,
        Part("light", band(curve((-foot * 0.9, 0.32), (foot * 0.85, 0.25), 0.04), 0.1, 0.16)),
        Part("body", ellipse(-0.1, -0.1, r * 1.02, r)),
        Part("dark", spiral, width=0.028),
    ]


def _tentacled(t: Traits, p: Pose) -> list[Part]:
    mantle_w, mantle_h = 0.24 + 0.12 * t.g("width"), 0.3 + 0.25 * t.g("length")
    reach = 0.45 + 0.4 * t.g("limb_length")
    parts: list[Part] = []
    for i in range(8):
        x0 = -0.16 + 0.32 * i / 7
        y = np.linspace(0.12, 0.12 + reach, 14)
        x = x0 + (x0 * 1.2) * (y - 0.12) + 0.07 * np.sin(TAU * (1.5 * y + p.phase + i * 0.13))
        parts.append(Part("limb", band(np.stack([x, y], 1), 0.07, 0.012)))
    if t.g("curl") > 0.5:  # squid-like fins at the top of the mantle
        top = -0.05 - mantle_h * 2
        parts.append(Part("limb", _pts([(0, top - 0.02), (-mantle_w * 1.2, top + mantle_h * 0.5),
                                        (mantle_w * 1.2, top + mantle_h * 0.5)])))
    parts += [
        Part("body", ellipse(0, -0.05 - mantle_h, mantle_w, mantle_h)),
        Part("body", ellipse(0, 0.06, mantle_w * 0.85, 0.12)),
        *_eye(-0.1, 0.03, 0.05), *_eye(0.1, 0.03, 0.05),
    ]
    return parts


def _valves(t: Traits, p: Pose) -> list[Part]:
    r = 0.6 + 0.25 * t.g("width")
    ribs = 8 + int(10 * t.g("segments"))
    stretch = 0.7 + 0.6 * t.g("length")
    theta = np.linspace(math.pi * 1.08, math.pi * 1.92, 40)
    rr = r * (1.0 + 0.035 * np.sin(theta * ribs * 2))
    hinge = np.array([[0.0, 0.35]])
    fan = np.concatenate([hinge, np.stack([rr * np.cos(theta) * stretch, 0.35 + rr * np.sin(theta)], 1)])
    lower = mirror_y(fan - [0, 0.35]) * [1, 0.35 + 0.25 * p.phase] + [0, 0.35]
    lines = [Part("dark", _pts([(0.0, 0.35), (r * 0.95 * math.cos(a) * stretch, 0.35 + r * 0.95 * math.sin(a))]), width=0.014)
             for a in np.linspace(math.pi * 1.12, math.pi * 1.88, ribs)]
    return [Part("light", lower), Part("body", fan), *lines]


def _star(t: Traits, p: Pose) -> list[Part]:
    arms = 5 + int(3 * t.g("segments") ** 2)
    r_out = 0.7 + 0.25 * t.g("limb_length")
    r_in = r_out * (0.22 + 0.2 * t.g("width"))
    rot = TAU * p.phase / arms
    dots = [Part("accent", ellipse(math.cos(rot + k * TAU / arms) * r_out * f, math.sin(rot + k * TAU / arms) * r_out * f,
                                   0.035, 0.035, n=8))
            for k in range(arms) for f in (0.35, 0.55, 0.75)]
    return [Part("body", star(0, 0, r_out, r_in, arms, rot)), *dots,
            Part("accent", ellipse(0, 0, r_in * 0.4, r_in * 0.4, n=12))]


def _bell(t: Traits, p: Pose) -> list[Part]:
    rx, ry = 0.42 + 0.18 * t.g("width"), 0.3 + 0.2 * t.g("length")
    theta = np.linspace(math.pi, TAU, 30)
    dome = np.stack([rx * np.cos(theta), -0.25 + ry * np.sin(theta)], 1)
    scallops = np.stack([np.linspace(rx, -rx, 25), -0.25 + 0.035 * np.abs(np.sin(np.linspace(0, 6 * math.pi, 25)))], 1)
    reach = 0.5 + 0.45 * t.g("limb_length")
    parts: list[Part] = []
    for i in range(9):
        x0 = -rx * 0.9 + 1.8 * rx * i / 8
        y = np.linspace(-0.24, -0.24 + reach, 16)
        x = x0 + 0.05 * np.sin(TAU * (2 * y + p.phase + 0.1 * i))
        parts.append(Part("limb", np.stack([x, y], 1), width=0.012))
    for i in range(4):
        x0 = -rx * 0.3 + 0.6 * rx * i / 3
        y = np.linspace(-0.24, -0.24 + reach * 0.75, 14)
        x = x0 + 0.08 * np.sin(TAU * (1.2 * y + p.phase + 0.25 * i))
        parts.append(Part("accent", band(np.stack([x, y], 1), 0.07, 0.02)))
    return parts + [Part("body", np.concatenate([dome, scallops]), opacity=215)]


def _spiny(t: Traits, p: Pose) -> list[Part]:
    r = 0.38 + 0.12 * t.g("width")
    spine = 0.25 + 0.4 * t.g("limb_length")
    count = 36 + int(30 * t.g("segments"))
    parts = []
    for k in range(count):
        a = TAU * k / count + 0.3 * p.phase
        tilt = 0.15 * _wave(k, t.g("curl"))
        base = (r * 0.9 * math.cos(a), r * 0.9 * math.sin(a))
        tip = (base[0] + spine * math.cos(a + tilt), base[1] + spine * math.sin(a + tilt))
        parts.append(Part("limb", _pts([base, tip]), width=0.022))
    return parts + [Part("body", ellipse(0, 0, r, r * 0.95, n=36))]


def _branching(t: Traits, p: Pose) -> list[Part]:
    spread = 0.35 + 0.5 * t.g("curl")
    length = 0.32 + 0.18 * t.g("length")
    width = 0.09 + 0.07 * t.g("width")
    parts: list[Part] = []
    tips: list[tuple[float, float]] = []

    def grow(x: float, y: float, angle: float, size: float, depth: int, code: float) -> None:
        end = (x + size * math.sin(angle), y - size * math.cos(angle))
        sway = 0.04 * math.sin(TAU * p.phase + code)
        parts.append(Part("body", band(curve((x, y), end, size * 0.12 + sway, n=6), width * (0.7 ** (3 - depth) * 1.4),
                                       width * 0.7 ** (4 - depth))))
        if depth == 0:
            tips.append(end)
            return
        for k, side in enumerate((-1.0, 1.0)):
            jitter = 0.25 * _wave(code + k, t.g("segments"))
            grow(*end, angle + side * spread * (0.7 + jitter), size * 0.72, depth - 1, code * 2 + k + 1)

    grow(0.0, 0.95, 0.0, length, 3, 1.0)
    return parts + [Part("accent", ellipse(x, y, width * 0.5, width * 0.5, n=10)) for x, y in tips]


# --- body plans: plants ----------------------------------------------------------------------------

def _leaf(base: tuple[float, float], angle: float, length: float, width: float) -> np.ndarray:
    """A pointed leaf from `base`, pointing at `angle` (0 = right, radians, y down)."""
    s = np.linspace(0.0, 1.0, 12)
    half = width * np.sin(math.pi * s) ** 0.8
    outline = np.concatenate([np.stack([s * length, -half], 1), np.stack([s[::-1] * length, half[::-1]], 1)])
    c, si = math.cos(angle), math.sin(angle)
    return outline @ np.array([[c, si], [-si, c]]) + base


def _stem(top: tuple[float, float], bend: float, width: float, kind: str = "stem") -> tuple[Part, np.ndarray]:
    path = curve((0.0, 0.95), top, bend, n=16)
    return Part(kind, band(path, width, width * 0.6)), path


def _bloom(t: Traits, p: Pose) -> list[Part]:
    top = (0.12 * math.sin(TAU * p.phase) * 0.5, -0.3 - 0.35 * t.g("length"))
    stem, path = _stem(top, 0.1 * (t.g("curl") - 0.5), 0.04)
    pairs = 1 + int(2.5 * t.g("segments"))
    leaf_len, leaf_w = 0.22 + 0.22 * t.g("limb_length"), 0.05 + 0.08 * t.g("width")
    parts = [stem]
    for k in range(pairs):
        x, y = path[3 + k * 3]
        for side in (-1.0, 1.0):
            parts.append(Part("body", _leaf((x, y), -math.pi / 2 + side * (1.0 + 0.3 * t.g("curl")), leaf_len, leaf_w)))
    petals = 5 + int(8 * t.g("limbs"))
    petal = 0.17 + 0.17 * t.g("head")
    cx, cy = path[-1]
    for k in range(petals):
        a = TAU * k / petals + p.phase
        parts.append(Part("accent", ellipse(cx + math.cos(a) * petal * 0.6, cy + math.sin(a) * petal * 0.6,
                                            petal * 0.62, petal * (0.16 + 0.2 * t.g("width")), rot=a, n=14)))
    r = petal * (0.3 + 0.25 * t.g("eye"))
    return parts + [Part("wing", ellipse(cx, cy, r, r, n=16))]


def _tree(t: Traits, p: Pose) -> list[Part]:
    crown_y = -0.25 - 0.15 * t.g("length")
    r = 0.27 + 0.13 * t.g("width")
    trunk, _ = _stem((0.0, crown_y + 0.2), 0.05 * (t.g("curl") - 0.5), 0.09 + 0.05 * t.g("limb_length"), "wood")
    parts = [trunk]
    count = 6 + int(4 * t.g("segments"))
    centres = []
    for k in range(count):
        a = k * 2.39996 + 0.2 * t.g("curl")  # the golden angle spreads the clumps evenly
        d = 0.55 * r * math.sqrt((k + 0.5) / count) * 1.6
        centres.append((d * math.cos(a) * (1.1 + 0.5 * t.g("width")), crown_y + d * math.sin(a) * 0.8))
    for k, (x, y) in enumerate(centres):
        parts.append(Part("body", blob(x, y, r * (0.75 + 0.25 * _wave(k, t.g("hue"))), 0.06, 5, k + p.phase)))
    fruit = int(7 * t.g("limbs"))
    for k in range(fruit):
        x, y = centres[k % count]
        parts.append(Part("accent", ellipse(x + 0.08 * _wave(k, 1.3), y + 0.08 * _wave(k, 2.1), 0.03, 0.03, n=10)))
    return parts


def _spike(t: Traits, p: Pose) -> list[Part]:
    top = (0.06 * math.sin(TAU * p.phase), -0.55 - 0.35 * t.g("length"))
    stem, path = _stem(top, 0.08 * (t.g("curl") - 0.5), 0.035)
    parts = []
    for k in range(3 + int(3 * t.g("segments"))):
        a = -math.pi / 2 + (k - 2) * 0.35
        parts.append(Part("body", _leaf((0.0, 0.92), a, 0.3 + 0.25 * t.g("limb_length"), 0.04 + 0.05 * t.g("width"))))
    parts.append(stem)
    flowers = 8 + int(8 * t.g("limbs"))
    size = 0.05 + 0.04 * t.g("head")
    for k in range(flowers):
        x, y = path[int(5 + 10 * k / flowers)]
        side = -1.0 if k % 2 else 1.0
        grow = 1.0 - 0.5 * k / flowers
        parts.append(Part("accent", ellipse(x + side * size * 0.8, y - 0.02 * k, size * grow, size * 0.7 * grow, n=12)))
    return parts


def _grass(t: Traits, p: Pose) -> list[Part]:
    blades = 7 + int(6 * t.g("limbs"))
    parts, heads = [], []
    for k in range(blades):
        lean = (k - blades / 2) / blades * (0.9 + 0.5 * t.g("curl")) + 0.1 * math.sin(TAU * p.phase)
        height = 0.9 + 0.7 * t.g("length") * (0.7 + 0.3 * _wave(k, 0.7))
        tip = (math.sin(lean) * height * 0.7, 0.95 - math.cos(lean) * height)
        path = curve((0.02 * k - 0.01 * blades, 0.95), tip, 0.12 * lean, n=12)
        parts.append(Part("body", band(path, 0.035 + 0.03 * t.g("width"), 0.004)))
        if k % 3 == 1:
            heads.append(Part("accent", ellipse(tip[0], tip[1], 0.03, 0.1 + 0.05 * t.g("head"), rot=lean, n=12)))
    return parts + heads


def _conifer(t: Traits, p: Pose, breadth: float) -> list[Part]:
    tiers = 3 + int(3.5 * t.g("segments"))
    trunk, _ = _stem((0.0, 0.45), 0.0, 0.08, "wood")
    parts = [trunk]
    bottom, top = 0.65, -0.85 - 0.1 * t.g("length")
    droop = 0.06 + 0.1 * t.g("curl")
    step = (bottom - top) / tiers
    for k in range(tiers):
        y0 = bottom - k * step
        half = breadth * (0.25 + 0.45 * t.g("width")) * (1.0 - k / (tiers + 0.5)) + 0.08
        sway = 0.03 * math.sin(TAU * p.phase + k)
        outline = _pts([(sway, y0 - step * 1.6), (half + sway, y0 + droop), (half * 0.5, y0 + droop * 0.4),
                        (0.0, y0 + droop * 0.8), (-half * 0.5, y0 + droop * 0.4), (-half + sway, y0 + droop)])
        parts.append(Part("body", _smooth(outline, 1)))
    cones = int(5 * t.g("limbs"))
    for k in range(cones):
        y = bottom - (k + 0.5) * (bottom - top) / (cones + 1)
        x = 0.25 * _wave(k, 3.3) * (1 - (bottom - y) / (bottom - top) * 0.7)
        parts.append(Part("accent", ellipse(x, y, 0.03, 0.05, n=10)))
    return parts


def _bush(t: Traits, p: Pose) -> list[Part]:
    trunk, _ = _stem((0.0, 0.55), 0.0, 0.07, "wood")
    parts = [trunk]
    r = 0.22 + 0.1 * t.g("width")
    for k in range(7):
        a = k * 2.39996
        d = 0.35 * math.sqrt((k + 0.5) / 7)
        parts.append(Part("body", blob(d * math.cos(a) * 1.3, 0.15 + d * math.sin(a) - 0.2 * t.g("length"), r, 0.1, 7, k + p.phase)))
    for k in range(int(9 * t.g("limbs"))):
        parts.append(Part("accent", ellipse(0.45 * _wave(k, 1.1), 0.05 + 0.3 * _wave(k, 2.7), 0.03, 0.03, n=10)))
    return parts


def _frond(t: Traits, p: Pose) -> list[Part]:
    fronds = 4 + int(3 * t.g("limbs"))
    parts: list[Part] = []
    length = 0.9 + 0.5 * t.g("length")
    for k in range(fronds):
        lean = (k - (fronds - 1) / 2) / fronds * 2.2 + 0.08 * math.sin(TAU * p.phase)
        tip = (math.sin(lean) * length * 0.75, 0.95 - math.cos(lean) * length * 0.85)
        path = curve((0.0, 0.95), tip, (0.1 + 0.25 * t.g("curl")) * (1 if lean >= 0 else -1), n=14)
        parts.append(Part("stem", path, width=0.018))
        d = np.gradient(path, axis=0)
        for i in range(2, 14):
            size = (0.07 + 0.05 * t.g("limb_length")) * (1.0 - i / 16)
            base_angle = math.atan2(d[i, 1], d[i, 0])
            for side in (-1.0, 1.0):
                parts.append(Part("body", _leaf(tuple(path[i]), base_angle + side * (1.2 - 0.3 * t.g("width")), size, size * 0.35)))
    return parts


def _whorl(t: Traits, p: Pose) -> list[Part]:
    parts: list[Part] = []
    stems = 2 + int(2 * t.g("limbs"))
    for s in range(stems):
        x0 = (s - (stems - 1) / 2) * 0.3
        top = (x0 * 1.3 + 0.05 * math.sin(TAU * p.phase + s), -0.55 - 0.35 * t.g("length") + 0.1 * s)
        path = curve((x0, 0.95), top, 0.04, n=12)
        for i in range(2, 11, 2):
            x, y = path[i]
            needle = 0.16 + 0.14 * t.g("limb_length")
            for side in (-1.0, 1.0):
                for lift in (0.2, 0.6):
                    tip = (x + side * needle, y + needle * (lift + 0.4 * t.g("curl")))
                    parts.append(Part("stem", _pts([(x, y), tip]), width=0.022))
        parts.append(Part("body", band(path, 0.07, 0.045)))
        if t.g("head") > 0.4:
            parts.append(Part("accent", ellipse(top[0], top[1] - 0.05, 0.035, 0.08, n=12)))
    return parts


def _shoots(t: Traits, p: Pose) -> list[Part]:
    parts: list[Part] = []
    shoots = 4 + int(3 * t.g("limbs"))
    for s in range(shoots):
        x0 = (s - (shoots - 1) / 2) * 0.16
        height = 0.9 + 0.6 * t.g("length") * (0.8 + 0.2 * _wave(s, 0.4))
        tip = (x0 * 1.6 + 0.05 * math.sin(TAU * p.phase + s), 0.95 - height)
        path = curve((x0, 0.95), tip, 0.08 * (t.g("curl") - 0.5), n=12)
        parts.append(Part("body", band(path, 0.08 + 0.04 * t.g("width"), 0.05)))
        parts.append(Part("accent", ellipse(tip[0], tip[1] - 0.04, 0.035, 0.09, n=12)))
    return parts


# --- body plans: fungi -----------------------------------------------------------------------------

def _mushroom(x: float, size: float, t: Traits) -> list[Part]:
    height = size * (0.9 + 0.7 * t.g("length"))
    cap = size * (0.4 + 0.3 * t.g("width"))
    dome = cap * (0.35 + 0.8 * t.g("curl"))
    stem_w = size * (0.1 + 0.1 * t.g("limb_length"))
    top_y = 0.95 - height
    theta = np.linspace(math.pi, TAU, 24)
    cap_outline = np.stack([x + cap * np.cos(theta), top_y + dome * np.sin(theta)], 1)
    parts = [
        Part("light", band(curve((x, 0.95), (x, top_y), 0.03 * size, n=8), stem_w * 1.3, stem_w)),
        Part("limb", ellipse(x, top_y, cap * 0.95, cap * 0.12)),
        Part("body", np.concatenate([cap_outline, _pts([(x + cap, top_y + cap * 0.05), (x - cap, top_y + cap * 0.05)])])),
    ]
    if t.g("eye") > 0.5:
        parts.append(Part("light", ellipse(x, top_y + height * 0.25, stem_w * 1.2, stem_w * 0.35)))
    return parts


def _cap(t: Traits, p: Pose) -> list[Part]:
    count = 1 + int(2.4 * t.g("limbs"))
    parts: list[Part] = []
    for k in range(count):
        size = 1.0 if k == 0 else 0.55 - 0.1 * k
        x = 0.0 if k == 0 else (0.55 if k == 1 else -0.55) + 0.05 * math.sin(TAU * p.phase)
        parts = (_mushroom(x, size, t) + parts) if k else parts + _mushroom(x, size, t)
    return parts


def _bracket(t: Traits, p: Pose) -> list[Part]:
    log = Part("wood", band(_pts([(-0.65, 1.2), (-0.62, -1.2)]), 0.35, 0.3))
    shelves = 3 + int(2 * t.g("segments"))
    reach = 0.5 + 0.35 * t.g("width")
    parts = [log]
    for k in range(shelves):
        y = 0.55 - k * (1.3 / shelves)
        w = reach * (1.0 - 0.12 * k) * (0.9 + 0.1 * math.sin(TAU * p.phase + k))
        theta = np.linspace(-math.pi / 2, math.pi / 2, 20)
        shelf = np.stack([-0.5 + w * np.cos(theta), y + (0.08 + 0.08 * t.g("length")) * np.sin(theta)], 1)
        parts.append(Part("body", np.concatenate([shelf, _pts([(-0.5, y + 0.1)])])))
        parts.append(Part("accent", shelf[4:-4], width=0.02))
    return parts


def _funnel(t: Traits, p: Pose) -> list[Part]:
    rim = 0.4 + 0.25 * t.g("width")
    top = 0.1 - 0.45 * t.g("length")
    wave = np.linspace(-rim, rim, 15)
    edge = np.stack([wave, top + 0.04 * np.sin(wave * 18 + TAU * p.phase)], 1)
    funnel = np.concatenate([_pts([(-0.08, 0.95), (-0.1, 0.45)]), edge, _pts([(0.1, 0.45), (0.08, 0.95)])])
    ridges = [Part("limb", _pts([(x * 0.9, top + 0.06), (x * 0.12, 0.45)]), width=0.015) for x in np.linspace(-rim, rim, 7)]
    return [Part("body", funnel), *ridges, Part("light", ellipse(0, top, rim, 0.06))]


def _club(t: Traits, p: Pose) -> list[Part]:
    fingers = 1 + int(3 * t.g("limbs"))
    parts: list[Part] = []
    for k in range(fingers):
        x0 = (k - (fingers - 1) / 2) * 0.22
        height = (1.1 + 0.5 * t.g("length")) * (1.0 - 0.15 * abs(k - (fingers - 1) / 2))
        tip = (x0 * 1.5 + 0.04 * math.sin(TAU * p.phase + k), 0.95 - height)
        path = curve((x0, 0.95), tip, 0.1 * (t.g("curl") - 0.5), n=12)
        width = 0.12 + 0.08 * t.g("width")
        parts.append(Part("light" if t.g("head") > 0.5 else "body", band(path, width * 0.8, width)))
        parts.append(Part("body", ellipse(tip[0], tip[1] + 0.08, width * 0.62, 0.1 + 0.15 * t.g("head"), n=16)))
    return parts


def _cup(t: Traits, p: Pose) -> list[Part]:
    parts: list[Part] = []
    count = 1 + int(2.5 * t.g("limbs"))
    for k in range(count):
        size = 1.0 - 0.25 * k
        x = (0.0, -0.45, 0.45)[k] + 0.03 * math.sin(TAU * p.phase)
        w, depth = (0.32 + 0.15 * t.g("width")) * size, (0.2 + 0.2 * t.g("length")) * size
        top = 0.85 - depth - 0.1 * k
        theta = np.linspace(0.0, math.pi, 20)
        bowl = np.stack([x + w * np.cos(theta), top + depth * np.sin(theta)], 1)
        parts = [Part("body", bowl), Part("light", ellipse(x, top, w, w * (0.18 + 0.2 * t.g("curl"))))] + parts
    return parts


def _lump(t: Traits, p: Pose) -> list[Part]:
    r = 0.42 + 0.18 * t.g("width")
    parts = [Part("body", blob(0.0, 0.9 - r, r, 0.05 + 0.06 * t.g("curl"), 9, p.phase * 0.5))]
    if t.g("limbs") > 0.4:
        parts.append(Part("body", blob(r * 0.95, 0.92 - r * 0.45, r * 0.45, 0.08, 7, 1.0)))
    return parts


def _morel(t: Traits, p: Pose) -> list[Part]:
    height = 0.8 + 0.5 * t.g("length")
    w = 0.25 + 0.12 * t.g("width")
    top = 0.95 - height - 0.4
    cone = _pts([(0, top), (w * 0.8, top + 0.25), (w, top + 0.55), (w * 0.9, top + 0.8), (-w * 0.9, top + 0.8),
                 (-w, top + 0.55), (-w * 0.8, top + 0.25)])
    grid = [Part("dark", _pts([(x, top + 0.12), (x * 1.1, top + 0.78)]), width=0.02) for x in np.linspace(-w * 0.6, w * 0.6, 4)]
    grid += [Part("dark", _pts([(-w * 0.9, y), (w * 0.9, y + 0.03 * math.sin(TAU * p.phase))]), width=0.02)
             for y in np.linspace(top + 0.25, top + 0.7, 4)]
    return [Part("light", band(_pts([(0, 0.95), (0, top + 0.7)]), 0.2, 0.16)), Part("body", _smooth(cone, 2)), *grid]


def _lobes(t: Traits, p: Pose) -> list[Part]:
    parts: list[Part] = []
    count = 4 + int(4 * t.g("limbs"))
    for k in range(count):
        a = k * 2.39996
        d = 0.4 * math.sqrt((k + 0.5) / count)
        r = (0.22 + 0.1 * t.g("width")) * (1.0 - 0.05 * k)
        parts.append(Part("body", blob(d * math.cos(a), 0.25 + d * math.sin(a) * 0.8, r, 0.15, 4, k + p.phase), opacity=225))
        parts.append(Part("light", ellipse(d * math.cos(a) - r * 0.3, 0.25 + d * math.sin(a) * 0.8 - r * 0.35, r * 0.2, r * 0.1)))
    return parts


def _budding(t: Traits, p: Pose) -> list[Part]:
    parts: list[Part] = []
    count = 5 + int(5 * t.g("limbs"))
    for k in range(count):
        a = k * 2.39996 + p.phase
        d = 0.62 * math.sqrt((k + 0.5) / count)
        x, y = d * math.cos(a), d * math.sin(a)
        r = 0.17 + 0.06 * t.g("width")
        parts.append(Part("body", ellipse(x, y, r * (1.1 + 0.3 * t.g("length")), r, rot=a)))
        parts.append(Part("dark", ellipse(x, y, r * 0.3, r * 0.3, n=10)))
        if k % 2 == 0:
            parts.append(Part("light", ellipse(x + r * 1.15 * math.cos(a), y + r * 1.15 * math.sin(a), r * 0.35, r * 0.32)))
    return parts


DRAWERS: dict[str, Callable[[Traits, Pose], list[Part]]] = {
    "fins": _fins, "wings": _wings, "legs": _legs, "crawler": _crawler, "serpent": _serpent,
    "winged": _winged, "spider": _spider, "clawed": _clawed,
    "snail": _snail, "tentacled": _tentacled, "valves": _valves,
    "star": _star, "bell": _bell, "spiny": _spiny, "branching": _branching,
    "bloom": _bloom, "tree": _tree, "spike": _spike, "grass": _grass,
    "spire": lambda t, p: _conifer(t, p, 0.8), "broad": lambda t, p: _conifer(t, p, 1.25), "bush": _bush,
    "frond": _frond, "whorl": _whorl, "shoots": _shoots,
    "cap": _cap, "bracket": _bracket, "funnel": _funnel, "club": _club,
    "cup": _cup, "lump": _lump, "morel": _morel, "lobes": _lobes, "budding": _budding,
}


def parts_of(t: Traits, pose: Pose) -> list[Part]:
    """The organism's parts in its own frame, back to front."""
    return DRAWERS[t.style](t, pose)


# --- painting ---------------------------------------------------------------------------------------

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


def _shift_hsv(colour: Colour, dh: float, dv: float) -> Colour:
    h, s, v = colorsys.rgb_to_hsv(*(c / 255 for c in colour))
    return _hsv(h + dh, s, v * (1.0 + dv))


def background(t: Traits, size: int, rng: np.random.Generator) -> Image.Image:
    """The habitat: a gradient in its colours, mottled, with a few things of its own."""
    dh, dv = (t.g("bg_hue") - 0.5) * 2 * BG_HUE_SHIFT, (t.g("bg_value") - 0.5) * 0.3
    top, bottom = (np.asarray(_shift_hsv(c, dh, dv), np.float32) for c in HABITAT_COLOURS[t.habitat])
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
    darker, lighter = _mix(base, (0, 0, 0), 0.3), _mix(base, (255, 255, 255), 0.45)
    if habitat == "meadow":
        for _ in range(30):
            x, h = rng.uniform(0, s), rng.uniform(0.08, 0.25) * s
            draw.line([(x, s), (x + rng.uniform(-0.05, 0.05) * s, s - h)], fill=darker, width=max(1, s // 128))
    elif habitat == "water":
        for _ in range(6):
            y = rng.uniform(0, s)
            xs = np.linspace(0, s, 12)
            draw.line(list(zip(xs, y + 0.01 * s * np.sin(xs / s * 12 + rng.uniform(0, 6)))), fill=lighter, width=max(1, s // 160))
        for _ in range(5):
            x, y, r = rng.uniform(0, s), rng.uniform(0, s), rng.uniform(0.005, 0.015) * s
            draw.ellipse([x - r, y - r, x + r, y + r], outline=lighter, width=max(1, s // 200))
    elif habitat == "forest":
        for _ in range(3):
            x, w = rng.uniform(0, s), rng.uniform(0.04, 0.1) * s
            draw.rectangle([x, 0, x + w, s], fill=_mix(base, (0, 0, 0), 0.15))
        for _ in range(25):
            x, y, r = rng.uniform(0, s), rng.uniform(0.8, 1.0) * s, rng.uniform(0.005, 0.015) * s
            draw.ellipse([x - r, y - r, x + r, y + r], fill=_mix(base, (200, 120, 40), 0.4))
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
                         fill=_mix(base, (rng.integers(60, 200),) * 3, 0.3), outline=darker)
    elif habitat == "reef":
        for _ in range(5):
            x, r = rng.uniform(0, s), rng.uniform(0.03, 0.08) * s
            colour = _mix(_hsv(rng.uniform(), 0.45, 0.8), base, 0.4)
            draw.ellipse([x - r, s - r * 1.2, x + r, s + r * 0.8], fill=colour)
        for _ in range(2):
            x = rng.uniform(0, s)
            draw.line([(x, 0), (x + 0.3 * s, s)], fill=_mix(lighter, base, 0.5), width=max(1, s // 96))
    elif habitat == "snow":
        for _ in range(40):
            x, y, r = rng.uniform(0, s), rng.uniform(0, s), rng.uniform(0.003, 0.009) * s
            draw.ellipse([x - r, y - r, x + r, y + r], fill=(255, 255, 255))


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


def _paste_body(canvas: Image.Image, fill: Image.Image, origin: tuple[int, int], points: np.ndarray, opacity: int) -> None:
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
    rgb = ((rgb - 128.0) * pose.contrast + 128.0) * (pose.brightness * light)[..., None] * np.asarray(pose.tint, np.float32)
    rgb += rng.normal(0.0, pose.noise, size=rgb.shape).astype(np.float32)
    return Image.fromarray(np.clip(rgb + 0.5, 0, 255).astype(np.uint8), "RGB")


def render(t: Traits, size: int, rng: np.random.Generator) -> Image.Image:
    """One picture of the organism `t`, `size` pixels square, every variation drawn from `rng`."""
    pose = Pose.draw(t.plan, rng)
    big = size * SUPERSAMPLE
    canvas = background(t, big, rng)
    _paint(canvas, t, parts_of(t, pose), pose)
    return _finish(canvas.reduce(SUPERSAMPLE), pose, rng)
