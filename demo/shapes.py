"""The parts an organism is drawn from, and the shapes they take, in the organism's own frame.

The frame runs about [-1, 1] on each axis, x forward and y down; `render` places it in the picture.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

TAU = 2.0 * math.pi


@dataclass(frozen=True)
class Part:
    """A polygon (`width == 0`) or a stroke through `points`, filled with the colour of `kind`."""

    kind: str  # body (patterned) | limb | wing | accent | light | dark | stem | wood | eye | pupil
    points: np.ndarray  # (n, 2)
    width: float = 0.0  # stroke width in frame units
    opacity: int = 255  # for body parts: the mask value, below 255 lets the habitat show through


def pts(xy: list[tuple[float, float]]) -> np.ndarray:
    """Points as an (n, 2) array."""
    return np.asarray(xy, dtype=np.float64)


def ellipse(cx: float, cy: float, rx: float, ry: float, rot: float = 0.0, n: int = 28) -> np.ndarray:
    """An ellipse of radii `rx`, `ry` turned by `rot` radians, as `n` points."""
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
    """A star of `arms` rounded arms reaching `r_out`, its notches at `r_in`."""
    t = rot + np.arange(2 * arms) * math.pi / arms
    r = np.where(np.arange(2 * arms) % 2 == 0, r_out, r_in)
    return smooth(np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1), 2)


def smooth(points: np.ndarray, rounds: int) -> np.ndarray:
    """Chaikin corner cutting: rounds the corners of a closed polygon."""
    for _ in range(rounds):
        nxt = np.roll(points, -1, axis=0)
        points = np.concatenate([0.75 * points + 0.25 * nxt, 0.25 * points + 0.75 * nxt], axis=1).reshape(-1, 2)
    return points


def mirror_y(points: np.ndarray) -> np.ndarray:
    """The points mirrored top to bottom."""
    return points * np.array([1.0, -1.0])


def wave(i: float, k: float) -> float:
    """A fixed pseudo-random number in [-1, 1] from two numbers: shape detail without a generator."""
    return math.sin(12.9898 * i + 78.233 * k) * 0.5 + math.sin(4.1 * i + 2.3 * k) * 0.5
