"""ImageNet-C frost: frost on the lens, ``c0 * image + c1 * frost`` (0-255 scale, clipped).

The reference blends a random crop of one of five frost photographs shipped inside
imagecorruptions (``frost1.png`` .. ``frost5.jpg``; a sixth, ``frost6.jpg``, ships but is
never drawn). We ship no third-party images. With imagecorruptions installed, ``cc_frost``
uses those photographs exactly as the reference does (:func:`frost_photo_layer`: the same
rescaling, a random crop on the 224-px grid, resized to the image); without it, the seeded
procedural layer :func:`frost_texture`, calibrated to the photographs' mean colour and
contrast but far more alike between draws (its damage varies ~8x less than the
photographs', and it is milder at levels 4-5). The option ``texture`` (``auto``,
``photo``, ``procedural``) chooses; the one used enters the suite hash and every image's
params (``texture``), so twins, caches and manifests say which frost they have.
"""

from __future__ import annotations

import functools
import importlib.util
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from shiftbench.errors import ShiftbenchError
from shiftbench.transforms.base import DEFAULT_SEVERITY
from shiftbench.transforms.corruptions_common import Corruption, layer_to_image, reference_grid
from shiftbench.transforms.registry import register

#: The photographs the reference draws from (``np.random.randint(5)``), in its order.
FROST_PHOTOS = ("frost1.png", "frost2.png", "frost3.png", "frost4.jpg", "frost5.jpg")
#: Values of the ``texture`` option.
TEXTURES = ("auto", "photo", "procedural")
_PHOTO_PREFIX = "imagecorruptions:"


def frost_photo_dir() -> Path | None:
    """The ``frost`` folder inside the installed imagecorruptions, or None.

    Found from the package's import spec, without importing it: imagecorruptions 1.1.2's
    ``__init__`` needs ``pkg_resources`` and imports scikit-image (slow, and absent from
    some environments), and ``importlib.resources.files`` would import it."""
    spec = importlib.util.find_spec("imagecorruptions")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "frost"
    return folder if all((folder / name).is_file() for name in FROST_PHOTOS) else None


@functools.lru_cache(maxsize=len(FROST_PHOTOS))
def _photo(name: str) -> np.ndarray:
    """A frost photograph as the reference reads it (``cv2.imread``: BGR ``uint8``)."""
    folder = frost_photo_dir()
    image = None if folder is None else cv2.imread(str(folder / name))
    if image is None:
        raise ShiftbenchError(
            f"cc_frost: the frost photograph {name!r} of imagecorruptions is not readable; "
            "install it (pip install --no-deps imagecorruptions==1.1.2) or use the option "
            "texture: procedural"
        )
    image.setflags(write=False)
    return image


def frost_photo_layer(shape: tuple[int, ...], name: str, rng: np.random.Generator) -> np.ndarray:
    """The reference's frost layer, ``float32 [H, W, 3]`` RGB on the 0-255 scale.

    On the 224-px grid ``(gh, gw)``: the photograph is enlarged if it is smaller than the
    grid, then by 1.1 (bicubic), and a crop of the grid's size is taken at a random
    position (row, then column, as the reference draws them); the crop is then resized to
    the image. At 224 px this is the reference's layer, given the same draws."""
    gh, gw = reference_grid(shape)
    frost = _photo(name)
    fh, fw = frost.shape[:2]
    # the reference's arithmetic, in its order (its float rounding decides the size)
    scaling_factor: float = 1
    if fh >= gh and fw >= gw:
        scaling_factor = 1
    elif fh < gh and fw >= gw:
        scaling_factor = gh / fh
    elif fh >= gh and fw < gw:
        scaling_factor = gw / fw
    else:
        scaling_factor = max(gh / fh, gw / fw)
    scaling_factor *= 1.1
    size = (math.ceil(fw * scaling_factor), math.ceil(fh * scaling_factor))
    rescaled = cv2.resize(frost, dsize=size, interpolation=cv2.INTER_CUBIC)
    top = int(rng.integers(0, rescaled.shape[0] - gh))
    left = int(rng.integers(0, rescaled.shape[1] - gw))
    crop = rescaled[top : top + gh, left : left + gw, ::-1]  # BGR -> RGB
    return layer_to_image(crop.astype(np.float32), shape)


