"""Body plans: one function per style, turning traits and a pose into parts (see `demo.shapes`).

Each returns its parts back to front. Shapes are functions of the genes (so relatives look alike)
and of `pose.phase` (a wing beat, a sway), never of a random generator.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from demo.pose import Pose
from demo.shapes import TAU, Part, band, blob, curve, ellipse, mirror_y, pts, smooth, star, wave
from demo.traits import Traits


# --- creatures --------------------------------------------------------------------------

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
        Part("limb", smooth(pts([(-L * 0.8, 0), (-L - tail, -W * (0.7 + 0.6 * fin)), (-L - tail * 0.5, 0),
                                    (-L - tail, W * (0.7 + 0.6 * fin))]), 1)),
        Part("limb", pts([(-L * 0.4, -W * 0.8), (L * 0.15, -W * 0.85), (-L * 0.3, -W * (1.25 + fin))])),
        Part("limb", pts([(-L * 0.15, W * 0.8), (L * 0.05, W * 0.75), (-L * 0.35, W * (1.2 + 0.6 * fin))])),
        Part("body", _spindle(L, W, 0.4 + 0.4 * t.g("head"))),
        Part("dark", curve((L * 0.42, -W * 0.55), (L * 0.42, W * 0.5), -W * 0.25), width=W * 0.06),
        Part("wing", pts([(L * 0.3, W * 0.05), (L * 0.4, W * 0.2), (L * 0.0, W * (0.6 + 0.4 * fin + flap))])),
        *_eye(L * 0.66, -W * 0.2, E * 1.2),
    ]


def _wings(t: Traits, p: Pose) -> list[Part]:
    L, W, H, E = _torso(t)
    L, W = L * 0.8, W * 1.15
    span, lift = 0.35 + 0.45 * t.g("limb_length"), 0.1 + 0.9 * p.phase
    hx, hy = L * 0.95, -W * 0.75
    beak = H * (0.6 + 1.2 * t.g("curl"))
    tail = 0.15 + 0.4 * t.g("tail")
    legs = [Part("dark", pts([(x, W * 0.7), (x + 0.05, W * 0.7 + 0.22)]), width=0.03) for x in (-L * 0.1, L * 0.2)]
    wing_length, wing_width = L * 0.9 + span * 0.6, W * (0.55 + 0.3 * t.g("width"))
    return [
        *legs,
        Part("limb", _leaf((L * 0.25, -W * 0.45), math.pi + 0.45 + 0.9 * lift, wing_length * 0.9, wing_width * 0.9)),
        Part("wing", smooth(pts([(-L * 0.5, -W * 0.2), (-L * 0.5, W * 0.3), (-L - tail, W * 0.25),
                                   (-L - tail, -W * 0.05)]), 1)),
        Part("body", ellipse(0, 0, L, W, rot=-0.15)),
        Part("body", ellipse(hx, hy, H * 1.05, H)),
        Part("accent", pts([(hx + H * 0.8, hy - H * 0.3), (hx + H * 0.8, hy + H * 0.35), (hx + H * 0.8 + beak, hy)])),
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
        Part("limb", pts([(hx - H * 0.6, hy - H * 0.5), (hx - H * 0.1, hy - H * 0.7),
                           (hx - H * 0.5, hy - H * (1.3 + t.g("eye")))])),
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
    front = [(L * 0.45, W * 0.3), (L * (0.65 + stride), W * (0.9 + 0.4 * leg)),
             (L * (0.95 + stride), W * (1.0 + 0.4 * leg))]
    hind = [(-L * 0.45, W * 0.2), (-L * (0.05 - stride), W * (0.8 + 0.6 * leg)),
            (-L * (0.8 - stride), W * (1.05 + 0.6 * leg))]
    tail_len = 0.05 + 0.7 * t.g("tail")
    tail = curve((-L * 0.85, 0.0), (-L - tail_len, W * 0.3), W * 0.5 * math.sin(TAU * p.phase))
    hx = L * 0.85
    return [
        Part("dark", band(np.asarray(hind[::-1]) * [1, 1] + [0.06, 0.0], W * 0.25, W * 0.45)),
        Part("limb", band(tail, W * 0.6, W * 0.05)),
        Part("body", _spindle(L, W * 0.85, 0.2)),
        Part("body", ellipse(hx, -W * 0.1, H * 1.35, H * 0.95)),
        Part("limb", band(pts(front), W * 0.3, W * 0.2)),
        Part("limb", band(pts(hind), W * 0.5, W * 0.28)),
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
        Part("accent", pts(tongue), width=H * 0.15),
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
        fore = ellipse(0.1 + 0.12 * t.g("head"), sign * span * 0.5, span * 0.32 * round_ + 0.08, span * 0.52,
                       rot=sign * 0.45)
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
            parts.append(Part("limb", pts([tuple(base), tuple(knee), tuple(foot)]), width=0.035))
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
        arm = curve((shell_x * 0.6, sign * shell_y * 0.55), (shell_x + 0.2, sign * (shell_y * 0.55 + 0.12)),
                    sign * 0.06, n=8)
        cx, cy = arm[-1]
        hand = ellipse(cx + claw * 0.7, cy, claw, claw * 0.55, rot=-sign * 0.2)
        finger = _leaf((cx + claw * 1.1, cy + sign * claw * 0.25), sign * gape * 0.6, claw * 1.1, claw * 0.22)
        thumb = _leaf((cx + claw * 1.1, cy - sign * claw * 0.2), -sign * gape * 0.4, claw * 1.2, claw * 0.28)
        parts += [Part("limb", band(arm, 0.11, 0.09)), Part("limb", finger), Part("body", hand), Part("body", thumb)]
    if long_ > 0.45:
        for i in range(4):
            r = 0.11 - 0.015 * i
            parts.append(Part("body", ellipse(-shell_x - 0.05 - i * 0.12, 0, 0.08, r * (1.2 + t.g("width")))))
        parts.append(Part("limb", pts([(-shell_x - 0.5, 0), (-shell_x - 0.68, -0.16), (-shell_x - 0.68, 0.16)])))
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
    stalks = [Part("dark", pts([head, (head[0] + dx + sway, head[1] - stalk)]), width=0.025) for dx in (0.0, 0.12)]
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
        parts.append(Part("limb", pts([(0, top - 0.02), (-mantle_w * 1.2, top + mantle_h * 0.5),
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
    rib_ends = [(r * 0.95 * math.cos(a) * stretch, 0.35 + r * 0.95 * math.sin(a))
                for a in np.linspace(math.pi * 1.12, math.pi * 1.88, ribs)]
    lines = [Part("dark", pts([(0.0, 0.35), end]), width=0.014) for end in rib_ends]
    return [Part("light", lower), Part("body", fan), *lines]


def _star(t: Traits, p: Pose) -> list[Part]:
    arms = 5 + int(3 * t.g("segments") ** 2)
    r_out = 0.7 + 0.25 * t.g("limb_length")
    r_in = r_out * (0.22 + 0.2 * t.g("width"))
    rot = TAU * p.phase / arms
    angles = [rot + k * TAU / arms for k in range(arms)]
    dots = [Part("accent", ellipse(math.cos(a) * r_out * f, math.sin(a) * r_out * f, 0.035, 0.035, n=8))
            for a in angles for f in (0.35, 0.55, 0.75)]
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
        tilt = 0.15 * wave(k, t.g("curl"))
        base = (r * 0.9 * math.cos(a), r * 0.9 * math.sin(a))
        tip = (base[0] + spine * math.cos(a + tilt), base[1] + spine * math.sin(a + tilt))
        parts.append(Part("limb", pts([base, tip]), width=0.022))
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
            jitter = 0.25 * wave(code + k, t.g("segments"))
            grow(*end, angle + side * spread * (0.7 + jitter), size * 0.72, depth - 1, code * 2 + k + 1)

    grow(0.0, 0.95, 0.0, length, 3, 1.0)
    return parts + [Part("accent", ellipse(x, y, width * 0.5, width * 0.5, n=10)) for x, y in tips]


# --- plants ----------------------------------------------------------------------------

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
        parts.append(Part("body", blob(x, y, r * (0.75 + 0.25 * wave(k, t.g("hue"))), 0.06, 5, k + p.phase)))
    fruit = int(7 * t.g("limbs"))
    for k in range(fruit):
        x, y = centres[k % count]
        parts.append(Part("accent", ellipse(x + 0.08 * wave(k, 1.3), y + 0.08 * wave(k, 2.1), 0.03, 0.03, n=10)))
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
        height = 0.9 + 0.7 * t.g("length") * (0.7 + 0.3 * wave(k, 0.7))
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
        outline = pts([(sway, y0 - step * 1.6), (half + sway, y0 + droop), (half * 0.5, y0 + droop * 0.4),
                        (0.0, y0 + droop * 0.8), (-half * 0.5, y0 + droop * 0.4), (-half + sway, y0 + droop)])
        parts.append(Part("body", smooth(outline, 1)))
    cones = int(5 * t.g("limbs"))
    for k in range(cones):
        y = bottom - (k + 0.5) * (bottom - top) / (cones + 1)
        x = 0.25 * wave(k, 3.3) * (1 - (bottom - y) / (bottom - top) * 0.7)
        parts.append(Part("accent", ellipse(x, y, 0.03, 0.05, n=10)))
    return parts


def _bush(t: Traits, p: Pose) -> list[Part]:
    trunk, _ = _stem((0.0, 0.55), 0.0, 0.07, "wood")
    parts = [trunk]
    r = 0.22 + 0.1 * t.g("width")
    for k in range(7):
        a = k * 2.39996
        d = 0.35 * math.sqrt((k + 0.5) / 7)
        y = 0.15 + d * math.sin(a) - 0.2 * t.g("length")
        parts.append(Part("body", blob(d * math.cos(a) * 1.3, y, r, 0.1, 7, k + p.phase)))
    for k in range(int(9 * t.g("limbs"))):
        parts.append(Part("accent", ellipse(0.45 * wave(k, 1.1), 0.05 + 0.3 * wave(k, 2.7), 0.03, 0.03, n=10)))
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
                angle = base_angle + side * (1.2 - 0.3 * t.g("width"))
                parts.append(Part("body", _leaf(tuple(path[i]), angle, size, size * 0.35)))
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
                    parts.append(Part("stem", pts([(x, y), tip]), width=0.022))
        parts.append(Part("body", band(path, 0.07, 0.045)))
        if t.g("head") > 0.4:
            parts.append(Part("accent", ellipse(top[0], top[1] - 0.05, 0.035, 0.08, n=12)))
    return parts


def _shoots(t: Traits, p: Pose) -> list[Part]:
    parts: list[Part] = []
    shoots = 4 + int(3 * t.g("limbs"))
    for s in range(shoots):
        x0 = (s - (shoots - 1) / 2) * 0.16
        height = 0.9 + 0.6 * t.g("length") * (0.8 + 0.2 * wave(s, 0.4))
        tip = (x0 * 1.6 + 0.05 * math.sin(TAU * p.phase + s), 0.95 - height)
        path = curve((x0, 0.95), tip, 0.08 * (t.g("curl") - 0.5), n=12)
        parts.append(Part("body", band(path, 0.08 + 0.04 * t.g("width"), 0.05)))
        parts.append(Part("accent", ellipse(tip[0], tip[1] - 0.04, 0.035, 0.09, n=12)))
    return parts


# --- fungi -----------------------------------------------------------------------------

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
        Part("body", np.concatenate([cap_outline, pts([(x + cap, top_y + cap * 0.05),
                                                        (x - cap, top_y + cap * 0.05)])])),
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
    log = Part("wood", band(pts([(-0.65, 1.2), (-0.62, -1.2)]), 0.35, 0.3))
    shelves = 3 + int(2 * t.g("segments"))
    reach = 0.5 + 0.35 * t.g("width")
    parts = [log]
    for k in range(shelves):
        y = 0.55 - k * (1.3 / shelves)
        w = reach * (1.0 - 0.12 * k) * (0.9 + 0.1 * math.sin(TAU * p.phase + k))
        theta = np.linspace(-math.pi / 2, math.pi / 2, 20)
        shelf = np.stack([-0.5 + w * np.cos(theta), y + (0.08 + 0.08 * t.g("length")) * np.sin(theta)], 1)
        parts.append(Part("body", np.concatenate([shelf, pts([(-0.5, y + 0.1)])])))
        parts.append(Part("accent", shelf[4:-4], width=0.02))
    return parts


def _funnel(t: Traits, p: Pose) -> list[Part]:
    rim = 0.4 + 0.25 * t.g("width")
    top = 0.1 - 0.45 * t.g("length")
    wave = np.linspace(-rim, rim, 15)
    edge = np.stack([wave, top + 0.04 * np.sin(wave * 18 + TAU * p.phase)], 1)
    funnel = np.concatenate([pts([(-0.08, 0.95), (-0.1, 0.45)]), edge, pts([(0.1, 0.45), (0.08, 0.95)])])
    ridges = [Part("limb", pts([(x * 0.9, top + 0.06), (x * 0.12, 0.45)]), width=0.015)
              for x in np.linspace(-rim, rim, 7)]
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
    cone = pts([(0, top), (w * 0.8, top + 0.25), (w, top + 0.55), (w * 0.9, top + 0.8), (-w * 0.9, top + 0.8),
                 (-w, top + 0.55), (-w * 0.8, top + 0.25)])
    grid = [Part("dark", pts([(x, top + 0.12), (x * 1.1, top + 0.78)]), width=0.02)
            for x in np.linspace(-w * 0.6, w * 0.6, 4)]
    grid += [Part("dark", pts([(-w * 0.9, y), (w * 0.9, y + 0.03 * math.sin(TAU * p.phase))]), width=0.02)
             for y in np.linspace(top + 0.25, top + 0.7, 4)]
    return [Part("light", band(pts([(0, 0.95), (0, top + 0.7)]), 0.2, 0.16)), Part("body", smooth(cone, 2)), *grid]


def _lobes(t: Traits, p: Pose) -> list[Part]:
    parts: list[Part] = []
    count = 4 + int(4 * t.g("limbs"))
    for k in range(count):
        a = k * 2.39996
        d = 0.4 * math.sqrt((k + 0.5) / count)
        r = (0.22 + 0.1 * t.g("width")) * (1.0 - 0.05 * k)
        x, y = d * math.cos(a), 0.25 + d * math.sin(a) * 0.8
        parts.append(Part("body", blob(x, y, r, 0.15, 4, k + p.phase), opacity=225))
        parts.append(Part("light", ellipse(x - r * 0.3, y - r * 0.35, r * 0.2, r * 0.1)))
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
            bud = (x + r * 1.15 * math.cos(a), y + r * 1.15 * math.sin(a))
            parts.append(Part("light", ellipse(*bud, r * 0.35, r * 0.32)))
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
