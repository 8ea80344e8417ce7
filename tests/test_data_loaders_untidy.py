"""Real images are untidy: sizes that differ within a category, greyscale JPEGs, 16-bit
PNGs and masks that are not strictly binary all read through shiftbench.data.io; a mask
whose size differs from its image stays an error naming both files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shiftbench.data import load_dataset, read_image, read_mask
from shiftbench.data.cache import read_batch
from shiftbench.data.io import binarize_mask
from shiftbench.errors import ShiftbenchError


def _save(path: Path, array: np.ndarray, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)
    return path


def _square(size=(32, 32), value=255) -> np.ndarray:
    m = np.zeros(size, np.uint8)
    m[8:20, 10:24] = value
    return m


def _untidy_tree(root: Path) -> Path:
    """One MVTec-style category whose files are all different: sizes, a greyscale JPEG,
    a 16-bit PNG, an RGB JPEG, and masks in JPEG, 16-bit and 0/1 form."""
    rng = np.random.default_rng(0)
    cat = root / "tiles"
    _save(cat / "train/good/000.png", rng.integers(0, 255, (32, 48, 3), dtype=np.uint8))
    _save(cat / "train/good/001.jpg", rng.integers(0, 255, (40, 30), dtype=np.uint8))  # grey JPEG
    _save(cat / "train/good/002.png", (rng.integers(0, 65535, (24, 24))).astype(np.uint16))
    _save(cat / "test/good/000.jpg", rng.integers(0, 255, (28, 36, 3), dtype=np.uint8))
    _save(cat / "test/crack/000.jpg", rng.integers(0, 255, (32, 32), dtype=np.uint8))
    _save(cat / "ground_truth/crack/000_mask.jpg", _square(), quality=40)  # JPEG greys
    _save(cat / "test/crack/001.png", rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    _save(cat / "ground_truth/crack/001_mask.png", _square().astype(np.uint16) * 257)  # 16-bit
    _save(cat / "test/crack/002.png", rng.integers(0, 255, (20, 26, 3), dtype=np.uint8))
    _save(cat / "ground_truth/crack/002_mask.png", _square((20, 26), value=1))  # 0/1
    return root


def test_a_category_of_untidy_files_loads_and_reads(tmp_path, monkeypatch):
    monkeypatch.setenv("SHIFTBENCH_CACHE", str(tmp_path / "cache"))
    table = load_dataset("mvtec", _untidy_tree(tmp_path / "ds"))  # validate=True reads headers
    assert len(table) == 7 and (table["label"] == 1).sum() == 3
    images = read_batch(table["image_path"].tolist(), 16, cache=False)
    assert images.shape == (7, 16, 16, 3) and images.dtype == np.uint8
    masks = read_batch(table["mask_path"].tolist(), 16, kind="mask", cache=False)
    assert masks.shape == (7, 16, 16) and set(np.unique(masks)) == {0, 255}
    anomalous = masks[(table["label"] == 1).to_numpy()]
    assert (anomalous.reshape(3, -1) > 0).any(axis=1).all()  # every mask kept its defect


def test_greyscale_jpeg_reads_as_three_equal_channels(tmp_path):
    grey = np.tile(np.linspace(0, 255, 32).astype(np.uint8), (16, 1))
    path = _save(tmp_path / "g.jpg", grey, quality=95)
    assert Image.open(path).mode == "L"
    image = read_image(path)
    assert image.shape == (16, 32, 3)
    assert (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all()
    assert np.abs(image[..., 0].astype(int) - grey).max() <= 4  # JPEG at quality 95


def test_16bit_png_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 255, 256, 32767, 32768, 40000, 65535]], np.uint16)
    path = _save(tmp_path / "i16.png", values)
    assert Image.open(path).mode == "I;16"
    got = read_image(path)[0, :, 0]
    # the high byte, v >> 8 (Pillow's own conversion would clip: 255 for all but the 0)
    np.testing.assert_array_equal(got, [0, 0, 1, 127, 128, 156, 255])
    # a 32-bit integer image holding 8-bit values keeps them
    small = tmp_path / "i32.tif"
    Image.fromarray(np.array([[0, 7, 200]], np.int32), "I").save(small)
    np.testing.assert_array_equal(read_image(small)[0, :, 0], [0, 7, 200])


def test_jpeg_mask_is_binarised_above_127(tmp_path):
    square = _square()
    path = _save(tmp_path / "m.jpg", square, quality=30)
    raw = np.asarray(Image.open(path))
    noisy = (raw > 0) & (raw <= 127)
    assert noisy.any()  # the JPEG made greys that "non-zero" would call anomalous
    mask = read_mask(path)
    assert set(np.unique(mask)) <= {0, 255}
    np.testing.assert_array_equal(mask, np.where(raw > 127, 255, 0))
    assert (mask != square).mean() < 0.02  # the square, give or take its edge
    assert not mask[noisy].any()


def test_16bit_and_id_masks(tmp_path):
    m16 = np.zeros((4, 4), np.uint16)
    m16[0, :] = [65535, 40000, 32768, 32767]  # high bytes 255, 156, 128, 127
    m16[1, 0] = 1000  # high byte 3: below half of the range
    out = read_mask(_save(tmp_path / "m16.png", m16))
    np.testing.assert_array_equal(out[0], [255, 255, 255, 0])
    assert out[1:].sum() == 0
    ids = np.zeros((4, 4), np.uint8)
    ids[0, 0], ids[1, 1], ids[2, 2] = 1, 2, 3  # defect ids, all below 128
    out = read_mask(_save(tmp_path / "ids.png", ids))
    assert set(zip(*np.nonzero(out), strict=True)) == {(0, 0), (1, 1), (2, 2)}
    # the rule as a function: arrays, colour masks, a {0, 255} mask unchanged
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[0, 0] = (255, 255, 255)
    np.testing.assert_array_equal(binarize_mask(rgb), [[255, 0], [0, 0]])
    square = _square()
    np.testing.assert_array_equal(binarize_mask(square), square)


def test_mask_binarised_before_resizing_keeps_reading_the_same(tmp_path):
    """A {0, 255} mask reads exactly as the former rule (non-zero) read it, at any size."""
    rng = np.random.default_rng(1)
    m = np.where(rng.random((37, 53)) > 0.7, 255, 0).astype(np.uint8)
    path = _save(tmp_path / "m.png", m)
    for size in (None, 16, 64):
        img = Image.open(path).convert("L")
        if size:
            img = img.resize((size, size), Image.NEAREST)
        former = np.where(np.asarray(img) > 0, 255, 0).astype(np.uint8)
        np.testing.assert_array_equal(read_mask(path, size=size), former)


def test_mask_of_another_size_names_both_files(tmp_path):
    root = _untidy_tree(tmp_path / "ds")
    _save(root / "tiles/ground_truth/crack/001_mask.png", _square((30, 32)))
    with pytest.raises(ShiftbenchError) as err:
        load_dataset("mvtec", root)
    msg = str(err.value)
    assert "001_mask.png: mask size 32x30 differs from image" in msg
    assert "test/crack/001.png (32x32)" in msg and "\n" not in msg


def test_read_image_from_bytes_of_a_16bit_png():
    from shiftbench.data.io import decode_image_bytes, image_to_array

    buf = io.BytesIO()
    Image.fromarray(np.full((2, 2), 40000, np.uint16)).save(buf, format="PNG")
    img = decode_image_bytes(buf.getvalue())  # an upload in the app goes this way
    assert (image_to_array(img) == 40000 >> 8).all()
