"""Image-level metrics against scikit-learn and brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from shiftbench.errors import ShiftbenchError
from shiftbench.metrics import (
    MetricInputError,
    f1_max,
    f1_optimal_threshold,
    image_auprc,
    image_auroc,
    threshold_metrics,
)


def _cases():
    rng = np.random.default_rng(7)
    for n, levels in [(30, None), (57, 4), (200, 12), (9, 2)]:
        y = rng.integers(0, 2, n)
        y[:2] = [0, 1]
        s = rng.normal(size=n) + 0.8 * y
        if levels:  # heavy ties
            s = np.round(s * levels / 4) / levels
        yield y, s


def _brute_best_f1(y, s):
    """Max F1 over every distinct score with sklearn; argmax-first = smallest threshold."""
    thresholds = np.unique(s)
    f1s = [f1_score(y, (s >= t).astype(int), zero_division=0.0) for t in thresholds]
    i = int(np.argmax(f1s))
    return thresholds[i], f1s[i]


@pytest.mark.parametrize("case", list(range(4)))
def test_ranking_metrics_match_sklearn(case):
    y, s = list(_cases())[case]
    assert image_auroc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert image_auprc(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)


@pytest.mark.parametrize("case", list(range(4)))
def test_f1_optimal_threshold_matches_brute_force(case):
    y, s = list(_cases())[case]
    thr, f1 = f1_optimal_threshold(y, s)
    ref_thr, ref_f1 = _brute_best_f1(y, s)
    assert thr == ref_thr
    assert f1 == pytest.approx(ref_f1, abs=1e-12)
    assert f1_max(y, s) == f1
    # The threshold is a score value, so the rule reproduces the F1 exactly.
    assert threshold_metrics(y, s, thr)["f1"] == f1
    assert f1_score(y, s >= thr) == pytest.approx(f1, abs=1e-15)


def test_f1_tie_picks_smallest_threshold():
    # threshold 0.9: TP 1, FP 0 -> 2/3; threshold 0.5: TP 2, FP 2 -> 4/6 = 2/3.
    y = np.array([1, 1, 0, 0, 0])
    s = np.array([0.9, 0.5, 0.7, 0.6, 0.1])
    thr, f1 = f1_optimal_threshold(y, s)
    assert (thr, f1) == (0.5, pytest.approx(2 / 3, abs=1e-15))
    # Same ties, any order of the inputs.
    perm = np.array([3, 0, 4, 2, 1])
    assert f1_optimal_threshold(y[perm], s[perm]) == (thr, f1)


def test_f1_threshold_is_an_anomalous_score():
    y = np.array([0, 0, 1, 1])
    s = np.array([0.1, 0.2, 0.8, 0.9])
    assert f1_optimal_threshold(y, s) == (0.8, 1.0)


@pytest.mark.parametrize("case", list(range(4)))
def test_threshold_metrics_match_sklearn(case):
    y, s = list(_cases())[case]
    for t in (np.median(s), s.min(), s.max(), 10.0):
        got = threshold_metrics(y, s, t)
        pred = (s >= t).astype(int)
        tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
        assert (got["tp"], got["fp"], got["tn"], got["fn"]) == (tp, fp, tn, fn)
        assert got["recall"] == pytest.approx(recall_score(y, pred), abs=1e-15)
        assert got["accuracy"] == pytest.approx(accuracy_score(y, pred), abs=1e-15)
        assert got["f1"] == pytest.approx(f1_score(y, pred, zero_division=0.0), abs=1e-15)
        if pred.any():
            assert got["precision"] == pytest.approx(precision_score(y, pred), abs=1e-15)
        else:  # nothing flagged: precision undefined -> NaN, not sklearn's 0
            assert math.isnan(got["precision"])


def test_bool_labels_and_lists_accepted():
    y = [True, False, True, False]
    s = [0.9, 0.1, 0.4, 0.5]
    assert image_auroc(y, s) == pytest.approx(0.75)
    assert image_auroc([1, 0, 1, 0], s) == image_auroc(y, s)


@pytest.mark.parametrize("label", [0, 1])
def test_one_class_warns_and_returns_nan(label):
    y = np.full(5, label)
    s = np.arange(5.0)
    for fn in (image_auroc, image_auprc, f1_max):
        with pytest.warns(UndefinedMetricWarning, match="undefined"):
            assert math.isnan(fn(y, s))
    with pytest.warns(UndefinedMetricWarning):
        thr, f1 = f1_optimal_threshold(y, s)
    assert math.isnan(thr) and math.isnan(f1)
    # Calibrated on one class -> NaN threshold -> NaN metrics, not a crash.
    with pytest.warns(UndefinedMetricWarning, match="NaN"):
        out = threshold_metrics(y, s, thr)
    assert all(math.isnan(v) for v in out.values())


def test_threshold_metrics_without_anomalies_has_nan_recall_and_f1():
    out = threshold_metrics([0, 0, 0], [0.1, 0.5, 0.9], 0.5)
    assert (out["tp"], out["fp"], out["tn"], out["fn"]) == (0, 2, 1, 0)
    assert math.isnan(out["recall"]) and math.isnan(out["f1"])
    assert out["precision"] == 0.0 and out["accuracy"] == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    ("labels", "scores", "match"),
    [
        ([0, 1, 1], [0.1, np.nan, 0.3], "NaN"),
        ([0, 1, 1], [0.1, np.inf, 0.3], "NaN or infinite"),
        ([0, 1], [0.1, 0.2, 0.3], "different lengths"),
        ([0, 2, 1], [0.1, 0.2, 0.3], "0 \\(normal\\) or 1"),
        ([[0, 1]], [[0.1, 0.2]], "1-D"),
        ([], [], "empty"),
    ],
)
def test_bad_inputs_raise(labels, scores, match):
    for fn in (image_auroc, image_auprc, f1_optimal_threshold, f1_max):
        with pytest.raises(MetricInputError, match=match) as info:
            fn(labels, scores)
        assert isinstance(info.value, ShiftbenchError) and isinstance(info.value, ValueError)
        assert fn.__name__ in str(info.value)


def test_threshold_compared_exactly_for_float32_scores():
    s = np.array([0.1, 0.9, 0.0], dtype=np.float32)  # float32(0.1) > 0.1
    y = np.array([1, 1, 0])
    assert threshold_metrics(y, s, 0.1)["tp"] == 2
    s16 = s.astype(np.float16)  # float16(0.1) < 0.1
    assert threshold_metrics(y, s16, 0.1)["tp"] == 1
