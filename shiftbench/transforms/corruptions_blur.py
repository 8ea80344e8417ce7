"""ImageNet-C blur corruptions: Gaussian, defocus, motion and zoom blur (glass blur is in
:mod:`.corruptions_glass`), and the kernels they share with the weather layers
(:func:`motion_blur`, :func:`clipped_zoom`)."""

from __future__ import annotations

import math

import cv2
import numpy as np

from shiftbench.transforms.corruptions_common import (
    Corruption,
    _unit,
    gaussian,
    size_scale,
    to_uint8,
)
from shiftbench.transforms.registry import register


def motion_kernel(radius: int, sigma: float, angle: float) -> tuple[np.ndarray, tuple[int, int]]:
    """The reference's ``_motion_blur`` as one correlation kernel and its anchor.

    The reference adds ``width = 2 * radius + 1`` edge-replicated shifts of the image,
    weighted by a one-sided Gaussian of ``sigma``, along ``angle`` (degrees); the same sum
    is the correlation with this sparse kernel and ``BORDER_REPLICATE``.
    """
    width = 2 * int(radius) + 1
    weights = np.exp(-(np.arange(width, dtype=np.float64) ** 2) / (2 * sigma**2))
    weights /= weights.sum()
    i = np.arange(width)
    dy = -np.ceil(i * math.sin(math.radians(angle)) - 0.5).astype(int)
    dx = -np.ceil(i * math.cos(math.radians(angle)) - 0.5).astype(int)
    # out[y, x] = sum_i w_i * in[y - dy_i, x - dx_i]
    oy, ox = -dy, -dx
    kernel = np.zeros((oy.max() - oy.min() + 1, ox.max() - ox.min() + 1), np.float32)
    np.add.at(kernel, (oy - oy.min(), ox - ox.min()), weights.astype(np.float32))
    return kernel, (int(-ox.min()), int(-oy.min()))


#: Longest streak (taps) done as one sparse 2-D kernel; longer ones use :func:`_sheared_blur`.
EXACT_MOTION_TAPS = 64


def motion_blur(x: np.ndarray, radius: int, sigma: float, angle: float) -> np.ndarray:
    """Float32 motion blur of ``x`` (any dtype in, float32 out, reference scale).

    Up to :data:`EXACT_MOTION_TAPS` taps (every image up to ~400 px, and the 224-grid
    weather layers) this is exactly the reference's sum, one ``cv2.scaleAdd`` per tap on
    an edge-padded float copy (a dense ``filter2D`` of the sparse kernel is ~4x slower);
    longer streaks at ``|angle| <= 45`` go through :func:`_sheared_blur` (same weights,
    +-1 px rounding of the path).
    """
    if 2 * int(radius) + 1 > EXACT_MOTION_TAPS and abs(angle) <= 45:
        return _sheared_blur(x, radius, sigma, angle)
    kernel, (ax, ay) = motion_kernel(radius, sigma, angle)
    kh, kw = kernel.shape
    padded = cv2.copyMakeBorder(x, ay, kh - 1 - ay, ax, kw - 1 - ax, cv2.BORDER_REPLICATE)
    padded = padded.astype(np.float32)
    h, w = x.shape[:2]
    out = np.zeros(padded[:h, :w].shape, np.float32)
    for v, u in zip(*np.nonzero(kernel), strict=True):
        cv2.scaleAdd(padded[v : v + h, u : u + w], float(kernel[v, u]), out, dst=out)
    return out


def _sheared_blur(x: np.ndarray, radius: int, sigma: float, angle: float) -> np.ndarray:
    """The streak as a 1-D filter: shift column ``u`` by ``round(u * tan(angle))`` rows
    (integer shifts, no resampling) so the path becomes a row, blur the rows with the
    Gaussian weights at the path lengths ``j / cos(angle)``, shift back. One separable
    pass instead of a large 2-D kernel (~3x faster at 1024 px)."""
    h, w = x.shape[:2]
    t, cos = math.tan(math.radians(angle)), math.cos(math.radians(angle))
    width = 2 * int(radius) + 1
    dist = np.arange(math.ceil(width * cos), dtype=np.float64) / cos
    taps = np.exp(-(dist**2) / (2 * sigma**2))
    taps = (taps / taps.sum()).astype(np.float32)
    shift = np.rint(np.arange(w) * t).astype(np.float32)[None, :]
    top = -int(shift.max())
    rows = np.arange(top, h - int(shift.min()), dtype=np.float32)[:, None]
    cols = np.arange(w, dtype=np.float32)[None, :]
    nearest, edge = cv2.INTER_NEAREST, cv2.BORDER_REPLICATE
    map_y = rows + shift
    sheared = cv2.remap(x, np.broadcast_to(cols, map_y.shape), map_y, nearest, borderMode=edge)
    blurred = cv2.sepFilter2D(
        sheared,
        cv2.CV_32F,
        taps,
        np.ones(1, np.float32),
        anchor=(0, 0),
        borderType=cv2.BORDER_REPLICATE,
    )
    map_y = np.arange(h, dtype=np.float32)[:, None] - shift - np.float32(top)
    return cv2.remap(blurred, np.broadcast_to(cols, map_y.shape), map_y, nearest, borderMode=edge)


