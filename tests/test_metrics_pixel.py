"""Pixel AUROC and F1 against scikit-learn on the flattened pixels."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import f1_score, roc_auc_score

from shiftbench.errors import ShiftbenchError
from shiftbench.metrics import (
    MetricInputError,
    pixel_auroc,
    pixel_f1,
    pixel_f1_optimal_threshold,
)


def _case(seed, levels=None, dtype=np.float32, n=4, size=16):
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, size, size), np.uint8)
    for i in range(n - 1):
        r, c = rng.integers(0, size - 4, 2)
        masks[i, r : r + rng.integers(1, 5), c : c + rng.integers(1, 5)] = 255
    maps = rng.normal(size=masks.shape) + (masks > 0)
    if levels:
        maps = np.round(maps * levels) / levels
    return maps.astype(dtype), masks


@pytest.mark.parametrize("seed", range(5))
def test_pixel_auroc_matches_sklearn(seed):
    levels = [None, 2, 10, None, 1][seed]
    maps, masks = _case(seed, levels=levels, dtype=[np.float32, np.float64, np.float16][seed % 3])
    ref = roc_auc_score(masks.ravel() > 0, maps.ravel().astype(np.float64))
    assert pixel_auroc(maps, masks) == pytest.approx(ref, abs=1e-12)


def test_pixel_auroc_hand_ties():
    # anomalous {1, 2}, normal {0, 1}: pairs (1>0) (1=1: 1/2) (2>0) (2>1) -> 3.5 / 4.
    maps = np.array([[[1.0, 2.0, 0.0, 1.0]]])
    masks = np.array([[[1, 1, 0, 0]]], np.uint8)
    assert pixel_auroc(maps, masks) == 0.875


@pytest.mark.parametrize("seed", range(4))
def test_pixel_f1_matches_sklearn(seed):
    maps, masks = _case(seed, levels=[None, 3][seed % 2])
    y = masks.ravel() > 0
    for t in (0.0, 0.7, float(maps.max()), float(maps.min())):
        ref = f1_score(y, maps.ravel() >= t, zero_division=0.0)
        assert pixel_f1(maps, masks, t) == pytest.approx(ref, abs=1e-15)


@pytest.mark.parametrize("seed", range(4))
def test_pixel_f1_optimal_threshold_matches_brute_force(seed):
    maps, masks = _case(seed, levels=[None, 3][seed % 2], size=16)
    y = masks.ravel() > 0
    flat = maps.ravel()
    thresholds = np.unique(flat)
    # Brute force: the F1 definition evaluated at every distinct score.
    flagged = flat[None, :] >= thresholds[:, None]
    tp = (flagged & y).sum(1)
    f1s = 2 * tp / (flagged.sum(1) + y.sum())
    i = int(np.argmax(f1s))  # first = smallest threshold among ties
    thr, f1 = pixel_f1_optimal_threshold(maps, masks)
    assert thr == float(thresholds[i])
    assert f1 == pytest.approx(f1s[i], abs=1e-15)
    assert f1 == pytest.approx(f1_score(y, flat >= thr), abs=1e-15)
    assert pixel_f1(maps, masks, thr) == f1  # the rule reproduces the calibration exactly


def test_masks_0_255_bool_and_0_1_agree():
    maps, masks = _case(3, levels=4)
    for m in (masks > 0, (masks > 0).astype(np.uint8), masks):
        assert pixel_auroc(maps, m) == pixel_auroc(maps, masks)
        assert pixel_f1(maps, m, 0.5) == pixel_f1(maps, masks, 0.5)


def test_nan_threshold_warns_and_returns_nan():
    maps, masks = _case(0)
    with pytest.warns(UndefinedMetricWarning):
        assert math.isnan(pixel_f1(maps, masks, float("nan")))


@pytest.mark.parametrize(
    ("maps", "masks", "match"),
    [
        (np.zeros((2, 4, 4)), np.zeros((2, 4, 4)), "no anomalous pixel"),
        (np.zeros((2, 4, 4)), np.full((2, 4, 4), 255), "no normal pixel"),
        (np.full((1, 4, 4), np.nan), np.eye(4)[None], "map 0 contains NaN"),
        (np.zeros((2, 4, 4)), np.zeros((3, 4, 4)), "differ in shape"),
    ],
)
def test_undefined_inputs_raise(maps, masks, match):
    calls = [pixel_auroc, pixel_f1_optimal_threshold]
    if "normal pixel" not in match:  # F1 at a fixed threshold needs no normal pixel
        calls.append(lambda a, b: pixel_f1(a, b, 0.5))
    for fn in calls:
        with pytest.raises(MetricInputError, match=match) as info:
            fn(maps, masks)
        assert isinstance(info.value, ShiftbenchError) and isinstance(info.value, ValueError)


def test_pixel_auroc_memory_is_about_one_copy():
    maps, masks = _case(1, n=8, size=128)
    tracemalloc.start()
    pixel_auroc(maps, masks)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1.5 * maps.nbytes


def test_threshold_compared_exactly_for_low_precision_maps():
    # float16(0.1) = 0.0999755859375 < 0.1: not flagged, although numpy would round a Python
    # float threshold to float16 before comparing.
    maps = np.array([[[np.float16(0.1), 0.5, 0.0, 0.0]]], dtype=np.float16)
    masks = np.array([[[1, 1, 0, 0]]], np.uint8)
    ref = f1_score(masks.ravel(), maps.ravel().astype(np.float64) >= 0.1)
    assert ref == pytest.approx(2 / 3)
    assert pixel_f1(maps, masks, 0.1) == pytest.approx(ref, abs=1e-15)


def test_pixel_f1_optimal_threshold_memory_is_about_one_copy():
    maps, masks = _case(2, n=8, size=128)
    tracemalloc.start()
    pixel_f1_optimal_threshold(maps, masks)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1.5 * maps.nbytes
