"""ImageNet-C common corruptions (Hendrycks & Dietterich, ICLR 2019): noise, blur, digital.

Names are ``cc_`` + the function name in imagecorruptions 1.1.2 (``cc_gaussian_noise``,
``cc_defocus_blur``, ...): no collision with the photometric ``gaussian_noise`` /
``gaussian_blur``, no quoting in YAML or on the command line. ``TABLE[level - 1]`` is that
function's constant ``c`` in imagecorruptions 1.1.2 ``corruptions.py``; level 0 is the
identity. The corruptions built from random spatial fields (snow, frost, fog, spatter,
elastic) are in :mod:`shiftbench.transforms.corruptions_weather`; docs/corruptions.md has
the tables, the size scaling and every departure from the reference.

This module is the catalogue's front door: the classes live by family in
:mod:`.corruptions_noise`, :mod:`.corruptions_blur`, :mod:`.corruptions_glass` and
:mod:`.corruptions_digital` (shared
parts in :mod:`.corruptions_common`); importing it registers them all, and every public
name stays importable from here.

Size: with ``s = min(H, W) / 224`` (the tables' crop size), lengths in pixels are
multiplied by ``s``; relative quantities (zoom, pixelate factor, JPEG quality, intensities)
are not; random fields are drawn on the 224-px-equivalent grid and resized to the image.
Randomness: ``sample_params`` draws a ``seed`` (and scalars such as the motion angle) in the
same order at every level; ``apply`` regenerates the fields from it. Outputs are quantised
as the reference's (``np.uint8`` of the clipped float image: truncation). ``family`` keeps
its engine meaning (only ``cc_elastic_transform`` is ``geometric``: it moves the mask); the
catalogue group is ``catalogue = "corruption"``.
"""

from __future__ import annotations

from shiftbench.transforms.corruptions_blur import (
    EXACT_MOTION_TAPS,
    CCDefocusBlur,
    CCGaussianBlur,
    CCMotionBlur,
    CCZoomBlur,
    clipped_zoom,
    disk_kernel,
    motion_blur,
    motion_kernel,
)
from shiftbench.transforms.corruptions_blur import (
    _sheared_blur as _sheared_blur,
)
from shiftbench.transforms.corruptions_common import (
    REFERENCE_SIDE,
    Corruption,
    CorruptionMixin,
    gaussian,
    reference_grid,
    size_scale,
    to_uint8,
)
from shiftbench.transforms.corruptions_common import (
    _unit as _unit,
)
from shiftbench.transforms.corruptions_digital import (
    CCBrightness,
    CCContrast,
    CCJpegCompression,
    CCPixelate,
    CCSaturate,
)
from shiftbench.transforms.corruptions_glass import CCGlassBlur
from shiftbench.transforms.corruptions_noise import (
    CCGaussianNoise,
    CCImpulseNoise,
    CCShotNoise,
    CCSpeckleNoise,
)

__all__ = [
    "EXACT_MOTION_TAPS",
    "REFERENCE_SIDE",
    "CCBrightness",
    "CCContrast",
    "CCDefocusBlur",
    "CCGaussianBlur",
    "CCGaussianNoise",
    "CCGlassBlur",
    "CCImpulseNoise",
    "CCJpegCompression",
    "CCMotionBlur",
    "CCPixelate",
    "CCSaturate",
    "CCShotNoise",
    "CCSpeckleNoise",
    "CCZoomBlur",
    "Corruption",
    "CorruptionMixin",
    "clipped_zoom",
    "disk_kernel",
    "gaussian",
    "motion_blur",
    "motion_kernel",
    "reference_grid",
    "size_scale",
    "to_uint8",
]
