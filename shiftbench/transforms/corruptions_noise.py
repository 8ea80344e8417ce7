"""ImageNet-C noise corruptions: Gaussian, shot (Poisson), impulse (salt-and-pepper) and
speckle noise, drawn per pixel and channel from the image's seeded generator."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from shiftbench.transforms.corruptions_common import Corruption, _unit, to_uint8
from shiftbench.transforms.registry import register


@register("cc_gaussian_noise")
class CCGaussianNoise(Corruption):
    """Additive N(0, c) per pixel and channel on the [0, 1] image.
    Table: imagecorruptions 1.1.2 ``gaussian_noise`` c = [.08, .12, .18, .26, .38]."""

    family: ClassVar[str] = "sensor"
    TABLE = (0.08, 0.12, 0.18, 0.26, 0.38)

    def corrupt(self, image, c, *, seed):
        noise = np.random.default_rng(seed).standard_normal(image.shape, dtype=np.float32)
        return to_uint8(_unit(image) + noise * np.float32(c))


@register("cc_shot_noise")
class CCShotNoise(Corruption):
    """Photon (Poisson) noise: ``Poisson(x * c) / c``, ``c`` photons at full scale.
    Table: imagecorruptions 1.1.2 ``shot_noise`` c = [60, 25, 12, 5, 3]."""

    family: ClassVar[str] = "sensor"
    TABLE = (60, 25, 12, 5, 3)

    def corrupt(self, image, c, *, seed):
        counts = np.random.default_rng(seed).poisson(_unit(image) * np.float32(c))
        return to_uint8(counts.astype(np.float32) / np.float32(c))


@register("cc_impulse_noise")
class CCImpulseNoise(Corruption):
    """Salt-and-pepper: each pixel and channel replaced with probability c, half by 0 and
    half by 1 (skimage ``random_noise(mode='s&p')``).
    Table: imagecorruptions 1.1.2 ``impulse_noise`` c = [.03, .06, .09, .17, .27]."""

    family: ClassVar[str] = "sensor"
    TABLE = (0.03, 0.06, 0.09, 0.17, 0.27)

    def corrupt(self, image, c, *, seed):
        u = np.random.default_rng(seed).random(image.shape, dtype=np.float32)
        out = image.copy()
        out[u < c * 0.5] = 0
        out[(u >= c * 0.5) & (u < c)] = 255
        return out


@register("cc_speckle_noise")
class CCSpeckleNoise(Corruption):
    """Multiplicative noise ``x + x * N(0, c)``.
    Table: imagecorruptions 1.1.2 ``speckle_noise`` c = [.15, .2, .35, .45, .6]."""

    family: ClassVar[str] = "sensor"
    TABLE = (0.15, 0.2, 0.35, 0.45, 0.6)

    def corrupt(self, image, c, *, seed):
        x = _unit(image)
        noise = np.random.default_rng(seed).standard_normal(image.shape, dtype=np.float32)
        return to_uint8(x + x * noise * np.float32(c))
