"""ImageNet-C digital corruptions: brightness, contrast, saturation (closed forms of the
reference's HSV round trips), JPEG compression and pixelation. None is random."""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from shiftbench.transforms.corruptions_common import Corruption, _unit, to_uint8
from shiftbench.transforms.registry import register


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
