"""Acquisition shifts: what changes when the inspection camera, lens or set-up changes.

Names are ``acq_`` + the effect (``acq_exposure``, ``acq_white_balance``, ``acq_vignetting``,
``acq_sensor_noise``, ``acq_hot_pixels``, ``acq_chromatic_aberration``,
``acq_lens_distortion``, ``acq_camera_tilt``, ``acq_working_distance``); JPEG and motion
blur come from the corruption catalogue (``cc_jpeg_compression``, ``cc_motion_blur``).
Each class states its physical model and its level table (levels 1-5; 0 is the identity).

Conventions: images are sRGB; photometric models act on linear light (the sRGB transfer
curve, IEC 61966-2-1) and re-encode; per-value maps are applied as lookup tables. Signed
effects (brighter/darker, warmer/cooler, barrel/pincushion, nearer/farther) draw the sign
per image; every ``sample_params`` draws the same variables in the same order at every
level, so the levels of one image differ only by the table. Geometric ones (lens
distortion, tilt, working distance) move the mask with the same map, nearest-neighbour,
borders reflected. ``family`` keeps its engine meaning (mask moves only for
``geometric``); the catalogue group is ``catalogue = "acquisition"``.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import ClassVar

import cv2
import numpy as np

from shiftbench.transforms.base import GeometricPerturbation, Perturbation
from shiftbench.transforms.geometric import AffinePerturbation
from shiftbench.transforms.registry import register


@lru_cache(maxsize=1)
def _decode_lut() -> np.ndarray:
    """sRGB code value (0-255) -> linear light in [0, 1], float32 [256]."""
    v = np.arange(256, dtype=np.float64) / 255
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4).astype(np.float32)


def encode(linear: np.ndarray) -> np.ndarray:
    """Linear light (any float array) -> sRGB code values, float64, clipped to [0, 255]."""
    x = np.clip(linear, 0.0, 1.0)
    return 255 * np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


@lru_cache(maxsize=1)
def _encode_lut() -> np.ndarray:
    """Linear light quantised to 16 bits -> rounded sRGB ``uint8`` [65536]."""
    return np.round(encode(np.arange(65536) / 65535)).astype(np.uint8)


def encode_u8(linear: np.ndarray) -> np.ndarray:
    """Linear light (float32 array) -> sRGB ``uint8`` through a 16-bit lookup table."""
    idx = np.clip(linear, 0, 1) * np.float32(65535) + np.float32(0.5)
    return _encode_lut()[idx.astype(np.uint16)]


class AcquisitionMixin:
    """Level table and sign drawing shared by the acquisition shifts."""

    catalogue: ClassVar[str] = "acquisition"
    #: Magnitude at levels 0-5.
    LEVELS: ClassVar[tuple[float, ...]]

    @property
    def magnitude(self) -> float:
        return float(self.LEVELS[self.severity])


def _sign(rng: np.random.Generator) -> float:
    return 1.0 if rng.random() < 0.5 else -1.0


@register("acq_exposure")
class AcqExposure(AcquisitionMixin, Perturbation):
    """Exposure error of ``ev`` stops and a tone-curve (gamma) change pushing the same way.

    Linear radiance is multiplied by ``2 ** ev`` (shutter/aperture/gain off by ``ev``
    stops), clipped at sensor saturation, re-encoded to sRGB; then the encoded value is
    raised to ``gamma`` (a camera tone curve: ``< 1`` brightens). Level ``L``: ``|ev|`` =
    LEVELS[L] and ``gamma = (1 + GAMMA[L]) ** -sign(ev)``; the sign is drawn per image.
    """

    family: ClassVar[str] = "photometric"
    LEVELS = (0.0, 0.33, 0.67, 1.0, 1.5, 2.0)
    GAMMA: ClassVar[tuple[float, ...]] = (0.0, 0.05, 0.1, 0.15, 0.22, 0.3)

    def sample_params(self, rng, shape):
        sign = _sign(rng)
        return {
            "ev": sign * self.magnitude,
            "gamma": (1 + self.GAMMA[self.severity]) ** -sign,
        }

    def apply(self, image, *, ev, gamma):
        if ev == 0 and gamma == 1:
            return image.copy()
        code = encode(_decode_lut().astype(np.float64) * 2.0**ev) / 255
        lut = np.round(255 * code**gamma).astype(np.uint8)
        return cv2.LUT(image, lut)


# Kim et al. (2002) cubic fit of the Planckian locus in CIE 1931 xy, 1667-25000 K.
def planckian_xy(kelvin: float) -> tuple[float, float]:
    """Chromaticity ``(x, y)`` of a black body at ``kelvin`` (Kim et al. 2002 fit)."""
    t = float(kelvin)
    if t <= 4000:
        x = -0.2661239e9 / t**3 - 0.2343589e6 / t**2 + 0.8776956e3 / t + 0.179910
    else:
        x = -3.0258469e9 / t**3 + 2.1070379e6 / t**2 + 0.2226347e3 / t + 0.240390
    if t <= 2222:
        y = -1.1063814 * x**3 - 1.34811020 * x**2 + 2.18555832 * x - 0.20219683
    elif t <= 4000:
        y = -0.9549476 * x**3 - 1.37418593 * x**2 + 2.09137015 * x - 0.16748867
    else:
        y = 3.0817580 * x**3 - 5.87338670 * x**2 + 3.75112997 * x - 0.37001483
    return x, y


_XYZ_TO_SRGB = np.array(
    [[3.2406, -1.5372, -0.4986], [-0.9689, 1.8758, 0.0415], [0.0557, -0.2040, 1.0570]]
)


def white_rgb(kelvin: float) -> np.ndarray:
    """Linear sRGB of a black body at ``kelvin`` (luminance Y = 1)."""
    x, y = planckian_xy(kelvin)
    return _XYZ_TO_SRGB @ np.array([x / y, 1.0, (1 - x - y) / y])


@register("acq_white_balance")
class AcqWhiteBalance(AcquisitionMixin, Perturbation):
    """Colour temperature shift: the camera is white-balanced for a 6500 K illuminant but the
    scene is lit by a black body at ``kelvin``.

    Each linear channel is multiplied by ``white(kelvin) / white(6500)`` (the black body's
    linear sRGB, from the Kim et al. 2002 Planckian-locus fit and the sRGB matrix),
    normalised so green keeps its gain (von Kries), then re-encoded. The shift is uniform
    in mired (1e6 / K): LEVELS mired warmer, or 0.6x that cooler (sign per image), e.g.
    level 3 gives 4300 K or 9400 K, level 5 3190 K or 17300 K.
    """

    family: ClassVar[str] = "photometric"
    REFERENCE_K: ClassVar[float] = 6500.0
    LEVELS = (0.0, 20.0, 40.0, 80.0, 120.0, 160.0)

    def sample_params(self, rng, shape):
        sign = _sign(rng)
        if not self.magnitude:
            return {"kelvin": self.REFERENCE_K}
        shift = self.magnitude * (1.0 if sign > 0 else -0.6)
        return {"kelvin": 1e6 / (1e6 / self.REFERENCE_K + shift)}

    def apply(self, image, *, kelvin):
        if kelvin == self.REFERENCE_K:
            return image.copy()
        gains = white_rgb(kelvin) / white_rgb(self.REFERENCE_K)
        gains /= gains[1]
        lin = _decode_lut().astype(np.float64)[:, None] * gains[None, :]
        lut = np.round(encode(lin)).astype(np.uint8)  # [256, 3]
        return cv2.LUT(image, lut.reshape(1, 256, 3))


@register("acq_vignetting")
class AcqVignetting(AcquisitionMixin, Perturbation):
    """Natural vignetting, the cos^4 law: a point at field angle theta gets
    ``cos(theta) ** 4`` of the axial irradiance, ``tan(theta) = r / f`` with ``r`` the
    distance to the optical centre (jittered by up to 3% of the size) over the half
    diagonal. ``f`` is set so that the corner gain (linear light) is ``1 - LEVELS[L]``
    (level 3: 45% light lost in the corners). Applied to the encoded image as
    ``gain ** (1 / 2.2)`` (exact for a pure 2.2 gamma); the smooth map is built at <= 128 px
    and resized.
    """

    family: ClassVar[str] = "illumination"
    LEVELS = (0.0, 0.15, 0.3, 0.45, 0.6, 0.7)

    def sample_params(self, rng, shape):
        cx, cy = rng.uniform(-0.03, 0.03, size=2)
        return {"corner_loss": self.magnitude, "cx": float(cx), "cy": float(cy)}

    def apply(self, image, *, corner_loss, cx, cy):
        if corner_loss <= 0:
            return image.copy()
        h, w = image.shape[:2]
        focal = 1 / math.sqrt((1 - corner_loss) ** -0.5 - 1)
        scale = min(1.0, 128 / max(h, w))
        mh, mw = max(2, round(h * scale)), max(2, round(w * scale))
        ys = ((np.arange(mh) + 0.5) / mh - 0.5 - cy) * h
        xs = ((np.arange(mw) + 0.5) / mw - 0.5 - cx) * w
        r = np.hypot(xs[None, :], ys[:, None]) / (0.5 * math.hypot(h, w))
        gain = ((1 + (r / focal) ** 2) ** -2) ** (1 / 2.2)
        gain = cv2.resize(gain.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        return cv2.multiply(image, cv2.merge([gain] * image.shape[2]), dtype=cv2.CV_8U)


@register("acq_sensor_noise")
class AcqSensorNoise(AcquisitionMixin, Perturbation):
    """Poisson-Gaussian sensor noise (Foi et al. 2008) on linear raw values ``x``:
    ``z = x + sqrt(a * x + b ** 2) * n``, ``n ~ N(0, 1)`` per pixel and channel — shot noise
    of ``1 / a`` photo-electrons at full scale (the heteroscedastic normal approximation of
    ``a * Poisson(x / a)``) plus read noise ``b`` — then re-encoded to sRGB. Level L:
    ``a`` = LEVELS[L], ``b`` = READ[L] (level 3: 500 e- full well, read noise 0.3%).
    """

    family: ClassVar[str] = "sensor"
    LEVELS = (0.0, 1 / 4000, 1 / 1500, 1 / 500, 1 / 200, 1 / 80)
    READ: ClassVar[tuple[float, ...]] = (0.0, 0.001, 0.002, 0.003, 0.005, 0.008)

    def sample_params(self, rng, shape):
        seed = int(rng.integers(2**63))
        return {"a": self.magnitude, "b": self.READ[self.severity], "seed": seed}

    def apply(self, image, *, a, b, seed):
        if a <= 0 and b <= 0:
            return image.copy()
        lin = _decode_lut()[image]
        n = np.random.default_rng(seed).standard_normal(image.shape, dtype=np.float32)
        std = np.sqrt(lin * np.float32(a) + np.float32(b * b))
        return encode_u8(lin + std * n)


@register("acq_hot_pixels")
class AcqHotPixels(AcquisitionMixin, Perturbation):
    """Defective photosites: a fraction LEVELS[L] of the pixel-channel sites is stuck —
    half hot (saturated, 255), half dead (0) — as on an ageing or radiation-damaged sensor
    without defect correction. Sites are drawn per image from ``seed``; a higher level
    keeps the lower levels' defects and adds more.
    """

    family: ClassVar[str] = "sensor"
    LEVELS = (0.0, 2e-4, 5e-4, 1e-3, 2.5e-3, 5e-3)

    def sample_params(self, rng, shape):
        return {"fraction": self.magnitude, "seed": int(rng.integers(2**63))}

    def apply(self, image, *, fraction, seed):
        out = image.copy()
        if fraction <= 0:
            return out
        u = np.random.default_rng(seed).random(image.shape, dtype=np.float32)
        out[u < fraction / 2] = 255
        out[(u >= fraction / 2) & (u < fraction)] = 0
        return out


@register("acq_chromatic_aberration")
class AcqChromaticAberration(AcquisitionMixin, Perturbation):
    """Lateral chromatic aberration: the lens magnifies red by ``1 + k`` and blue by
    ``1 - k`` relative to green (dispersion), about the optical centre (jittered by up to 2%);
    colour fringes grow towards the corners. ``|k|`` = LEVELS[L] (level 3: 0.5%, 3.6 px at
    the corner of a 1024 px image), sign per image. Green, hence the geometry, stays put.
    """

    family: ClassVar[str] = "photometric"
    LEVELS = (0.0, 0.0015, 0.003, 0.005, 0.008, 0.012)

    def sample_params(self, rng, shape):
        sign = _sign(rng)
        cx, cy = rng.uniform(-0.02, 0.02, size=2)
        return {"k": sign * self.magnitude, "cx": float(cx), "cy": float(cy)}

    def apply(self, image, *, k, cx, cy):
        if k == 0:
            return image.copy()
        h, w = image.shape[:2]
        ox, oy = (w - 1) / 2 + cx * w, (h - 1) / 2 + cy * h
        channels = list(cv2.split(image))
        for c, m in ((0, 1 + k), (2, 1 - k)):
            mat = np.array([[m, 0, (1 - m) * ox], [0, m, (1 - m) * oy]], np.float64)
            channels[c] = cv2.warpAffine(
                channels[c], mat, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
            )
        return cv2.merge(channels)


class _RemapShift(AcquisitionMixin, GeometricPerturbation):
    """A geometric shift given by sampling maps: bilinear image, nearest mask, reflect."""

    _abstract_geometric = True

    def maps(self, shape, **params) -> tuple[np.ndarray, np.ndarray] | None:
        raise NotImplementedError

    def _warp(self, array, nearest, params):
        maps = self.maps(array.shape, **params)
        if maps is None:
            return array.copy()
        interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
        return cv2.remap(array, maps[0], maps[1], interp, borderMode=cv2.BORDER_REFLECT_101)

    def apply(self, image, **params):
        return self._warp(image, False, params)

    def apply_to_mask(self, mask, **params):
        return self._warp(mask, True, params)


@register("acq_lens_distortion")
class AcqLensDistortion(_RemapShift):
    """Radial lens distortion (Brown-Conrady, first term): the output pixel at normalised
    radius ``r`` (distance to the centre over the half diagonal) shows the scene point at
    ``r * (1 + k1 * r ** 2)``. ``k1 > 0`` is barrel distortion (straight lines bow outwards,
    corners pulled in), ``k1 < 0`` pincushion. ``|k1|`` = LEVELS[L] (level 3: 0.1, i.e. 10%
    radial displacement at the corners), sign per image.
    """

    LEVELS = (0.0, 0.025, 0.05, 0.1, 0.15, 0.22)

    def sample_params(self, rng, shape):
        return {"k1": _sign(rng) * self.magnitude}

    def maps(self, shape, *, k1):
        if k1 == 0:
            return None
        h, w = shape[:2]
        norm = 0.5 * math.hypot(h, w)
        xs = (np.arange(w, dtype=np.float32) - (w - 1) / 2)[None, :]
        ys = (np.arange(h, dtype=np.float32) - (h - 1) / 2)[:, None]
        factor = 1 + np.float32(k1) * (xs * xs + ys * ys) / np.float32(norm * norm)
        return xs * factor + np.float32((w - 1) / 2), ys * factor + np.float32((h - 1) / 2)


@register("acq_camera_tilt")
class AcqCameraTilt(AcquisitionMixin, GeometricPerturbation):
    """Camera tilt: the camera looks at the part off-normal by ``angle`` degrees, still aimed
    at the same point. The part plane, seen by a pinhole camera with a 50 degree horizontal
    field of view at the distance that fills the frame, is rotated by ``angle`` about an
    in-plane axis through the image centre at ``direction`` (0 = about the vertical axis);
    the image corners are projected through the pinhole and the image moves by the
    homography between the corners (perspective keystone; the centre stays put).
    ``angle`` = LEVELS[L] degrees (level 3: 10), direction U[0, 360) per image.
    """

    LEVELS = (0.0, 3.0, 6.0, 10.0, 15.0, 22.0)
    FOV_DEG: ClassVar[float] = 50.0

    def sample_params(self, rng, shape):
        return {"angle": self.magnitude, "direction": float(rng.uniform(0, 360))}

    def homography(self, shape, angle, direction):
        h, w = shape[:2]
        f = (w / 2) / math.tan(math.radians(self.FOV_DEG) / 2)
        corners = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float64)
        centred = corners - [(w - 1) / 2, (h - 1) / 2]
        phi = math.radians(direction)
        rot, _ = cv2.Rodrigues(np.array([math.sin(phi), math.cos(phi), 0.0]) * math.radians(angle))
        # the plane point (x, y, 0), rotated, at distance f in front of the camera
        pts = np.column_stack([centred, np.zeros(4)]) @ rot.T + [0, 0, f]
        projected = f * pts[:, :2] / pts[:, 2:] + [(w - 1) / 2, (h - 1) / 2]
        return cv2.getPerspectiveTransform(corners.astype(np.float32), projected.astype(np.float32))

    def _warp(self, array, nearest, angle, direction):
        if angle == 0:
            return array.copy()
        h, w = array.shape[:2]
        interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
        return cv2.warpPerspective(
            array,
            self.homography(array.shape, angle, direction),
            (w, h),
            flags=interp,
            borderMode=cv2.BORDER_REFLECT_101,
        )

    def apply(self, image, *, angle, direction):
        return self._warp(image, False, angle, direction)

    def apply_to_mask(self, mask, *, angle, direction):
        return self._warp(mask, True, angle, direction)


@register("acq_working_distance")
class AcqWorkingDistance(AcquisitionMixin, AffinePerturbation):
    """Working-distance change: the part is ``delta`` (relative) farther from the camera,
    so the pinhole magnification becomes ``1 / (1 + delta)`` about the image centre (depth
    of field ignored). ``|delta|`` = LEVELS[L] (level 3: 10%), nearer or farther per image.
    An affine map, so a suite composes it with neighbouring affine members into one warp.
    """

    LEVELS = (0.0, 0.025, 0.05, 0.1, 0.15, 0.22)

    def sample_params(self, rng, shape):
        return {"delta": _sign(rng) * self.magnitude}

    def matrix(self, shape, *, delta):
        m = 1 / (1 + delta)
        cx, cy = (shape[1] - 1) / 2, (shape[0] - 1) / 2
        return np.array([[m, 0, (1 - m) * cx], [0, m, (1 - m) * cy], [0, 0, 1.0]])
