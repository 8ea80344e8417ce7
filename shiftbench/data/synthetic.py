"""The embedded synthetic dataset, in MVTec AD layout, deterministic from a seed.

Texture categories are cut from real photographs that ship inside scikit-image
(``brick``, ``grass``, ``gravel``): training crops come from the top half of the photo,
test crops from the bottom half, so no test pixel was ever seen in training. The object
category ``washer`` is a rendered part (a shaded ring with a key notch) whose pose and
lighting vary slightly. Five defect types carry pixel masks: ``scratch``, ``hole``,
``stain``, ``contamination`` (a patch of another texture) and ``crack``. Defect size and
contrast are drawn from wide ranges, so some defects are obvious and some subtle: no
model scores a perfect 1.0 everywhere, yet features that know natural images (a
pretrained backbone) find most of them.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage

from shiftbench._hashing import stable_int
from shiftbench.data.cache import cache_dir
from shiftbench.data.io import write_image

TEXTURES = {"brick": (1.00, 0.78, 0.66), "grass": (0.80, 1.00, 0.70), "gravel": (0.92, 0.90, 0.86)}
CATEGORIES = (*TEXTURES, "washer")
DEFECTS = ("scratch", "hole", "stain", "contamination", "crack")
FORMAT_VERSION = 1


def _rng(seed: int, *parts: object) -> np.random.Generator:
    words = [stable_int(p, 4, "big") for p in parts]
    return np.random.default_rng(np.random.SeedSequence([seed, *words]))


@functools.lru_cache(maxsize=8)
def _photo(name: str) -> np.ndarray:
    import skimage.data

    return getattr(skimage.data, name)().astype(np.float32) / 255.0


def crop_box(
    rng: np.random.Generator, photo_shape: tuple[int, int], part: str
) -> tuple[int, int, int]:
    """(top, left, side) of a square crop in photo coordinates: ``train`` crops lie in the
    top half of the photo, ``test`` crops in the bottom half, so they never share a pixel."""
    half = photo_shape[0] // 2
    side = int(rng.integers(int(0.55 * half), int(0.75 * half)))
    top = int(rng.integers(0, half - side + 1)) + (0 if part == "train" else half)
    left = int(rng.integers(0, photo_shape[1] - side + 1))
    return top, left, side


def _texture_crop(name: str, rng: np.random.Generator, size: int, part: str) -> np.ndarray:
    photo = _photo(name)
    y, x, crop = crop_box(rng, photo.shape[:2], part)
    grey = cv2.resize(photo[y : y + crop, x : x + crop], (size, size), interpolation=cv2.INTER_AREA)
    gain = rng.uniform(0.95, 1.05)
    tint = np.asarray(TEXTURES[name], np.float32)
    return np.clip(grey[..., None] * tint * gain, 0, 1)


def _washer(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A rendered washer: returns the image and the object's footprint (bool)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cy = size / 2 + rng.uniform(-0.02, 0.02) * size
    cx = size / 2 + rng.uniform(-0.02, 0.02) * size
    r = np.hypot(yy - cy, xx - cx)
    theta = np.arctan2(yy - cy, xx - cx)
    outer, inner = 0.40 * size, 0.17 * size
    notch_angle = np.deg2rad(rng.uniform(-4, 4))
    notch = (np.abs(np.angle(np.exp(1j * (theta - notch_angle)))) < 0.12) & (r > 0.34 * size)
    body = (r < outer) & (r > inner) & ~notch
    light = np.deg2rad(rng.uniform(-20, 20) - 45)
    shade = 0.62 + 0.18 * np.cos(theta - light) * (r / outer) + 0.06 * np.cos(r / size * 40)
    metal = np.stack([shade * 0.93, shade * 0.95, shade * 1.0], -1)
    background = np.full((size, size, 3), (0.16, 0.18, 0.22), np.float32)
    grain = ndimage.gaussian_filter(rng.normal(0, 0.05, (size, size)), 1.0)[..., None]
    soft = ndimage.gaussian_filter(body.astype(np.float32), 0.7)[..., None]
    img = (
        background * (1 - soft) + metal * soft + grain * soft + rng.normal(0, 0.01, (size, size, 1))
    )
    return np.clip(img, 0, 1).astype(np.float32), body


def _blob(
    rng: np.random.Generator, size: int, radius: float, center: tuple[float, float]
) -> np.ndarray:
    """An irregular blob: a thresholded, smoothed noise field inside a soft disc."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    d = np.hypot(yy - center[0], xx - center[1]) / max(radius, 1.0)
    noise = ndimage.gaussian_filter(rng.normal(0, 1, (size, size)), max(radius / 3, 1.0))
    noise /= noise.std() + 1e-8
    return (1.0 - d + 0.35 * noise) > 0


def _polyline(rng, size, center, length, n_segments, thickness) -> np.ndarray:
    canvas = np.zeros((size, size), np.uint8)
    angle = rng.uniform(0, np.pi)
    pts = [np.asarray(center, float)]
    for _ in range(n_segments):
        angle += rng.normal(0, 0.45)
        step = length / n_segments
        pts.append(pts[-1] + step * np.array([np.cos(angle), np.sin(angle)]))
    pts = np.asarray(pts)
    pts -= pts.mean(0) - center
    cv2.polylines(
        canvas,
        [np.round(pts).astype(np.int32).reshape(-1, 1, 2)],
        False,
        1,
        int(thickness),
        cv2.LINE_8,
    )
    return canvas.astype(bool)


