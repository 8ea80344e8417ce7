"""Photometric perturbations (image only): colour jitter, Gaussian blur, Gaussian noise.

The operations are albumentations' functional ones (the ``*_torchvision`` colour
adjustments, ``separable_convolve``, ``add_noise``) called with params we sampled
ourselves; masks are never touched.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, ClassVar

import cv2
import numpy as np
from albumentations.augmentations.blur import functional as fblur
from albumentations.augmentations.pixel import functional as fpixel
from scipy.special import ndtri

from shiftbench.transforms.base import Perturbation
from shiftbench.transforms.registry import register


@register("color_jitter")
class ColorJitter(Perturbation):
    """Brightness, contrast and saturation factors, each U[1 - d, 1 + d], applied in that
    order with torchvision's definitions (level 3: d = 0.3, the proposal's U[0.7, 1.3])."""

    family: ClassVar[str] = "photometric"
    SPREAD: ClassVar[tuple[float, ...]] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)

    def sample_params(self, rng: np.random.Generator, shape: tuple[int, ...]) -> dict[str, Any]:
        d = self.SPREAD[self.severity]
        if not d:
            return {"brightness": 1.0, "contrast": 1.0, "saturation": 1.0}
        b, c, s = rng.uniform(1.0 - d, 1.0 + d, size=3)
        return {"brightness": float(b), "contrast": float(c), "saturation": float(s)}

    def apply(
        self, image: np.ndarray, *, brightness: float, contrast: float, saturation: float
    ) -> np.ndarray:
        out = fpixel.adjust_brightness_torchvision(image, brightness)
        out = fpixel.adjust_contrast_torchvision(out, contrast)
        out = fpixel.adjust_saturation_torchvision(out, saturation)
        return out.copy() if out is image else out


@register("gaussian_blur")
class GaussianBlur(Perturbation):
    """Gaussian blur with an odd ``kernel`` drawn from :attr:`KERNELS` and OpenCV's sigma for
    that kernel, ``0.3 * ((k - 1) / 2 - 1) + 0.8`` (level 3: kernel 3 or 5, the proposal).
    Level 1 uses kernel 3 with a lighter sigma so that every level blurs more than the last."""

    family: ClassVar[str] = "photometric"
    KERNELS: ClassVar[tuple[tuple[int, ...], ...]] = ((), (3,), (3,), (3, 5), (5, 7), (7, 9))
    SIGMA_SCALE: ClassVar[tuple[float, ...]] = (0.0, 0.6, 1.0, 1.0, 1.0, 1.0)

    def sample_params(self, rng: np.random.Generator, shape: tuple[int, ...]) -> dict[str, Any]:
        kernels = self.KERNELS[self.severity]
        if not kernels:
            return {"kernel": 1, "sigma": 0.0}
        k = int(kernels[int(rng.integers(len(kernels)))])
        sigma = (0.3 * ((k - 1) * 0.5 - 1) + 0.8) * self.SIGMA_SCALE[self.severity]
        return {"kernel": k, "sigma": float(sigma)}

    def apply(self, image: np.ndarray, *, kernel: int, sigma: float) -> np.ndarray:
        if kernel <= 1 or sigma <= 0:
            return image.copy()
        return fpixel.separable_convolve(image, fblur.create_gaussian_kernel_1d(sigma, kernel))


@lru_cache(maxsize=1)
def _gaussian_quantiles() -> np.ndarray:
    """Standard-normal quantiles at the 65536 midpoints ``(i + 0.5) / 65536``."""
    return ndtri((np.arange(65536, dtype=np.float64) + 0.5) / 65536.0)


def _noise_table(sigma_255: float) -> np.ndarray:
    """Rounded Gaussian quantiles, ``int16 [65536]``: indexing it with uniform 16-bit
    integers samples N(0, sigma) already rounded to whole grey levels."""
    return np.round(_gaussian_quantiles() * sigma_255).astype(np.int16)


@register("gaussian_noise")
class GaussianNoise(Perturbation):
    """Additive Gaussian noise, independent per pixel and channel, with ``sigma`` on a
    [0, 1] image (level 3: U[0.01, 0.05], the proposal).

    The noise field comes from ``noise_seed`` (drawn from the image's generator and
    recorded), so ``apply`` stays a pure function of the params. It is drawn by inverse
    CDF from 16-bit uniforms: because the image is integer, adding the rounded noise gives
    exactly the same bytes as rounding after adding, and it is ~3x faster than
    ``standard_normal`` on a 1024 px image. Tails are cut at 4.3 sigma.
    """

    family: ClassVar[str] = "photometric"
    SIGMA_RANGE: ClassVar[tuple[tuple[float, float], ...]] = (
        (0.0, 0.0),
        (0.003, 0.017),
        (0.006, 0.033),
        (0.01, 0.05),
        (0.02, 0.08),
        (0.03, 0.12),
    )

    def sample_params(self, rng: np.random.Generator, shape: tuple[int, ...]) -> dict[str, Any]:
        lo, hi = self.SIGMA_RANGE[self.severity]
        if not hi:
            return {"sigma": 0.0, "noise_seed": 0}
        return {"sigma": float(rng.uniform(lo, hi)), "noise_seed": int(rng.integers(2**63))}

    def apply(self, image: np.ndarray, *, sigma: float, noise_seed: int) -> np.ndarray:
        if sigma <= 0:
            return image.copy()
        index = np.random.default_rng(noise_seed).integers(
            0, 65536, size=image.shape, dtype=np.uint16
        )
        if image.size >= 65536:
            noise = _noise_table(sigma * 255.0)[index]  # fancy indexing: ~1.6x faster than take
        else:  # fewer pixels than table entries: round just the ones drawn (the same values)
            noise = np.round(_gaussian_quantiles()[index] * (sigma * 255.0)).astype(np.int16)
        if image.dtype == np.uint8:
            # saturating uint8 + int16 -> uint8 in one pass
            return cv2.add(image, noise, dtype=cv2.CV_8U)
        return fpixel.add_noise(image, noise.astype(np.float32) / 255.0)
