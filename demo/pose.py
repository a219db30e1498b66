"""The per-picture variation: where the organism stands, how it moves, the light and the camera."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from demo.constants import (
    BLUR_RANGE, BRIGHTNESS_RANGE, CONTRAST_RANGE, NOISE_RANGE, SCALE_RANGE, SHIFT_RANGE, TILT, TINT_RANGE,
)
from demo.shapes import TAU


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
        """A pose for an organism of `plan`, every value drawn from `rng`."""
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
