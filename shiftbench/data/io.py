"""Reading and writing images and masks, with errors that name the file."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from shiftbench.errors import ShiftbenchError


def as_path(value) -> str | None:
    """A mask path from a sample table, or None (pandas stores a missing path as NaN)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return str(value)


def _open(path: str | Path) -> Image.Image:
    path = Path(path)
    if not path.is_file():
        raise ShiftbenchError(f"{path}: file not found; check the dataset root and layout")
    try:
        img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, OSError) as exc:
        raise ShiftbenchError(
            f"{path}: unreadable image ({exc.__class__.__name__}); replace or remove the file"
        ) from None
    return img


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_size(path: Path) -> tuple[int, int] | None:
    """(height, width) from a PNG's IHDR chunk (the first 24 bytes), or None if the file is
    not a well-formed PNG start (then PIL reads it, and reports what is wrong)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(24)
    except OSError:
        return None
    if len(head) < 24 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    w, h = struct.unpack(">II", head[16:24])
    return (h, w) if w and h else None


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image file, read from its header only."""
    path = Path(path)
    if path.suffix.lower() == ".png" and (size := _png_size(path)) is not None:
        return size  # ~10x faster than PIL's open, which matters for 5000-image datasets
    try:
        with Image.open(path) as img:
            w, h = img.size
    except FileNotFoundError:
        raise ShiftbenchError(
            f"{path}: file not found; check the dataset root and layout"
        ) from None
    except (UnidentifiedImageError, OSError) as exc:
        raise ShiftbenchError(
            f"{path}: unreadable image ({exc.__class__.__name__}); replace or remove the file"
        ) from None
    return h, w


def read_image(path: str | Path, size: int | None = None) -> np.ndarray:
    """Read an image as RGB ``uint8 [H, W, 3]``; ``size`` resizes to a square (bilinear)."""
    img = _open(path).convert("RGB")
    if size is not None and img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR)
    return np.asarray(img, dtype=np.uint8).copy()


def read_mask(
    path: str | Path | None, size: int | None = None, shape: tuple[int, int] | None = None
) -> np.ndarray:
    """Read a mask as ``uint8 [H, W]`` in {0, 255} (non-zero is anomalous).

    ``path=None`` gives an empty mask of ``(size, size)`` or ``shape``. Resizing is
    nearest-neighbour so the mask stays binary.
    """
    path = as_path(path)
    if path is None:
        if size is not None:
            return np.zeros((size, size), np.uint8)
        if shape is None:
            raise ValueError("read_mask(None) needs size or shape")
        return np.zeros(shape, np.uint8)
    img = _open(path).convert("L")
    if size is not None and img.size != (size, size):
        img = img.resize((size, size), Image.NEAREST)
    return np.where(np.asarray(img) > 0, 255, 0).astype(np.uint8)


def write_image(path: str | Path, array: np.ndarray) -> None:
    """Write an RGB or grey ``uint8`` array as PNG (lossless), creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(array)).save(path, format="PNG", compress_level=1)