def _center(rng, size, allowed: np.ndarray | None) -> tuple[float, float]:
    if allowed is None:
        m = 0.2 * size
        return float(rng.uniform(m, size - m)), float(rng.uniform(m, size - m))
    ys, xs = np.nonzero(ndimage.binary_erosion(allowed, iterations=max(1, size // 32)))
    i = int(rng.integers(len(ys)))
    return float(ys[i]), float(xs[i])


def add_defect(
    img: np.ndarray, defect: str, rng: np.random.Generator, allowed: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Paint one defect on a float image in [0, 1]; returns (image, mask bool [H, W])."""
    size = img.shape[0]
    contrast = rng.uniform(0.12, 0.55)
    cy, cx = _center(rng, size, allowed)
    out = img.copy()
    if defect == "scratch":
        mask = _polyline(
            rng,
            size,
            (cx, cy),
            rng.uniform(0.15, 0.45) * size,
            2,
            max(1, round(size / 128 * rng.uniform(1, 2.5))),
        )
        sign = rng.choice([-1.0, 1.0])
        out[mask] = np.clip(out[mask] + sign * contrast, 0, 1)
    elif defect == "hole":
        radius = rng.uniform(0.03, 0.09) * size
        mask = _blob(rng, size, radius, (cy, cx))
        depth = ndimage.gaussian_filter(mask.astype(np.float32), radius / 4)[..., None]
        out = out * (1 - depth * (0.4 + contrast)) + 0.02 * depth
    elif defect == "stain":
        radius = rng.uniform(0.05, 0.14) * size
        mask = _blob(rng, size, radius, (cy, cx))
        alpha = ndimage.gaussian_filter(mask.astype(np.float32), 1.0)[..., None] * (0.3 + contrast)
        colour = np.asarray(
            rng.choice([(0.45, 0.30, 0.12), (0.15, 0.15, 0.10), (0.55, 0.55, 0.20)]), np.float32
        )
        out = out * (1 - alpha) + colour * alpha
        mask = alpha[..., 0] > 0.15
    elif defect == "contamination":
        radius = rng.uniform(0.05, 0.12) * size
        mask = _blob(rng, size, radius, (cy, cx))
        donor = _texture_crop(str(rng.choice(["gravel", "grass", "brick"])), rng, size, "test")
        donor = np.roll(donor, (int(rng.integers(size)), int(rng.integers(size))), (0, 1))
        out[mask] = donor[mask] * rng.uniform(0.7, 1.3)
    elif defect == "crack":
        mask = np.zeros((size, size), bool)
        for _ in range(int(rng.integers(1, 3))):
            mask |= _polyline(rng, size, (cx, cy), rng.uniform(0.2, 0.5) * size, 6, 1)
        out[mask] = out[mask] * (1 - 0.5 - contrast / 2)
    else:
        raise ValueError(f"unknown defect {defect!r}; known: {DEFECTS}")
    if allowed is not None:
        # an object defect lives on the object only
        keep = allowed[..., None]
        out = np.where(keep, out, img)
        mask &= allowed
    return np.clip(out, 0, 1).astype(np.float32), mask


def _render(category: str, rng: np.random.Generator, size: int, part: str):
    if category == "washer":
        return _washer(rng, size)
    return _texture_crop(category, rng, size, part), None


def make_synthetic(
    out_dir: str | Path,
    seed: int = 0,
    size: int = 128,
    *,
    categories: tuple[str, ...] = CATEGORIES,
    n_train: int = 40,
    n_test_good: int = 16,
    n_per_defect: int = 5,
) -> Path:
    """Write the synthetic dataset in MVTec AD layout under ``out_dir``; returns it.

    Deterministic: the same (seed, size, counts) give byte-identical PNG files.
    """
    out_dir = Path(out_dir)
    to_u8 = lambda a: np.round(a * 255).astype(np.uint8)  # noqa: E731
    for cat in categories:
        if cat not in CATEGORIES:
            raise ValueError(f"unknown synthetic category {cat!r}; known: {', '.join(CATEGORIES)}")
        for i in range(n_train):
            img, _ = _render(cat, _rng(seed, cat, "train", i), size, "train")
            write_image(out_dir / cat / "train" / "good" / f"{i:03d}.png", to_u8(img))
        for i in range(n_test_good):
            img, _ = _render(cat, _rng(seed, cat, "test-good", i), size, "test")
            write_image(out_dir / cat / "test" / "good" / f"{i:03d}.png", to_u8(img))
        for defect in DEFECTS:
            for i in range(n_per_defect):
                rng = _rng(seed, cat, defect, i)
                img, allowed = _render(cat, rng, size, "test")
                mask = np.zeros((size, size), bool)
                while mask.sum() < max(4, size * size // 2000):
                    img, mask = add_defect(img, defect, rng, allowed)
                write_image(out_dir / cat / "test" / defect / f"{i:03d}.png", to_u8(img))
                write_image(
                    out_dir / cat / "ground_truth" / defect / f"{i:03d}_mask.png",
                    mask.astype(np.uint8) * 255,
                )
    return out_dir


def default_synthetic_root(seed: int = 0, size: int = 128) -> Path:
    """The embedded synthetic dataset, generated once into the cache and reused.

    Generation writes to a temporary folder and renames it, so a crash never leaves a
    half-written dataset behind and two processes can race safely.
    """
    root = cache_dir() / f"synthetic-v{FORMAT_VERSION}-seed{seed}-{size}px"
    if (root / ".complete").is_file():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=root.name + ".", dir=root.parent))
    try:
        make_synthetic(tmp, seed=seed, size=size)
        (tmp / ".complete").write_text("ok\n")
        try:
            tmp.rename(root)
        except OSError:  # another process won the race
            if not (root / ".complete").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root
