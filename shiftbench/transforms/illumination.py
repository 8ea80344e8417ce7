"""Non-uniform illumination (image only): a smooth multiplicative gain map.

Two shapes, as the proposal describes:

- ``linear``: light from one ``side`` (left, right, top, bottom); the gain falls linearly to
  ``dark`` at the opposite side;
- ``radial``: ``centre``-lit (bright around a point near the centre, ``dark`` at the
  farthest corner) or ``edge``-lit (the reverse).

The raw map is smoothed with a Gaussian of sigma 80 px at 1024 px, scaled with the image's
longer side (it rounds the radial map's tip and the ends of the ramp), then rescaled so the
gain runs exactly from ``dark`` to 1. Albumentations' illumination transforms fix their own
profiles and smoothing, so this one is written here.
"""

from __future__ import annotations

from typing import Any, ClassVar

import cv2
import numpy as np

from shiftbench.transforms.base import Perturbation
from shiftbench.transforms.registry import register

#: Gaussian transition width, as a fraction of the image's longer side (80 px at 1024 px).
SIGMA_FRACTION = 80.0 / 1024.0
#: The gain map is built at most this many pixels wide and upsampled: it is smooth by
#: construction, so bilinear upsampling loses nothing visible and saves a 480-tap blur.
_MAP_SIDE = 128

SIDES = ("left", "right", "top", "bottom")


def gain_map(
    shape: tuple[int, ...],
    *,
    mode: str,
    dark: float,
    side: str = "left",
    lit: str = "centre",
    cx: float = 0.5,
    cy: float = 0.5,
) -> np.ndarray:
    """The multiplicative gain ``float32 [H, W]`` in ``[dark, 1]`` for the given params."""
    h, w = shape[:2]
    scale = min(1.0, _MAP_SIDE / max(h, w))
    mh, mw = max(2, round(h * scale)), max(2, round(w * scale))
    ys = (np.arange(mh, dtype=np.float32) + 0.5) / mh
    xs = (np.arange(mw, dtype=np.float32) + 0.5) / mw
    if mode == "linear":
        # brightness 1 at the lit side, 0 at the opposite one
        profile = {
            "left": 1 - xs[None, :],
            "right": xs[None, :],
            "top": 1 - ys[:, None],
            "bottom": ys[:, None],
        }[side]
        raw = np.broadcast_to(profile, (mh, mw)).astype(np.float32)
    elif mode == "radial":
        # distances in pixels so that a non-square image gets a round spot
        dist = np.hypot((xs[None, :] - cx) * w, (ys[:, None] - cy) * h).astype(np.float32)
        dist /= dist.max()
        raw = 1.0 - dist if lit == "centre" else dist
    else:  # pragma: no cover - sample_params only draws the two modes
        raise ValueError(f"unknown illumination mode {mode!r}")
    sigma = SIGMA_FRACTION * max(h, w) * scale
    smooth = cv2.GaussianBlur(
        np.ascontiguousarray(raw),
        (0, 0),
        sigmaX=sigma,
        sigmaY=sigma,
        borderType=cv2.BORDER_REFLECT_101,
    )
    lo, hi = float(smooth.min()), float(smooth.max())
    smooth = (smooth - lo) / max(hi - lo, 1e-12)
    gain = (dark + (1.0 - dark) * smooth).astype(np.float32)
    if (mh, mw) != (h, w):
        gain = cv2.resize(gain, (w, h), interpolation=cv2.INTER_LINEAR)
    return gain


@register("illumination")
class Illumination(Perturbation):
    """Uneven lighting: a linear or radial gain map with gain ``dark`` at the dark end,
    U[0.4, 0.7] at level 3 (the proposal); the shape is chosen uniformly among the four
    sides and the two radial kinds (half linear, half radial)."""

    family: ClassVar[str] = "illumination"
    DARK_RANGE: ClassVar[tuple[tuple[float, float], ...]] = (
        (1.0, 1.0),
        (0.85, 0.95),
        (0.65, 0.85),
        (0.4, 0.7),
        (0.3, 0.55),
        (0.2, 0.4),
    )

    def sample_params(self, rng: np.random.Generator, shape: tuple[int, ...]) -> dict[str, Any]:
        lo, hi = self.DARK_RANGE[self.severity]
        if lo == 1.0:
            return {"mode": "none", "dark": 1.0}
        dark = float(rng.uniform(lo, hi))
        if rng.random() < 0.5:
            return {"mode": "linear", "side": SIDES[int(rng.integers(4))], "dark": dark}
        lit = "centre" if rng.random() < 0.5 else "edge"
        cx, cy = rng.uniform(0.35, 0.65, size=2)
        return {"mode": "radial", "lit": lit, "cx": float(cx), "cy": float(cy), "dark": dark}

    def apply(
        self, image: np.ndarray, *, mode: str, dark: float, **shape_params: Any
    ) -> np.ndarray:
        if mode == "none" or dark >= 1.0:
            return image.copy()
        gain = gain_map(image.shape, mode=mode, dark=dark, **shape_params)
        if image.ndim == 3:
            gain = cv2.merge([gain] * image.shape[2])
        # uint8 x float32 -> rounded, saturated uint8 in one OpenCV pass
        return cv2.multiply(image, gain, dtype=cv2.CV_8U)