def clipped_zoom(x: np.ndarray, factor: float) -> np.ndarray:
    """The reference's ``clipped_zoom`` (central crop of ``ceil(n / factor)``, scipy ``zoom``
    order 1, top-left ``n`` kept) as one ``cv2.warpAffine``: the crop's pixel ``i`` lands at
    ``i * (round(m * factor) - 1) / (m - 1)``, exactly scipy's corner-aligned grid."""
    h, w = x.shape[:2]
    ch, cw = math.ceil(h / factor), math.ceil(w / factor)
    top, left = (h - ch) // 2, (w - cw) // 2
    ay = (ch - 1) / max(round(ch * factor) - 1, 1)
    ax = (cw - 1) / max(round(cw * factor) - 1, 1)
    inverse = np.array([[ax, 0.0, left], [0.0, ay, top]], np.float64)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    return cv2.warpAffine(x, inverse, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)


@register("cc_gaussian_blur")
class CCGaussianBlur(Corruption):
    """Gaussian blur of sigma ``c * s`` px (truncated at 4 sigma, edges replicated).
    Table: imagecorruptions 1.1.2 ``gaussian_blur`` c = [1, 2, 3, 4, 6]."""

    RANDOM = False
    TABLE = (1, 2, 3, 4, 6)

    def corrupt(self, image, c):
        return to_uint8(gaussian(_unit(image), c * size_scale(image.shape)))


def disk_kernel(radius: float, alias_blur: float, s: float = 1.0) -> np.ndarray:
    """The reference's ``disk``: a normalised aliased disk (on a 17 x 17 grid up to radius
    8, else ``2r + 1``) smoothed by a 3 x 3 (5 x 5) Gaussian of ``alias_blur``; radius,
    grid and smoothing scaled by ``s``."""
    r = radius * s
    half = math.ceil(8 * s) if radius <= 8 else math.ceil(r)
    grid = np.arange(-half, half + 1, dtype=np.float32)
    disk = (grid[None, :] ** 2 + grid[:, None] ** 2 <= r**2).astype(np.float32)
    disk /= disk.sum()
    k = 2 * max(1, round((1 if radius <= 8 else 2) * s)) + 1
    kernel = cv2.GaussianBlur(disk, (k, k), sigmaX=alias_blur * s)
    # drop the all-zero margin (symmetric, centre kept): a smaller kernel filters faster
    rows = np.nonzero(kernel.max(axis=1) > 0)[0]
    m = min(int(rows[0]), kernel.shape[0] - 1 - int(rows[-1]))
    return kernel[m : kernel.shape[0] - m, m : kernel.shape[1] - m]


@register("cc_defocus_blur")
class CCDefocusBlur(Corruption):
    """Convolution with an anti-aliased disk (the out-of-focus point spread function).
    Table: imagecorruptions 1.1.2 ``defocus_blur`` (radius, alias_blur) =
    [(3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5)]; both scale with ``s``."""

    RANDOM = False
    TABLE = ((3, 0.1), (4, 0.5), (6, 0.5), (8, 0.5), (10, 0.5))

    def corrupt(self, image, c):
        kernel = disk_kernel(c[0], c[1], size_scale(image.shape))
        return to_uint8(cv2.filter2D(_unit(image), -1, kernel))


@register("cc_motion_blur")
class CCMotionBlur(Corruption):
    """Linear camera motion: a one-sided Gaussian-weighted streak of ``2 * radius + 1``
    taps along ``angle`` ~ U[-45, 45] degrees, as one sparse ``filter2D`` (see
    :func:`motion_kernel`). Radius and sigma scale with ``s``.
    Table: imagecorruptions 1.1.2 ``motion_blur`` (radius, sigma) =
    [(10, 3), (15, 5), (15, 8), (15, 12), (20, 15)]."""

    RANDOM = False
    TABLE = ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15))

    def draw(self, rng):
        return {"angle": float(rng.uniform(-45, 45))}

    def corrupt(self, image, c, *, angle):
        s = size_scale(image.shape)
        out = motion_blur(image, max(1, round(c[0] * s)), max(c[1] * s, 1e-3), angle)
        np.clip(out, 0, 255, out=out)
        return out.astype(np.uint8)


@register("cc_zoom_blur")
class CCZoomBlur(Corruption):
    """Mean of the image and its centre zooms by each factor of the level (radial blur of
    a camera zooming during exposure); zooms are relative, so nothing scales with size.
    Each zoom is one uint8 ``warpAffine`` (see :func:`clipped_zoom`), summed in integers.
    Table: imagecorruptions 1.1.2 ``zoom_blur`` = arange(1, 1.11, .01), arange(1, 1.16,
    .01), arange(1, 1.21, .02), arange(1, 1.26, .02), arange(1, 1.31, .03)."""

    RANDOM = False
    TABLE = ((1.11, 0.01), (1.16, 0.01), (1.21, 0.02), (1.26, 0.02), (1.31, 0.03))

    def corrupt(self, image, c):
        factors = np.arange(1, c[0], c[1])
        total = image.astype(np.uint16)
        for factor in factors:
            total += clipped_zoom(image, float(factor))
        # mean of the zooms in [0, 1], then the reference's truncation
        return (total.astype(np.float32) / np.float32(len(factors) + 1)).astype(np.uint8)
