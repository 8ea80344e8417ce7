"""Image-level metrics: threshold-free (AUROC, AUPRC) and at a threshold (F1 and friends).

Conventions shared by every function here:

- ``labels``: ``[N]`` 0 (normal) / 1 (anomalous), bool or integer;
  ``scores``: ``[N]`` real anomaly scores, higher = more anomalous, raw (never normalised).
- The decision rule is always ``score >= threshold`` -> anomalous.
- NaN or infinite scores, mismatched lengths and labels other than 0/1 raise
  :class:`~shiftbench.metrics.MetricInputError` (a ``ShiftbenchError`` and ``ValueError``).
- One class only (all normal or all anomalous) makes ranking metrics undefined: they warn
  with ``sklearn.exceptions.UndefinedMetricWarning`` and return NaN, like scikit-learn,
  so one odd category does not crash a whole study.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from shiftbench.metrics._checks import check_image_inputs, check_threshold, one_class
from shiftbench.metrics._core import best_f1_from_sorted

__all__ = ["image_auroc", "image_auprc", "f1_optimal_threshold", "f1_max", "threshold_metrics"]


def image_auroc(labels, scores) -> float:
    """Area under the ROC curve of image scores (``sklearn.metrics.roc_auc_score``).

    Returns a float in [0, 1]: the Mann-Whitney probability that an anomalous image scores
    above a normal one, ties counted 1/2. Undefined with only one class present: then NaN with
    an ``UndefinedMetricWarning``. This is shiftbench's one AUROC definition:
    ``shiftbench.analysis.stats.auroc`` (bootstrap, tables) calls this function and its
    weighted twin (:mod:`._weighted`) is tested equal to it on every resample.
    """
    y, s = check_image_inputs(labels, scores, "image_auroc")
    if one_class(y, "image_auroc"):
        return math.nan
    return float(roc_auc_score(y, s))


def image_auprc(labels, scores) -> float:
    """Average precision of image scores, anomalous = positive class.

    The step-wise sum ``sum_n (R_n - R_{n-1}) P_n`` of
    ``sklearn.metrics.average_precision_score`` (not the trapezoid, which is optimistic).
    NaN with a warning if only one class is present.
    """
    y, s = check_image_inputs(labels, scores, "image_auprc")
    if one_class(y, "image_auprc"):
        return math.nan
    return float(average_precision_score(y, s))


def f1_optimal_threshold(labels, scores) -> tuple[float, float]:
    """Calibrate a threshold on (validation) data: the one maximising F1.

    Returns ``(threshold, f1)``. The threshold is one of the anomalous scores themselves (not
    a midpoint), so the rule ``score >= threshold`` on the same data gives exactly the
    returned F1. Among thresholds with equal F1 (compared exactly as fractions) the smallest
    is chosen, i.e. the one with the highest recall -- the same choice as ``argmax`` over
    scikit-learn's ascending ``precision_recall_curve``. ``(nan, nan)`` with a warning if only
    one class is present.
    """
    y, s = check_image_inputs(labels, scores, "f1_optimal_threshold")
    if one_class(y, "f1_optimal_threshold"):
        return math.nan, math.nan
    return best_f1_from_sorted(np.sort(s[~y]), np.sort(s[y]))


def f1_max(labels, scores) -> float:
    """Best achievable F1 over all thresholds: an *oracle* when computed on test data.

    Equals ``f1_optimal_threshold(labels, scores)[1]``; report it separately from the F1 at
    the calibrated threshold, since it peeks at the test labels.
    """
    y, s = check_image_inputs(labels, scores, "f1_max")
    if one_class(y, "f1_max"):
        return math.nan
    return best_f1_from_sorted(np.sort(s[~y]), np.sort(s[y]))[1]


def threshold_metrics(labels, scores, threshold: float) -> dict[str, float]:
    """Confusion counts and rates of the decisions ``score >= threshold``.

    Returns a dict with ``f1, precision, recall, accuracy`` (floats) and ``tp, fp, tn, fn``
    (ints). A rate whose denominator is zero is NaN rather than scikit-learn's 0.0: precision
    when nothing is flagged, recall and F1 when there is no anomalous image (one class), so
    undefined values cannot be averaged in as zeros. F1 is ``2 TP / (2 TP + FP + FN)``. A NaN
    threshold (from a one-class calibration) warns and returns NaN for every entry.

    This ``f1`` is shiftbench's one definition of F1 at a threshold: undefined (NaN, never
    0.0) exactly when there is no anomalous image, whatever the false positives.
    ``shiftbench.analysis.stats.f1_decisions`` and ``shiftbench.analysis.stats.transfer`` use it.
    """
    y, s = check_image_inputs(labels, scores, "threshold_metrics")
    t = check_threshold(threshold, "threshold_metrics")
    if math.isnan(t):
        return dict.fromkeys(
            ("f1", "precision", "recall", "accuracy", "tp", "fp", "tn", "fn"), math.nan
        )
    # float64 scalar: exact comparison even for float16/32 scores (see pixel_f1).
    return _rates(y, s >= np.float64(t))


def _rates(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    tp = int(np.count_nonzero(pred & y))
    fp = int(np.count_nonzero(pred & ~y))
    fn = int(np.count_nonzero(~pred & y))
    tn = int(y.size - tp - fp - fn)
    return {
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fn else math.nan,
        "precision": tp / (tp + fp) if tp + fp else math.nan,
        "recall": tp / (tp + fn) if tp + fn else math.nan,
        "accuracy": (tp + tn) / y.size,
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
    }
