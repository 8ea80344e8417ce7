"""Shared parts of the ImageNet-C corruptions (:mod:`.corruptions`): the size rule, the
reference's quantisation and Gaussian, and the sampling every ``cc_*`` class inherits.

Size: with ``s = min(H, W) / 224`` (the tables' crop size), lengths in pixels are
multiplied by ``s``; random fields are drawn on the 224-px-equivalent grid
(:func:`reference_grid`) and resized to the image.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import cv2
import numpy as np

from shiftbench.transforms.base import Perturbation

#: Side (px) the published tables were tuned for.
REFERENCE_SIDE = 224


def size_scale(shape: tuple[int, ...]) -> float:
    """``s = min(H, W) / 224``: the factor applied to lengths given in pixels at 224 px."""
    return min(shape[0], shape[1]) / REFERENCE_SIDE


def reference_grid(shape: tuple[int, ...]) -> tuple[int, int]:
    """``(h, w)`` of the 224-px-equivalent grid on which spatial random fields are drawn."""
    s = size_scale(shape)
    return max(8, round(shape[0] / s)), max(8, round(shape[1] / s))


def to_uint8(x: np.ndarray) -> np.ndarray:
    """A float image in [0, 1] to ``uint8`` as the reference does: clip, scale, truncate."""
    x = np.multiply(x, 255.0, dtype=np.float32)
    np.clip(x, 0.0, 255.0, out=x)
    return x.astype(np.uint8)


def gaussian(x: np.ndarray, sigma: float, truncate: float = 4.0, border=cv2.BORDER_REPLICATE):
    """``skimage.filters.gaussian`` (mode ``nearest``, ``truncate`` 4) with OpenCV."""
    if sigma <= 0:
        return x
    k = 2 * math.ceil(truncate * sigma) + 1
    return cv2.GaussianBlur(x, (k, k), sigmaX=sigma, sigmaY=sigma, borderType=border)


class CorruptionMixin:
    """Shared sampling: ``c`` (the level's table entry), a ``seed`` and :meth:`draw`'s
    scalars, drawn in the same order at every level; ``c`` is ``None`` at level 0."""

    catalogue: ClassVar[str] = "corruption"
    #: imagecorruptions 1.1.2 constants, levels 1-5.
    TABLE: ClassVar[tuple[Any, ...]]
    #: Whether ``apply`` needs a ``seed`` (False for the deterministic corruptions).
    RANDOM: ClassVar[bool] = True

    def draw(self, rng: np.random.Generator) -> dict[str, Any]:
        """Extra scalars of one image (e.g. an angle); the same draws at every level."""
        return {}

    def sample_params(self, rng: np.random.Generator, shape: tuple[int, ...]) -> dict[str, Any]:
        seed = int(rng.integers(2**63)) if self.RANDOM else None
        extra = self.draw(rng)
        if self.severity == 0:
            return {"c": None}
        c = self.TABLE[self.severity - 1]
        params = {"c": list(c) if isinstance(c, tuple) else c, **extra}
        if seed is not None:
            params["seed"] = seed
        return params

    def apply(self, image: np.ndarray, *, c: Any, **params: Any) -> np.ndarray:
        if c is None:
            return image.copy()
        return self.corrupt(image, c, **params)

    def corrupt(self, image: np.ndarray, c: Any, **params: Any) -> np.ndarray:
        raise NotImplementedError


class Corruption(CorruptionMixin, Perturbation):
    """Base of the non-geometric corruptions (mask untouched)."""

    family: ClassVar[str] = "photometric"


def _unit(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float32) * np.float32(1 / 255)


def layer_to_image(layer: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A layer of the 224-px grid at the image's size: area-averaged when shrinking (the
    layer at 224 px, then resized, as a camera at the lower resolution would see it),
    bilinear when enlarging. Bilinear shrinking would sample the layer's fine structure
    (spatter's embossed rims, snowflakes) without averaging it: at 64 px spatter came out
    up to 1.5x stronger than the same spatter at 224 px resized."""
    h, w = shape[:2]
    if layer.shape[:2] == (h, w):
        return layer
    shrink = layer.shape[0] > h or layer.shape[1] > w
    return cv2.resize(layer, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