def frost_texture(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """A procedural frost layer ``float32 [H, W, 3]`` on the 0-255 scale.

    On the 224-px grid: (1) haze, four octaves of smooth Gaussian noise (cells of 48 to 6
    px, amplitude growing with the cell); (2) ice crystals, ~0.4 % of grid pixels seed a
    stroke of 4-28 px at a random angle with two side branches at +-60 degrees from its
    middle (half length), drawn anti-aliased at four brightness levels and given a soft
    glow; (3) intensity ``0.655 + 0.07 * haze + 0.35 * crystals`` tinted
    (0.82, 0.94, 1.0) and clipped. Everything comes from ``seed``.
    """
    gh, gw = reference_grid(shape)
    rng = np.random.default_rng(seed)
    haze = np.zeros((gh, gw), np.float32)
    for cell, amp in ((48, 1.0), (24, 0.6), (12, 0.35), (6, 0.2)):
        g = rng.standard_normal((gh // cell + 2, gw // cell + 2)).astype(np.float32)
        haze += amp * cv2.resize(g, (gw, gh), interpolation=cv2.INTER_CUBIC)
    haze = (haze - haze.mean()) / (haze.std() + 1e-6)
    n = max(8, int(0.004 * gh * gw))
    start = rng.uniform((0, 0), (gw, gh), size=(n, 2))
    theta = rng.uniform(0, 2 * np.pi, n)
    length = rng.uniform(4, 28, n)
    level = rng.integers(0, 4, n)
    direction = np.stack([np.cos(theta), np.sin(theta)], 1)
    end = start + length[:, None] * direction
    mid = (start + end) / 2
    segments = [np.stack([start, end], 1)]
    for turn in (np.pi / 3, -np.pi / 3):
        branch = np.stack([np.cos(theta + turn), np.sin(theta + turn)], 1)
        segments.append(np.stack([mid, mid + 0.5 * length[:, None] * branch], 1))
    lines = np.concatenate(segments)
    levels = np.concatenate([level] * 3)
    crystals = np.zeros((gh, gw), np.float32)
    for k in range(4):
        pts = [seg for seg in np.round(lines[levels == k] * 16).astype(np.int32)]
        if pts:
            cv2.polylines(crystals, pts, False, 0.4 + 0.2 * k, 1, cv2.LINE_AA, shift=4)
    crystals = crystals + 0.6 * cv2.GaussianBlur(crystals, (0, 0), 1.5)
    intensity = 0.655 + 0.07 * haze + 0.35 * np.minimum(crystals, 1.2)
    tint = np.array([0.82, 0.94, 1.0], np.float32)
    tex = np.clip(intensity[:, :, None] * tint * 255.0, 0, 255).astype(np.float32)
    return layer_to_image(tex, shape)


@register("cc_frost")
class CCFrost(Corruption):
    """Frost on the lens: ``c0 * image + c1 * frost`` (0-255 scale, clipped); the frost is
    one of the reference's photographs (:func:`frost_photo_layer`) or the procedural
    :func:`frost_texture`, as the ``texture`` option says (``auto``: the photographs when
    imagecorruptions is installed). Params: ``texture`` is ``procedural`` or
    ``imagecorruptions:<file>`` (the photograph drawn), ``seed`` the crop or the texture.
    Table: imagecorruptions 1.1.2 ``frost`` (c0, c1) =
    [(1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75)]."""

    #: 2: the reference's photographs when installed; layers area-averaged under 224 px
    version = 2
    TABLE = ((1, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.7), (0.6, 0.75))

    def __init__(self, severity: int = DEFAULT_SEVERITY, texture: str = "auto") -> None:
        super().__init__(severity)
        if texture not in TEXTURES:
            raise ShiftbenchError(
                f"perturbation 'cc_frost': texture {texture!r} is not one of {', '.join(TEXTURES)}"
            )
        available = frost_photo_dir() is not None
        if texture == "photo" and not available:
            raise ShiftbenchError(
                "perturbation 'cc_frost': texture 'photo' needs the reference's frost "
                "photographs; pip install --no-deps imagecorruptions==1.1.2, or use texture: "
                "procedural"
            )
        if texture == "auto":
            texture = "photo" if available else "procedural"
        self.texture = texture

    @property
    def options(self) -> dict[str, Any]:
        return {"texture": self.texture}

    def draw(self, rng):
        if self.texture == "procedural":
            return {"texture": "procedural"}
        return {"texture": _PHOTO_PREFIX + FROST_PHOTOS[int(rng.integers(len(FROST_PHOTOS)))]}

    def corrupt(self, image, c, *, seed, texture="procedural"):
        if texture == "procedural":
            frost = frost_texture(image.shape, seed)
        elif texture.startswith(_PHOTO_PREFIX) and texture[len(_PHOTO_PREFIX) :] in FROST_PHOTOS:
            name = texture[len(_PHOTO_PREFIX) :]
            frost = frost_photo_layer(image.shape, name, np.random.default_rng(seed))
        else:
            raise ShiftbenchError(
                f"cc_frost: texture {texture!r} is neither 'procedural' nor one of "
                f"{', '.join(_PHOTO_PREFIX + n for n in FROST_PHOTOS)}"
            )
        out = np.float32(c[0]) * image.astype(np.float32) + np.float32(c[1]) * frost
        np.clip(out, 0, 255, out=out)
        return out.astype(np.uint8)
