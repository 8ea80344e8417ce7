"""PRO curve and AUPRO against a brute-force loop over thresholds and hand-worked cases.

The reference below is written from the definition, independently of the implementation:
OpenCV components (not scipy), a Python loop over every distinct score, and the official
MVTec AD ``trapezoid`` (bisect + linear interpolation at the limit).
"""

from __future__ import annotations

from bisect import bisect

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shiftbench.errors import ShiftbenchError
from shiftbench.metrics import MetricInputError, aupro, pro_curve


def _brute_curve(maps, masks):
    regions = []
    for i, mask in enumerate(masks):
        n, lab = cv2.connectedComponents((mask != 0).astype(np.uint8), connectivity=8)
        regions += [(i, lab == r) for r in range(1, n)]
    normal = masks == 0
    xs, ys = [0.0], [0.0]
    for t in sorted(set(maps.ravel().tolist()), reverse=True):
        flagged = maps >= t
        xs.append(np.count_nonzero(flagged & normal) / np.count_nonzero(normal))
        ys.append(
            np.mean([np.count_nonzero(flagged[i] & r) / np.count_nonzero(r) for i, r in regions])
        )
    return np.array(xs + [1.0]), np.array(ys + [1.0])


def _official_trapezoid(x, y, x_max):
    """``generic_util.trapezoid`` of the MVTec AD evaluation code."""
    correction = 0.0
    if x_max not in x:
        ins = bisect(x, x_max)
        assert 0 < ins < len(x)
        y_interp = y[ins - 1] + (y[ins] - y[ins - 1]) * (x_max - x[ins - 1]) / (x[ins] - x[ins - 1])
        correction = 0.5 * (y_interp + y[ins - 1]) * (x_max - x[ins - 1])
    mask = x <= x_max
    x, y = x[mask], y[mask]
    return np.sum(0.5 * (y[1:] + y[:-1]) * (x[1:] - x[:-1])) + correction


def _brute_aupro(maps, masks, limit=0.3):
    x, y = _brute_curve(maps, masks)
    return _official_trapezoid(x, y, limit) / limit


