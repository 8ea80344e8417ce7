"""Reading and writing images and masks, with errors that name the file.

Real datasets are untidy, and every reader here takes them as they come:

* **sizes**: images of one category may differ in size; ``size`` resizes each to a square,
  so a batch stacks (a mask must still have its own image's size: see
  :func:`shiftbench.data.datasets.validate_samples`, whose error names both files);
* **modes**: greyscale (``L``, also greyscale JPEGs), palette, RGBA, CMYK and bilevel files
  become RGB through Pillow; **16-bit** files (``I;16``, or ``I`` with values above 255)
  are scaled to 8 bits by keeping the high byte, ``v >> 8`` (65535 -> 255, 32768 -> 128),
  which is what Pillow itself does with 16-bit colour PNGs (it would otherwise clip a
  16-bit grey image to white);
* **masks** that are not strictly binary (JPEG-like greys, anti-aliased edges, 16-bit
  masks, masks that store defect ids 1, 2, ...) are binarised by :func:`binarize_mask`.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from shiftbench.errors import ShiftbenchError


def path_str_or_none(value) -> str | None:
    """A path from a sample table as ``str``, or None (pandas stores a missing path as NaN)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return str(value)


#: images of more pixels are refused from their header, before decoding (a decompression
#: bomb: a few hundred KB that decode to gigabytes); PIL itself refuses beyond this too
MAX_PIXELS = 2 * Image.MAX_IMAGE_PIXELS


def _too_many_pixels(name, size: tuple[int, int] | None, limit: int) -> ShiftbenchError:
    dims = f"{size[0]}x{size[1]} px" if size else "its size"
    return ShiftbenchError(
        f"{name}: image of {dims} is over the limit of {limit:,} pixels "
        "(a decompression bomb?); refused without decoding, replace or remove the file"
    )


def _open(path: str | Path, max_pixels: int | None = None) -> Image.Image:
    path = Path(path)
    if not path.is_file():
        raise ShiftbenchError(f"{path}: file not found; check the dataset root and layout")
    return _decode(path, path, max_pixels)


def _decode(source, name, max_pixels: int | None = None) -> Image.Image:
    """Open ``source`` (a path or a binary file), check its pixel count from the header,
    then decode it; every failure is one ShiftbenchError line naming ``name``."""
    limit = MAX_PIXELS if max_pixels is None else min(int(max_pixels), MAX_PIXELS)
    try:
        img = Image.open(source)
        w, h = img.size
        if w * h > limit:
            raise _too_many_pixels(name, (w, h), limit)
        img.load()
    except Image.DecompressionBombError:
        if isinstance(source, Path):
            size = _png_size(source)
        else:  # a PNG's size from its IHDR chunk, for the message
            head = source.getvalue()[:24]
            png = head[:8] == _PNG_SIGNATURE and head[12:16] == b"IHDR" and len(head) == 24
            size = struct.unpack(">II", head[16:24])[::-1] if png else None
        raise _too_many_pixels(name, size and (size[1], size[0]), limit) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ShiftbenchError(
            f"{name}: unreadable image ({exc.__class__.__name__}); replace or remove the file"
        ) from None
    return img


def decode_image_bytes(
    data: bytes, *, name: str = "upload", max_pixels: int | None = None
) -> Image.Image:
    """A decoded PIL image from encoded bytes (the format is read from the content, never
    from a file name); the pixel count is checked from the header before decoding."""
    import io

    return _decode(io.BytesIO(data), name, max_pixels)


#: Pillow modes of 16-bit (or wider integer) single-channel images
_WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def to_8bit(img: Image.Image) -> Image.Image:
    """A 16-bit single-channel image as 8-bit grey (``L``) by keeping the high byte
    (``v >> 8``); an ``I`` (32-bit) image whose values fit in 0..255 keeps them as they
    are. Any other image is returned unchanged."""
    if img.mode not in _WIDE_MODES:
        return img
    a = np.asarray(img)
    if img.mode == "I" and int(a.max(initial=0)) <= 255:
        a8 = np.clip(a, 0, 255)
    else:
        a8 = np.clip(a, 0, 65535).astype(np.uint32) >> 8
    return Image.fromarray(a8.astype(np.uint8), "L")


def image_to_array(img: Image.Image, size: int | None = None) -> np.ndarray:
    """A PIL image (any mode the readers accept: grey, 16-bit, RGBA, palette) as RGB
    ``uint8 [H, W, 3]``, resized to ``size`` x ``size`` like :func:`read_image`."""
    img = to_8bit(img).convert("RGB")
    if size is not None and img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR)
    return np.asarray(img, dtype=np.uint8).copy()


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


