"""ImageNet-C common corruptions (Hendrycks & Dietterich, ICLR 2019): noise, blur, digital.

Names are ``cc_`` + the function name in imagecorruptions 1.1.2 (``cc_gaussian_noise``,
``cc_defocus_blur``, ...): no collision with the photometric ``gaussian_noise`` /
``gaussian_blur``, no quoting in YAML or on the command line. ``TABLE[level - 1]`` is that
function's constant ``c`` in imagecorruptions 1.1.2 ``corruptions.py``; level 0 is the
identity. The corruptions built from random spatial fields (snow, frost, fog, spatter,
elastic) are in :mod:`shiftbench.transforms.corruptions_weather`; docs/corruptions.md has
the tables, the size scaling and every departure from the reference.

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

import math
from typing import Any, ClassVar

import cv2
import numpy as np
from PIL import Image

from shiftbench.transforms.base import Perturbation
from shiftbench.transforms.registry import register

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


# --------------------------------------------------------------------------- noise


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


# --------------------------------------------------------------------------- blur


@register("cc_gaussian_blur")
class CCGaussianBlur(Corruption):
    """Gaussian blur of sigma ``c * s`` px (truncated at 4 sigma, edges replicated).
    Table: imagecorruptions 1.1.2 ``gaussian_blur`` c = [1, 2, 3, 4, 6]."""

    RANDOM = False
    TABLE = (1, 2, 3, 4, 6)

    def corrupt(self, image, c):
        return to_uint8(gaussian(_unit(image), c * size_scale(image.shape)))


@register("cc_glass_blur")
class CCGlassBlur(Corruption):
    """Blur (sigma), locally shuffle pixels (max_delta, iterations), blur again.

    The reference swaps every interior pixel with a random neighbour at offset
    U{-d, ..., d - 1}, one pixel at a time in Python, in reverse raster order, so a pixel
    can be carried along several swaps. Here each iteration is two vectorised gathers:
    every pixel takes the value at its own random offset U{-d, ..., d - 1}, then at a second
    offset U{-(d - 1), ..., d - 2} (none when d = 1) standing in for the chained swaps —
    calibrated on SSIM against the reference (within 0.06 at 224 px), not the same
    permutation. Edges are clamped. ``sigma`` scales with ``s``; the integer offsets are
    drawn at 224 px, multiplied by ``s`` and rounded stochastically per pixel (floor of
    offset * s + U[0, 1)), so the mean reach scales even below one pixel.
    Table: imagecorruptions 1.1.2 ``glass_blur`` (sigma, max_delta, iterations) =
    [(0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)]."""

    TABLE = ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2))

    def corrupt(self, image, c, *, seed):
        s = size_scale(image.shape)
        sigma, delta, iterations = c[0] * s, int(c[1]), int(c[2])
        x = to_uint8(gaussian(_unit(image), sigma))
        h, w = x.shape[:2]
        rng = np.random.default_rng(seed)
        ys = np.arange(h, dtype=np.int32)[:, None]
        xs = np.arange(w, dtype=np.int32)[None, :]
        for _ in range(iterations):
            for reach in (delta, delta - 1):  # second, shorter hop: the chained swaps
                if reach < 1:
                    continue
                off = rng.integers(-reach, reach, size=(2, h, w), dtype=np.int8)
                if s != 1:  # offsets drawn at 224 px, scaled, rounded stochastically
                    frac = rng.random((2, h, w), dtype=np.float32)
                    off = np.floor(off * np.float32(s) + frac).astype(np.int32)
                src_y = np.clip(ys + off[0], 0, h - 1)
                src_x = np.clip(xs + off[1], 0, w - 1)
                x = x.reshape(h * w, -1)[src_y * w + src_x].reshape(image.shape)
        return to_uint8(gaussian(_unit(x), sigma))


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


# --------------------------------------------------------------------------- digital


@register("cc_brightness")
class CCBrightness(Corruption):
    """HSV value + c, clipped to 1. Hue and saturation fixed means every channel scales by
    ``v' / v`` (a black pixel becomes grey ``c``): the HSV round trip without it.
    Table: imagecorruptions 1.1.2 ``brightness`` c = [.1, .2, .3, .4, .5]."""

    RANDOM = False
    TABLE = (0.1, 0.2, 0.3, 0.4, 0.5)

    def corrupt(self, image, c):
        x = _unit(image)
        v = x.max(axis=2, keepdims=True)
        v_new = np.minimum(v + np.float32(c), 1.0)
        ratio = np.divide(v_new, v, out=np.zeros_like(v), where=v > 0)
        out = x * ratio
        np.copyto(out, np.broadcast_to(v_new, out.shape), where=np.broadcast_to(v == 0, out.shape))
        return to_uint8(out)


@register("cc_contrast")
class CCContrast(Corruption):
    """``(x - mean) * c + mean`` with the per-channel image mean.
    Table: imagecorruptions 1.1.2 ``contrast`` c = [.4, .3, .2, .1, .05]."""

    RANDOM = False
    TABLE = (0.4, 0.3, 0.2, 0.1, 0.05)

    def corrupt(self, image, c):
        x = _unit(image)
        mean = x.mean(axis=(0, 1), keepdims=True, dtype=np.float64).astype(np.float32)
        return to_uint8((x - mean) * np.float32(c) + mean)


@register("cc_saturate")
class CCSaturate(Corruption):
    """HSV saturation ``s * c0 + c1``, clipped. With hue and value fixed each channel is
    ``v - (v - x) * s' / s``; grey pixels (hue 0 in skimage) become ``(v, v(1-s'), v(1-s'))``.
    Table: imagecorruptions 1.1.2 ``saturate`` (c0, c1) =
    [(0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2)] (level 3 raises saturation: the
    table is not ordered by damage, see docs/corruptions.md)."""

    RANDOM = False
    TABLE = ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (20, 0.2))

    def corrupt(self, image, c):
        x = _unit(image)
        v = x.max(axis=2, keepdims=True)
        sat = np.divide(v - x.min(axis=2, keepdims=True), v, out=np.zeros_like(v), where=v > 0)
        sat_new = np.clip(sat * np.float32(c[0]) + np.float32(c[1]), 0, 1)
        ratio = np.divide(sat_new, sat, out=np.zeros_like(sat), where=sat > 0)
        out = v - (v - x) * ratio
        grey = np.concatenate([v, v * (1 - sat_new), v * (1 - sat_new)], axis=2)
        np.copyto(out, grey, where=np.broadcast_to(sat == 0, out.shape))
        return to_uint8(out)


@register("cc_jpeg_compression")
class CCJpegCompression(Corruption):
    """JPEG encode/decode at quality c (libjpeg through OpenCV, 4:2:0 chroma).
    Table: imagecorruptions 1.1.2 ``jpeg_compression`` c = [25, 18, 15, 10, 7]."""

    RANDOM = False
    TABLE = (25, 18, 15, 10, 7)

    def corrupt(self, image, c):
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(c)])
        return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@register("cc_pixelate")
class CCPixelate(Corruption):
    """Box-downsample to ``int(side * c)`` and nearest-upsample back: Pillow's BOX as the
    reference (OpenCV's INTER_AREA differs at non-integer factors), then OpenCV's
    ``INTER_NEAREST_EXACT`` (identical to Pillow's NEAREST, faster).
    Relative: nothing scales with size.
    Table: imagecorruptions 1.1.2 ``pixelate`` c = [0.6, 0.5, 0.4, 0.3, 0.25]."""

    RANDOM = False
    TABLE = (0.6, 0.5, 0.4, 0.3, 0.25)

    def corrupt(self, image, c):
        h, w = image.shape[:2]
        size = (max(1, int(w * c)), max(1, int(h * c)))
        small = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BOX))
        # INTER_NEAREST_EXACT samples pixel centres as PIL's NEAREST: the same bytes
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST_EXACT)