def _random_case(seed, n=3, size=12, levels=None, dtype=np.float64):
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, size, size), np.uint8)
    for i in range(n - 1):  # last image stays fully normal
        for _ in range(rng.integers(1, 4)):
            r, c = rng.integers(0, size - 3, 2)
            h, w = rng.integers(1, 5, 2)
            masks[i, r : r + h, c : c + w] = 255
    maps = rng.normal(size=masks.shape) + 1.2 * (masks > 0)
    if levels:
        maps = np.round(maps * levels / 3)
    return maps.astype(dtype), masks


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("limit", [0.3, 0.05, 0.29, 1.0])
def test_aupro_matches_brute_force(seed, limit):
    maps, masks = _random_case(seed, levels=[None, 3, 8][seed % 3])
    assert aupro(maps, masks, fpr_limit=limit) == pytest.approx(
        _brute_aupro(maps, masks, limit), abs=1e-9
    )


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.int64])
def test_aupro_dtypes(dtype):
    maps, masks = _random_case(11, levels=5)
    maps = maps.astype(dtype)
    assert aupro(maps, masks) == pytest.approx(
        _brute_aupro(maps.astype(np.float64), masks), abs=1e-9
    )


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    levels=st.sampled_from([None, 1, 2, 4]),
    limit=st.sampled_from([0.3, 0.1, 0.5, 0.9]),
)
def test_aupro_property(seed, levels, limit):
    maps, masks = _random_case(seed, n=2, size=7, levels=levels)
    if not (masks > 0).any():
        return
    assert aupro(maps, masks, limit) == pytest.approx(_brute_aupro(maps, masks, limit), abs=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_pro_curve_matches_brute_force(seed):
    maps, masks = _random_case(seed, levels=[None, 3][seed % 2])
    fpr, pro, thr = pro_curve(maps, masks)
    x, y = _brute_curve(maps, masks)
    np.testing.assert_allclose(fpr, x, atol=1e-12, rtol=0)
    np.testing.assert_allclose(pro, y, atol=1e-12, rtol=0)
    assert thr[0] == np.inf and thr[-1] == -np.inf
    np.testing.assert_array_equal(thr[1:-1], np.unique(maps)[::-1])
    # Integrating the curve with the official rule gives aupro.
    assert _official_trapezoid(fpr, pro, 0.3) / 0.3 == pytest.approx(aupro(maps, masks), abs=1e-12)


def test_hand_constant_perfect_inverted():
    _, masks = _random_case(3)
    anomalous = (masks > 0).astype(np.float32)
    assert aupro(np.full(masks.shape, 0.7), masks) == pytest.approx(0.15, abs=1e-12)
    assert aupro(anomalous, masks) == pytest.approx(1.0, abs=1e-12)
    assert aupro(-anomalous, masks) == pytest.approx(0.0, abs=1e-12)
    # Constant map at another limit: area of the diagonal / limit = limit / 2.
    assert aupro(np.zeros(masks.shape), masks, fpr_limit=0.6) == pytest.approx(0.3, abs=1e-12)


def test_hand_ring_with_hole():
    # 6x6 image; the ring is the border of rows/cols 1..4 (12 px, one region); its 2x2 hole
    # is normal. Hole scores 1.0, ring 0.5, the rest 0. Normal pixels: 36 - 12 = 24.
    # Curve: (0,0) (4/24,0) (4/24,1) (1,1) -> area to 0.3 = 0.3 - 1/6; / 0.3 = 4/9.
    mask = np.zeros((6, 6), np.uint8)
    mask[1:5, 1:5] = 1
    mask[2:4, 2:4] = 0
    score = np.where(mask > 0, 0.5, 0.0)
    score[2:4, 2:4] = 1.0
    assert aupro(score[None], mask[None]) == pytest.approx(4 / 9, abs=1e-12)
    # Filling the hole would change both the FPR and the region.
    filled = mask.copy()
    filled[2:4, 2:4] = 1
    assert aupro(score[None], filled[None]) != pytest.approx(4 / 9, abs=1e-3)


def test_hand_regions_touching_at_a_corner_are_one_region():
    # A 2x2 square (score 1.0) and a 3x3 square (score 0.5) touch diagonally: one 13-px
    # region with 8-connectivity. 6 of the 51 normal pixels score 0.75.
    # Curve: (0,0) (0,4/13) (6/51,4/13) (6/51,1) (1,1).
    mask = np.zeros((8, 8), np.uint8)
    mask[1:3, 1:3] = 1
    mask[3:6, 3:6] = 1
    score = np.where(mask > 0, 0.5, 0.0)
    score[1:3, 1:3] = 1.0
    score[7, :6] = 0.75
    expected = (4 / 13 * 6 / 51 + (0.3 - 6 / 51)) / 0.3
    assert aupro(score[None], mask[None]) == pytest.approx(expected, abs=1e-12)
    fpr, pro, _ = pro_curve(score[None], mask[None])
    np.testing.assert_allclose(fpr, [0, 0, 6 / 51, 6 / 51, 1, 1], atol=1e-15)
    np.testing.assert_allclose(pro, [0, 4 / 13, 4 / 13, 1, 1, 1], atol=1e-15)


def test_regions_are_weighted_equally_across_images():
    # Image 0: a 1-px region fully detected; image 1: a 16-px region missed. PRO at the top
    # threshold is 0.5 (mean over regions), not 1/17 (pooled pixels).
    masks = np.zeros((2, 8, 8), np.uint8)
    masks[0, 0, 0] = 1
    masks[1, 2:6, 2:6] = 1
    maps = np.zeros((2, 8, 8))
    maps[0, 0, 0] = 1.0
    fpr, pro, thr = pro_curve(maps, masks)
    assert thr[1] == 1.0 and fpr[1] == 0.0 and pro[1] == pytest.approx(0.5, abs=1e-15)


def test_masks_0_255_bool_and_0_1_agree():
    maps, masks = _random_case(5, levels=4)
    ref = aupro(maps, masks)
    assert aupro(maps, (masks > 0).astype(np.uint8)) == ref
    assert aupro(maps, masks > 0) == ref
    assert ref == pytest.approx(_brute_aupro(maps, masks), abs=1e-9)


def test_heavy_ties_two_levels():
    maps, masks = _random_case(9, levels=1)
    assert len(np.unique(maps)) <= 5
    assert aupro(maps, masks) == pytest.approx(_brute_aupro(maps, masks), abs=1e-9)


def test_fpr_exactly_at_limit():
    # One 4x5 image, the top two rows (10 px) are one region: 5 px score 0.95, 5 px 0.05.
    # Normal pixels (10): 3 at 0.9, 7 at 0.1 -> the point at 0.9 has FPR 3/10 == 0.3 exactly.
    # Curve: (0,0) (0,.5) (.3,.5) (1,.5) (1,1) -> area .15, AUPRO 0.5, no interpolation.
    mask = np.zeros((4, 5), np.uint8)
    mask[:2] = 255
    score = np.empty((4, 5))
    score[:2] = np.r_[[0.95] * 5, [0.05] * 5].reshape(2, 5)
    score[2:] = np.r_[[0.9] * 3, [0.1] * 7].reshape(2, 5)
    assert 3 / 10 == 0.3
    assert aupro(score[None], mask[None]) == pytest.approx(0.5, abs=1e-12)
    # Just below the exact point the crossing segment is interpolated: area .5 * .29 / .29.
    assert aupro(score[None], mask[None], fpr_limit=0.29) == pytest.approx(0.5, abs=1e-12)
    # Just above it, the segment from (.3,.5) to (1,.5) adds .5 * .01.
    assert aupro(score[None], mask[None], fpr_limit=0.31) == pytest.approx(0.155 / 0.31)


def test_fpr_limit_interpolates_linearly():
    # One normal pixel in 10 per level: a straight PRO ramp between two curve points.
    mask = np.zeros((1, 11), np.uint8)
    mask[0, 10] = 1
    score = np.r_[np.arange(10) / 10, 0.45][None, None].reshape(1, 1, 11)
    # Normal scores .0..0.9; anomalous .45 -> flagged once threshold <= .45 (FPR .5 -> PRO 1).
    # Points: (.1,0)...(.5,0), (.5,1), (.6,1)... so AUPRO at 0.3 is 0, at 0.55 (0.05 * 1)/.55.
    assert aupro(score, mask[None]) == pytest.approx(0.0, abs=1e-12)
    assert aupro(score, mask[None], 0.55) == pytest.approx(0.05 / 0.55, abs=1e-12)
    assert aupro(score, mask[None], 0.55) == pytest.approx(
        _brute_aupro(score, mask[None], 0.55), abs=1e-12
    )


@pytest.mark.parametrize(
    ("maps", "masks", "match"),
    [
        (np.zeros((2, 4, 4)), np.zeros((2, 4, 4)), "no anomalous region"),
        (np.zeros((2, 4, 4)), np.ones((2, 4, 4)), "no normal pixel"),
        (np.full((2, 4, 4), np.nan), np.eye(4)[None].repeat(2, 0), "map 0 contains NaN"),
        (np.zeros((2, 4, 4)), np.zeros((2, 4, 5)), "differ in shape"),
        (np.zeros((4,)), np.zeros((4,)), r"\[N, H, W\]"),
    ],
)
def test_undefined_inputs_raise(maps, masks, match):
    for fn in (aupro, pro_curve):
        with pytest.raises(MetricInputError, match=match) as info:
            fn(maps, masks)
        assert isinstance(info.value, ShiftbenchError) and isinstance(info.value, ValueError)
    with pytest.raises(MetricInputError, match="fpr_limit"):
        aupro(np.zeros((1, 4, 4)), np.eye(4)[None], fpr_limit=0.0)


@pytest.mark.parametrize("anomalous_fraction", [0.03, 0.5])
def test_aupro_peak_memory_below_input_size_multiple(anomalous_fraction):
    import tracemalloc

    rng = np.random.default_rng(0)
    maps = rng.random((8, 128, 128), dtype=np.float32)
    masks = (rng.random(maps.shape) < anomalous_fraction).astype(np.uint8) * 255
    input_bytes = maps.nbytes + masks.nbytes
    tracemalloc.start()
    aupro(maps, masks)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 3 * input_bytes
