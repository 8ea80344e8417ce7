"""ImageNet-C corruptions built from random spatial fields: snow, frost, fog, spatter and
the elastic transform (see :mod:`.corruptions` for names, tables and size scaling).

Each random layer (snowflakes, frost, fog, liquid, displacement) is built on the 224-px-equivalent grid
(:func:`~shiftbench.transforms.corruptions_common.reference_grid`) with the reference's pixel
constants unchanged, then resized to the image: at 224 px this is the reference's
construction, at other sizes the layer keeps its size relative to the image.

Frost, a random layer too, is in :mod:`.corruptions_frost` (its names are re-exported here).
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from shiftbench.transforms.base import GeometricPerturbation
from shiftbench.transforms.corruptions_blur import clipped_zoom, motion_blur
from shiftbench.transforms.corruptions_common import (
    Corruption,
    CorruptionMixin,
    _unit,
    gaussian,
    layer_to_image,
    reference_grid,
    to_uint8,
)
from shiftbench.transforms.corruptions_frost import CCFrost as CCFrost
from shiftbench.transforms.corruptions_frost import frost_texture as frost_texture
from shiftbench.transforms.registry import register


def plasma_fractal(mapsize: int, wibbledecay: float, rng: np.random.Generator) -> np.ndarray:
    """Diamond-square height map in [0, 1] (the reference's ``plasma_fractal``, drawing from
    ``rng`` instead of the global ``np.random``); ``mapsize`` a power of two."""
    assert mapsize & (mapsize - 1) == 0
    m = np.zeros((mapsize, mapsize), np.float64)
    step, wibble = mapsize, 100.0

    def wibbled(a):
        return a / 4 + wibble * rng.uniform(-wibble, wibble, a.shape)

    while step >= 2:
        half = step // 2
        corners = m[0:mapsize:step, 0:mapsize:step]
        square = corners + np.roll(corners, -1, axis=0)
        square += np.roll(square, -1, axis=1)
        m[half:mapsize:step, half:mapsize:step] = wibbled(square)
        centre = m[half:mapsize:step, half:mapsize:step]
        corners = m[0:mapsize:step, 0:mapsize:step]
        lt = centre + np.roll(centre, 1, axis=0) + corners + np.roll(corners, -1, axis=1)
        m[0:mapsize:step, half:mapsize:step] = wibbled(lt)
        tt = centre + np.roll(centre, 1, axis=1) + corners + np.roll(corners, -1, axis=0)
        m[half:mapsize:step, 0:mapsize:step] = wibbled(tt)
        step //= 2
        wibble /= wibbledecay
    m -= m.min()
    return m / m.max()


@register("cc_fog")
class CCFog(Corruption):
    """Fog: a plasma fractal (diamond-square) haze added with weight c0 and the image
    rescaled by ``max / (max + c0)``; ``c1`` is the fractal's roughness decay.
    Table: imagecorruptions 1.1.2 ``fog`` (c0, c1) =
    [(1.5, 2), (2., 2), (2.5, 1.7), (2.5, 1.5), (3., 1.4)]."""

    #: 2: the layer is area-averaged, not bilinearly sampled, on images under 224 px
    version = 2
    TABLE = ((1.5, 2), (2.0, 2), (2.5, 1.7), (2.5, 1.5), (3.0, 1.4))

    def corrupt(self, image, c, *, seed):
        gh, gw = reference_grid(image.shape)
        size = 1 << (max(gh, gw) - 1).bit_length()
        haze = plasma_fractal(size, c[1], np.random.default_rng(seed))[:gh, :gw]
        haze = layer_to_image(haze.astype(np.float32), image.shape)
        x = _unit(image)
        top = float(x.max())
        x += np.float32(c[0]) * haze[:, :, None]
        return to_uint8(x * np.float32(top / (top + c[0])))


@register("cc_snow")
class CCSnow(Corruption):
    """Snow: Gaussian noise (loc c0, scale c1) zoomed by c2, thresholded at c3, motion
    blurred (radius c4, sigma c5, angle U[-135, -45]) into falling flakes, added twice
    (and rotated 180 degrees); the image is first whitened towards ``1.5 * grey + 0.5``
    with weight ``1 - c6``.
    Table: imagecorruptions 1.1.2 ``snow`` = [(0.1, 0.3, 3, 0.5, 10, 4, 0.8),
    (0.2, 0.3, 2, 0.5, 12, 4, 0.7), (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
    (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65), (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55)]."""

    #: 2: the layer is area-averaged, not bilinearly sampled, on images under 224 px
    version = 2
    TABLE = (
        (0.1, 0.3, 3, 0.5, 10, 4, 0.8),
        (0.2, 0.3, 2, 0.5, 12, 4, 0.7),
        (0.55, 0.3, 4, 0.9, 12, 8, 0.7),
        (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
        (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
    )

    def draw(self, rng):
        return {"angle": float(rng.uniform(-135, -45))}

    def corrupt(self, image, c, *, seed, angle):
        gh, gw = reference_grid(image.shape)
        layer = np.random.default_rng(seed).normal(c[0], c[1], (gh, gw)).astype(np.float32)
        layer = clipped_zoom(layer, c[2])
        layer[layer < c[3]] = 0
        np.clip(layer, 0, 1, out=layer)
        layer = motion_blur(layer, int(c[4]), c[5], angle)
        layer = np.round(np.clip(layer, 0, 1) * 255) / np.float32(255)
        layer = layer_to_image(layer.astype(np.float32), image.shape)
        flakes = (layer + layer[::-1, ::-1])[:, :, None]
        x = _unit(image)
        grey = cv2.cvtColor(x, cv2.COLOR_RGB2GRAY)[:, :, None] * np.float32(1.5) + np.float32(0.5)
        x = np.float32(c[6]) * x + np.float32(1 - c[6]) * np.maximum(x, grey)
        return to_uint8(x + flakes)


@register("cc_spatter")
class CCSpatter(Corruption):
    """Spatter: Gaussian noise (loc c0, scale c1) smoothed by sigma c2 and thresholded at
    c3 gives liquid blobs. Water (c5 = 0): the blobs' edges (Canny, distance transform,
    emboss) shade a pale turquoise layer of strength c4 added to the image. Mud (c5 = 1):
    blobs smoothed by sigma c4, kept above 0.8, replace the image with mud brown.
    Table: imagecorruptions 1.1.2 ``spatter`` = [(0.65, 0.3, 4, 0.69, 0.6, 0),
    (0.65, 0.3, 3, 0.68, 0.6, 0), (0.65, 0.3, 2, 0.68, 0.5, 0), (0.65, 0.3, 1, 0.65, 1.5, 1),
    (0.67, 0.4, 1, 0.65, 1.5, 1)]."""

    #: 2: the layer is area-averaged, not bilinearly sampled, on images under 224 px
    version = 2
    TABLE = (
        (0.65, 0.3, 4, 0.69, 0.6, 0),
        (0.65, 0.3, 3, 0.68, 0.6, 0),
        (0.65, 0.3, 2, 0.68, 0.5, 0),
        (0.65, 0.3, 1, 0.65, 1.5, 1),
        (0.67, 0.4, 1, 0.65, 1.5, 1),
    )

    def corrupt(self, image, c, *, seed):
        gh, gw = reference_grid(image.shape)
        liquid = np.random.default_rng(seed).normal(c[0], c[1], (gh, gw)).astype(np.float32)
        liquid = gaussian(liquid, c[2])
        liquid[liquid < c[3]] = 0
        x = _unit(image)
        if c[5] == 0:
            layer = (liquid * 255).astype(np.uint8)
            dist = cv2.distanceTransform(255 - cv2.Canny(layer, 50, 150), cv2.DIST_L2, 5)
            _, dist = cv2.threshold(dist, 20, 20, cv2.THRESH_TRUNC)
            dist = cv2.equalizeHist(cv2.blur(dist, (3, 3)).astype(np.uint8))
            emboss = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]])
            dist = cv2.blur(cv2.filter2D(dist, cv2.CV_8U, emboss), (3, 3)).astype(np.float32)
            m = layer.astype(np.float32) * dist
            m *= np.float32(c[4] / max(float(m.max()), 1e-12))
            colour = np.array([175, 238, 238], np.float32) / 255
            return to_uint8(x + layer_to_image(m, image.shape)[:, :, None] * colour)
        m = gaussian((liquid > c[3]).astype(np.float32), c[4])
        m[m < 0.8] = 0
        m = layer_to_image(m, image.shape)[:, :, None]
        colour = np.array([63, 42, 20], np.float32) / 255
        return to_uint8(x * (1 - m) + colour * m)


def elastic_maps(shape: tuple[int, ...], alpha: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sampling maps ``(map_x, map_y)`` of the elastic transform at the image size.

    As the reference: uniform noise in ``±0.005 * H`` (H of the 224 grid), smoothed by a
    Gaussian of ``0.01 * side`` (truncate 3, reflect), times ``alpha`` — but drawn on the
    224-px-equivalent grid, resized to the image and multiplied by ``s``, so displacements
    stay the same fraction of the image at any size.
    """
    h, w = shape[:2]
    gh, gw = reference_grid(shape)
    rng = np.random.default_rng(seed)
    fields = []
    for _ in range(2):  # dx then dy, as the reference
        noise = rng.uniform(-gh * 0.005, gh * 0.005, size=(gh, gw)).astype(np.float32)
        sy, sx = gh * 0.01, gw * 0.01
        ky, kx = 2 * math.ceil(3 * sy) + 1, 2 * math.ceil(3 * sx) + 1
        smooth = cv2.GaussianBlur(
            noise, (kx, ky), sigmaX=sx, sigmaY=sy, borderType=cv2.BORDER_REFLECT
        )
        fields.append(smooth * np.float32(alpha))
    dx, dy = (
        cv2.resize(f, (w, h), interpolation=cv2.INTER_LINEAR) if (gh, gw) != (h, w) else f
        for f in fields
    )
    map_x = dx * np.float32(w / gw) + np.arange(w, dtype=np.float32)[None, :]
    map_y = dy * np.float32(h / gh) + np.arange(h, dtype=np.float32)[:, None]
    return map_x, map_y


@register("cc_elastic_transform")
class CCElasticTransform(CorruptionMixin, GeometricPerturbation):
    """Elastic deformation: a smooth random displacement field (see :func:`elastic_maps`),
    bilinear for the image, nearest for the mask (same field), edges reflected.
    Table: imagecorruptions 1.1.2 ``elastic_transform`` alpha = 250 * [0.05, 0.065, 0.085,
    0.1, 0.12] (1.1.2 has no affine part, unlike the original ImageNet-C script)."""

    TABLE = (250 * 0.05, 250 * 0.065, 250 * 0.085, 250 * 0.1, 250 * 0.12)

    def corrupt(self, image, c, *, seed, nearest=False):
        map_x, map_y = elastic_maps(image.shape, c, seed)
        interp = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
        return cv2.remap(image, map_x, map_y, interp, borderMode=cv2.BORDER_REFLECT)

    def apply_to_mask(self, mask: np.ndarray, *, c: Any, **params: Any) -> np.ndarray:
        if c is None:
            return mask.copy()
        return self.corrupt(mask, c, nearest=True, **params)
