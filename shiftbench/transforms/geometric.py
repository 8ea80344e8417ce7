"""Geometric perturbations: rotation, random resized crop, translation.

Each is an affine map, applied with albumentations' ``warp_affine`` (bilinear for the image,
nearest-neighbour for the mask, same matrix), so the mask moves exactly with the image and
stays in {0, 255}. Params are relative to the image size (fractions, degrees), so the same
params shift an image at any resolution. :class:`shiftbench.transforms.suites.Suite`
composes consecutive affine members into one warp: one interpolation instead of three,
which is both sharper and about three times faster.
"""

from __future__ import annotations

from typing import Any, ClassVar

import cv2
import numpy as np
from albumentations.augmentations.geometric import functional as fgeometric

from shiftbench.errors import ShiftbenchError
from shiftbench.transforms.base import DEFAULT_SEVERITY, GeometricPerturbation
from shiftbench.transforms.registry import register

_BORDERS = {
    "reflect": cv2.BORDER_REFLECT_101,
    "constant": cv2.BORDER_CONSTANT,
    "replicate": cv2.BORDER_REPLICATE,
}


def warp(array: np.ndarray, matrix: np.ndarray, *, nearest: bool, border: str) -> np.ndarray:
    """Warp an image (``[H, W, 3]``) or mask (``[H, W]``) by a 3x3 forward affine matrix in
    pixel coordinates (pixel centres at integers); output has the input's shape.

    Bilinear for images, nearest for masks; ``border`` is ``reflect`` (mirror the content,
    mask mirrored with it), ``constant`` (zeros) or ``replicate``.
    """
    if np.allclose(matrix, np.eye(3)):
        return array.copy()
    h, w = array.shape[:2]
    return fgeometric.warp_affine(
        np.ascontiguousarray(array),
        np.asarray(matrix, dtype=np.float64),
        interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR,
        fill=0,
        border_mode=_BORDERS[border],
        output_shape=(h, w),
    )


class AffinePerturbation(GeometricPerturbation):
    """A geometric perturbation that is one affine map; subclasses give :meth:`matrix`.

    Option ``border``: how pixels entering from outside the image are filled —
    ``reflect`` (default: no black corners for a detector to flag), ``constant`` or
    ``replicate``. The mask uses the same border rule, so it stays aligned.
    """

    _abstract_geometric = True

    def __init__(self, severity: int = DEFAULT_SEVERITY, *, border: str = "reflect") -> None:
        super().__init__(severity)
        if border not in _BORDERS:
            raise ShiftbenchError(
                f"perturbation {self.name!r}: border {border!r} unknown; use one of {sorted(_BORDERS)}"
            )
        self.border = border

    @property
    def options(self) -> dict[str, Any]:
        return {"border": self.border}

    def matrix(self, shape: tuple[int, ...], **params: Any) -> np.ndarray:
        """3x3 forward map from input to output pixel coordinates for an image of ``shape``."""
        raise NotImplementedError

    def apply(self, image: np.ndarray, **params: Any) -> np.ndarray:
        return warp(image, self.matrix(image.shape, **params), nearest=False, border=self.border)

    def apply_to_mask(self, mask: np.ndarray, **params: Any) -> np.ndarray:
        return warp(mask, self.matrix(mask.shape, **params), nearest=True, border=self.border)


def _centre(shape: tuple[int, ...]) -> tuple[float, float]:
    return (shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0


@register("rotate")
class Rotate(AffinePerturbation):
    """Rotation about the image centre by ``angle`` degrees (counter-clockwise), U[-m, m]
    with ``m`` from :attr:`MAX_DEG` (level 3: the proposal's ±10°)."""

    MAX_DEG: ClassVar[tuple[float, ...]] = (0.0, 3.0, 6.0, 10.0, 15.0, 25.0)

    def sample_params(self, rng: np.random.Generator, shape: tuple[int, ...]) -> dict[str, Any]:
        m = self.MAX_DEG[self.severity]
        return {"angle": float(rng.uniform(-m, m)) if m else 0.0}

    def matrix(self, shape: tuple[int, ...], *, angle: float) -> np.ndarray:
        return np.vstack([cv2.getRotationMatrix2D(_centre(shape), angle, 1.0), [0.0, 0.0, 1.0]])


@register("resized_crop")
class ResizedCrop(AffinePerturbation):
    """Random resized crop (as torchvision's): keep a box of area fraction ``scale`` and
    aspect ``ratio`` at a random place and stretch it back to the full image.

    Level 3: scale U[0.9, 1.0], ratio U[0.9, 1.1] (the proposal). A box that would exceed
    the image is clipped to it (torchvision retries instead; clipping keeps one draw per
    image). Params ``x, y, w, h`` are fractions of the image width/height.
    """

    MIN_SCALE: ClassVar[tuple[float, ...]] = (1.0, 0.97, 0.94, 0.9, 0.8, 0.65)
    RATIO_SPREAD: ClassVar[tuple[float, ...]] = (0.0, 0.033, 0.066, 0.1, 0.2, 0.3)

    def sample_params(self, rng: np.random.Generator, shape: tuple[int, ...]) -> dict[str, Any]:
        if self.severity == 0:
            return {"x": 0.0, "y": 0.0, "w": 1.0, "h": 1.0}
        scale = float(rng.uniform(self.MIN_SCALE[self.severity], 1.0))
        spread = self.RATIO_SPREAD[self.severity]
        ratio = float(rng.uniform(1.0 - spread, 1.0 + spread))
        # ratio is the box's aspect relative to the image's, so fractions stay size-free
        w = min(1.0, float(np.sqrt(scale * ratio)))
        h = min(1.0, float(np.sqrt(scale / ratio)))
        x = float(rng.uniform(0.0, 1.0 - w))
        y = float(rng.uniform(0.0, 1.0 - h))
        return {"x": x, "y": y, "w": w, "h": h}

    def matrix(
        self, shape: tuple[int, ...], *, x: float, y: float, w: float, h: float
    ) -> np.ndarray:
        height, width = shape[:2]
        sx, sy = 1.0 / w, 1.0 / h
        # pixel-centre convention, as cv2.resize: out = (in - x0 + 0.5) * s - 0.5
        return np.array(
            [
                [sx, 0.0, (0.5 - x * width) * sx - 0.5],
                [0.0, sy, (0.5 - y * height) * sy - 0.5],
                [0.0, 0.0, 1.0],
            ]
        )


@register("translate")
class Translate(AffinePerturbation):
    """Small translation by ``dx, dy`` fractions of the width/height, each U[-m, m]
    (level 3: ±5%, a few pixels to a few tens of pixels)."""

    MAX_SHIFT: ClassVar[tuple[float, ...]] = (0.0, 0.015, 0.03, 0.05, 0.08, 0.12)

    def sample_params(self, rng: np.random.Generator, shape: tuple[int, ...]) -> dict[str, Any]:
        m = self.MAX_SHIFT[self.severity]
        if not m:
            return {"dx": 0.0, "dy": 0.0}
        dx, dy = rng.uniform(-m, m, size=2)
        return {"dx": float(dx), "dy": float(dy)}

    def matrix(self, shape: tuple[int, ...], *, dx: float, dy: float) -> np.ndarray:
        return np.array([[1.0, 0.0, dx * shape[1]], [0.0, 1.0, dy * shape[0]], [0.0, 0.0, 1.0]])
