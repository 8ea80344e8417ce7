"""Synthetic defects painted along a drawn stroke (the app's "Draw a defect" view).

``paint_defect(image, stroke, kind, color=..., seed=...)`` -> ``(image, mask)``: ``stroke``
is the drawn mask (non-zero where the brush went, any size: resized to the image); the
returned mask (uint8 {0, 255}) is the ground truth of the painted defect.

Kinds: ``scratch`` (the stroke in a solid colour, lightly anti-aliased), ``stain`` (a
colour blended in with a smooth noise opacity) and ``patch`` (pixels cut from another
region of the same image, pasted under the stroke).
"""

from __future__ import annotations

import cv2
import numpy as np

from shiftbench.errors import ShiftbenchError

KINDS = ("scratch", "stain", "patch")


def parse_color(text: str | None, default=(30, 30, 30)) -> tuple[int, int, int]:
    """``#rrggbb`` -> (r, g, b); None -> ``default``."""
    if not text:
        return default
    t = text.strip().lstrip("#")
    if len(t) != 6 or any(c not in "0123456789abcdefABCDEF" for c in t):
        raise ShiftbenchError(f"color {text!r}: give a hex colour such as #1e1e1e")
    return int(t[0:2], 16), int(t[2:4], 16), int(t[4:6], 16)


def _stroke_mask(stroke: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    s = np.asarray(stroke)
    if s.ndim == 3:
        s = s.max(axis=-1)
    binary = (s > 0).astype(np.uint8) * 255
    if binary.shape != shape:
        binary = cv2.resize(binary, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
        binary = np.where(binary >= 64, 255, 0).astype(np.uint8)
    return binary


def paint_defect(
    image: np.ndarray,
    stroke: np.ndarray,
    kind: str = "scratch",
    *,
    color: str | tuple[int, int, int] | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Paint a defect of ``kind`` into ``image`` (RGB uint8 [H,W,3]) along ``stroke``;
    returns ``(new image, mask uint8 [H,W] in {0, 255})``."""
    if kind not in KINDS:
        raise ShiftbenchError(f"defect kind {kind!r}: choose from {', '.join(KINDS)}")
    img = np.ascontiguousarray(image, dtype=np.uint8)
    h, w = img.shape[:2]
    mask = _stroke_mask(stroke, (h, w))
    if not mask.any():
        raise ShiftbenchError("the drawn stroke is empty: draw on the image first")
    rgb = color if isinstance(color, tuple) else parse_color(color)
    m = mask.astype(np.float32) / 255.0
    out = img.astype(np.float32)
    rng = np.random.default_rng(seed)
    if kind == "scratch":
        alpha = cv2.GaussianBlur(m, (3, 3), 0.6)[..., None]
        out = out * (1 - alpha) + np.array(rgb, np.float32) * alpha
    elif kind == "stain":
        noise = rng.random((max(h // 4, 2), max(w // 4, 2))).astype(np.float32)
        noise = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
        noise = cv2.GaussianBlur(noise, (0, 0), max(h, w) / 40.0)
        noise = (noise - noise.min()) / max(float(np.ptp(noise)), 1e-6)
        soft = cv2.GaussianBlur(m, (0, 0), 1.5)
        alpha = (soft * (0.45 + 0.5 * noise))[..., None]
        out = out * (1 - alpha) + np.array(rgb, np.float32) * alpha
    else:  # patch: the same shape cut from another region of the same image
        ys, xs = np.nonzero(mask)
        dy = int(rng.integers(h // 4, max(h // 4 + 1, 3 * h // 4))) if h >= 4 else 1
        dx = int(rng.integers(w // 4, max(w // 4 + 1, 3 * w // 4))) if w >= 4 else 1
        donor = np.roll(img, (dy, dx), axis=(0, 1)).astype(np.float32)
        donor = cv2.flip(donor, -1) if (ys.mean() < h / 2) == (xs.mean() < w / 2) else donor
        alpha = cv2.GaussianBlur(m, (3, 3), 0.6)[..., None]
        out = out * (1 - alpha) + donor * alpha
    return np.clip(out + 0.5, 0, 255).astype(np.uint8), mask