def center_crop(batch: np.ndarray, crop: int | None) -> np.ndarray:
    """The central ``crop`` x ``crop`` pixels of every image of a batch: ``[N, H, W]``
    (masks) or ``[N, H, W, C]`` (images), so images and masks are cropped alike. ``None``
    returns ``batch`` unchanged. The offset is ``(H - crop) // 2`` (torchvision's
    ``CenterCrop`` rounding)."""
    if crop is None:
        return batch
    h, w = batch.shape[1], batch.shape[2]
    if not 0 < crop <= min(h, w):
        raise ValueError(f"center_crop: crop {crop} does not fit images of {h}x{w} px")
    top, left = (h - crop) // 2, (w - crop) // 2
    return np.ascontiguousarray(batch[:, top : top + crop, left : left + crop])


def read_image(path: str | Path, size: int | None = None, crop: int | None = None) -> np.ndarray:
    """Read an image as RGB ``uint8 [H, W, 3]``; ``size`` resizes to a square (bilinear),
    then ``crop`` keeps its central ``crop`` x ``crop`` pixels (:func:`center_crop`)."""
    image = image_to_array(_open(path), size)
    return image if crop is None else center_crop(image[None], crop)[0]


def read_mask(
    path: str | Path | None,
    size: int | None = None,
    shape: tuple[int, int] | None = None,
    crop: int | None = None,
) -> np.ndarray:
    """Read a mask as ``uint8 [H, W]`` in {0, 255}, binarised by :func:`binarize_mask`
    (greys above 127 are anomalous; a mask whose values all lie in 1..127 stores defect
    ids, and then every non-zero pixel is).

    ``path=None`` gives an empty mask of ``(size, size)`` or ``shape`` (``crop`` x ``crop``
    with ``crop``). The mask is binarised at its own size, then resized nearest-neighbour
    so it stays binary; ``crop`` then keeps the same central pixels as :func:`read_image`.
    """
    path = path_str_or_none(path)
    if path is None:
        if crop is not None:
            return np.zeros((crop, crop), np.uint8)
        if size is not None:
            return np.zeros((size, size), np.uint8)
        if shape is None:
            raise ValueError("read_mask(None) needs size or shape")
        return np.zeros(shape, np.uint8)
    mask = binarize_mask(_open(path))
    if size is not None and mask.shape != (size, size):
        mask = np.asarray(Image.fromarray(mask).resize((size, size), Image.NEAREST))
    return mask if crop is None else center_crop(mask[None], crop)[0]


def binarize_mask(mask: Image.Image | np.ndarray) -> np.ndarray:
    """A mask as ``uint8 [H, W]`` in {0, 255}: the rule every mask file is read with.

    The mask is first made 8-bit grey: 16-bit values keep their high byte (``v >> 8``,
    :func:`to_8bit`), colour and palette masks become their luminance (Pillow's ``L``).
    Then, if any pixel is above 127, a pixel is anomalous when it is **above 127**: half
    of the 8-bit range, so the JPEG-like greys around a black-and-white mask round to
    the nearer of the two. If no pixel is above 127 (0/1 masks, masks storing defect ids
    1, 2, ... as VisA's do), every **non-zero** pixel is anomalous. A {0, 255} mask reads
    the same under both branches."""
    if not isinstance(mask, Image.Image):
        mask = Image.fromarray(np.ascontiguousarray(mask))
    grey = np.asarray(to_8bit(mask).convert("L"))
    threshold = 127 if int(grey.max(initial=0)) > 127 else 0
    return np.where(grey > threshold, 255, 0).astype(np.uint8)


def resize_like_reader(
    array: np.ndarray, size: int, *, kind: str = "image", crop: int | None = None
) -> np.ndarray:
    """Resize a decoded (e.g. shifted full-resolution) image ``[H, W, 3]`` or mask
    ``[H, W]`` to ``size`` x ``size`` exactly as :func:`read_image` / :func:`read_mask` do
    (bilinear / nearest, masks kept in {0, 255}), then centre-crop to ``crop``."""
    img = Image.fromarray(np.ascontiguousarray(array))
    if kind == "image":
        out = image_to_array(img, size)
    else:
        if img.size != (size, size):
            img = img.resize((size, size), Image.NEAREST)
        out = np.where(np.asarray(img) > 0, 255, 0).astype(np.uint8)
    return out if crop is None else center_crop(out[None], crop)[0]


def write_image(path: str | Path, array: np.ndarray) -> None:
    """Write an RGB or grey ``uint8`` array as PNG (lossless), creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(array)).save(path, format="PNG", compress_level=1)
