"""ImageNet-C glass blur: blur, the reference's sequential pixel "swaps", blur again.

The reference (imagecorruptions 1.1.2 ``glass_blur``) walks the interior pixels in reverse
raster order (rows ``h = H - d .. d + 1``, in each row ``w = W - d .. d + 1``), draws
``dx, dy = np.random.randint(-d, d, size=2)`` per pixel and runs
``x[h, w], x[h', w'] = x[h', w'], x[h, w]`` with ``(h', w') = (h + dy, w + dx)``. On an
RGB array both sides are numpy *views*, so this is not a swap: ``x[h, w]`` receives the
current colour of ``(h', w')``, and ``(h', w')`` keeps it. :func:`glass_shuffle` runs that
process exactly, vectorised: in one pass, pixel ``p`` takes the colour ``(h', w')`` has
when ``p``'s turn comes, which is

* the pass's input colour of ``(h', w')`` when ``(h', w')`` comes later in the walk (it
  precedes ``p`` in raster order), is ``p`` itself, or is never visited (the border);
* else the colour ``(h', w')`` itself took earlier in the pass, i.e. the same rule again.

The second case chains strictly forward in raster order, so every pixel's source is found
by pointer doubling over the whole image (a few gathers), not one Python step per pixel.
"""

from __future__ import annotations

import numpy as np

from shiftbench.transforms.corruptions_common import (
    Corruption,
    _unit,
    gaussian,
    layer_to_image,
    reference_grid,
    size_scale,
    to_uint8,
)
from shiftbench.transforms.registry import register


def glass_offsets(
    rng: np.random.Generator, shape: tuple[int, ...], delta: int, iterations: int
) -> np.ndarray:
    """The offsets of every step of the walk over an image of ``shape``, drawn as the
    reference's, U{-d, ..., d - 1}: ``int8 [iterations, H - 2d, W - 2d, 2]`` holding
    ``(dx, dy)``, indexed in walk order (row ``i`` is ``h = H - d - i``, column ``j`` is
    ``w = W - d - j``)."""
    h, w = shape[:2]
    size = (int(iterations), max(0, h - 2 * delta), max(0, w - 2 * delta), 2)
    return rng.integers(-delta, delta, size=size, dtype=np.int8)


def glass_shuffle(x: np.ndarray, offsets: np.ndarray, bound: int) -> np.ndarray:
    """The reference's pixel walk over an ``[H, W, C]`` image with the given ``offsets``
    (:func:`glass_offsets`, margin ``bound``), one pass per leading index; exact, with the
    copy semantics the reference has on colour images (see the module docstring; on a 2-D
    array the reference's line would be a true swap, which this is not). Returns a new
    array."""
    h, w = x.shape[:2]
    n = h * w
    nh, nw = offsets.shape[1:3]
    if nh <= 0 or nw <= 0:
        return x.copy()
    # the visited pixels are the block rows/cols bound + 1 .. H - bound, walked backwards
    block = (slice(bound + 1, h - bound + 1), slice(bound + 1, w - bound + 1))
    rows = np.arange(bound + 1, h - bound + 1, dtype=np.int32)[:, None]
    cols = np.arange(bound + 1, w - bound + 1, dtype=np.int32)[None, :]
    everyone = np.arange(n, dtype=np.int32).reshape(h, w)
    total = everyone.ravel()  # total[p]: the input pixel whose colour p shows now
    for step in offsets:
        dx, dy = step[::-1, ::-1, 0], step[::-1, ::-1, 1]  # raster order
        src_y, src_x = rows + dy, cols + dx
        if step.min() < -bound or step.max() >= bound:  # not the reference's: stay inside
            np.clip(src_y, 0, h - 1, out=src_y)
            np.clip(src_x, 0, w - 1, out=src_x)
        source = everyone.copy()
        source[block] = src_y * w + src_x
        # a source visited earlier in the walk (after p in raster order) passes on the
        # colour it took; follow those links to their ends by pointer doubling
        later = (src_y > rows) | ((src_y == rows) & (src_x > cols))
        later &= (src_y > bound) & (src_y <= h - bound) & (src_x > bound) & (src_x <= w - bound)
        link = everyone.copy()
        link[block] = np.where(later, source[block], everyone[block])
        link = link.ravel()
        active = everyone[block][later]
        while active.size:
            jumped = link[link[active]]
            link[active] = jumped
            active = active[link[jumped] != jumped]
        total = total[source.ravel()[link]]
    return np.take(x.reshape(n, -1), total, axis=0).reshape(x.shape)


@register("cc_glass_blur")
class CCGlassBlur(Corruption):
    """Blur (sigma), locally scramble pixels (max_delta, iterations), blur again.

    The scramble is the reference's sequential walk, exactly (:func:`glass_shuffle`: the
    same visiting order, offsets and copy semantics; at 224 px the same offsets give the
    same pixels). ``sigma`` scales with ``s``; the walk runs on the 224-px-equivalent grid
    (:func:`~.corruptions_common.reference_grid`) like the other random layers: the blurred
    image is resized to the grid, walked with the reference's offsets and resized back
    (area-averaged when shrinking). So the scramble keeps its size relative to the image:
    at 64 or 1024 px the damage is that of the reference at 224 px, resized (a walk with
    offsets scaled to the image would jitter single pixels of a 64-px image by whole
    pixels: 1.4x the damage at level 1).
    Table: imagecorruptions 1.1.2 ``glass_blur`` (sigma, max_delta, iterations) =
    [(0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2)]."""

    #: 2: the reference's walk instead of two vectorised gathers per iteration
    version = 2
    TABLE = ((0.7, 1, 2), (0.9, 2, 1), (1, 2, 3), (1.1, 3, 2), (1.5, 4, 2))

    def corrupt(self, image, c, *, seed):
        sigma, delta, iterations = c[0] * size_scale(image.shape), int(c[1]), int(c[2])
        x = to_uint8(gaussian(_unit(image), sigma))
        x = layer_to_image(x, reference_grid(image.shape))  # walk on the 224-px grid
        offsets = glass_offsets(np.random.default_rng(seed), x.shape, delta, iterations)
        x = glass_shuffle(x, offsets, delta)
        x = layer_to_image(x, image.shape)
        return to_uint8(gaussian(_unit(x), sigma))
