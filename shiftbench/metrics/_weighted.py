"""The image metrics of :mod:`.image` for many weighted resamples at once (for the bootstrap).

A bootstrap resample is integer weights ``[B, n]`` (how often each image was drawn); each
function here returns ``[B]`` values, each equal to the :mod:`.image` function on the resample
with its images repeated (checked against scikit-learn's ``sample_weight`` in the tests). The
definitions -- including when a value is undefined (NaN) -- are those of :mod:`.image`:

- :func:`weighted_auroc` = :func:`~shiftbench.metrics.image_auroc`: Mann-Whitney, ties 1/2;
  NaN when a resample lacks a class.
- :func:`weighted_average_precision` = :func:`~shiftbench.metrics.image_auprc`: step-wise;
  NaN when a resample lacks a class.
- :func:`weighted_f1` = ``threshold_metrics(...)["f1"]``: ``2 TP / (2 TP + FP + FN)``;
  NaN when a resample holds no anomalous image.

``labels`` are 0/1 integers, ``scores`` floats, both ``[n]``; inputs are not re-checked here.
"""

from __future__ import annotations

import numpy as np

__all__ = ["weighted_auroc", "weighted_average_precision", "weighted_f1"]


def _both_classes(labels: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``[B]`` bool: the resample holds at least one normal and one anomalous image."""
    return (weights[:, labels == 1].sum(axis=1) > 0) & (weights[:, labels == 0].sum(axis=1) > 0)


def weighted_auroc(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUROC of each weighted resample; NaN where a resample lacks a class."""
    # Mann-Whitney form with ties counted 1/2: for every positive, the weighted count of
    # negatives strictly below it plus half of those tied with it. Negatives are sorted
    # once; each resample only needs a cumulative sum over them -> O(B * n), no per-row sort.
    neg, pos = labels == 0, labels == 1
    out = np.full(weights.shape[0], np.nan)
    ok = _both_classes(labels, weights)
    if not ok.any():
        return out
    w = weights[ok]
    order = np.argsort(scores[neg], kind="stable")
    neg_sorted = scores[neg][order]
    w_neg = w[:, neg][:, order]
    cum = np.zeros((w.shape[0], neg_sorted.size + 1))
    np.cumsum(w_neg, axis=1, out=cum[:, 1:])
    lo = np.searchsorted(neg_sorted, scores[pos], side="left")
    hi = np.searchsorted(neg_sorted, scores[pos], side="right")
    below = cum[:, lo]
    tied = cum[:, hi] - below
    w_pos = w[:, pos]
    num = np.einsum("bj,bj->b", w_pos, below + 0.5 * tied)
    out[ok] = num / (cum[:, -1] * w_pos.sum(axis=1))
    return out


def weighted_average_precision(
    labels: np.ndarray, scores: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Average precision of each weighted resample; NaN where a resample lacks a class."""
    # Same step-wise definition as sklearn.metrics.average_precision_score:
    # AP = sum_k (R_k - R_{k-1}) P_k over distinct thresholds, ties form one threshold.
    out = np.full(weights.shape[0], np.nan)
    ok = _both_classes(labels, weights)
    if not ok.any():
        return out
    order = np.argsort(-scores, kind="stable")
    s, y, w = scores[order], labels[order], weights[ok][:, order]
    tp = np.cumsum(w * y, axis=1)
    fp = np.cumsum(w * (1 - y), axis=1)
    last = np.r_[s[1:] != s[:-1], True]  # last element of each tie group
    tp, fp = tp[:, last], fp[:, last]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
    recall = tp / tp[:, -1:]
    d_recall = np.diff(recall, axis=1, prepend=0.0)
    out[ok] = np.einsum("bk,bk->b", d_recall, precision)
    return out


def weighted_f1(labels: np.ndarray, decisions: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """F1 of 0/1 ``decisions`` (anomalous where ``decision >= 0.5``) in each weighted
    resample; NaN where a resample holds no anomalous image (F1 is then undefined)."""
    d = (decisions >= 0.5).astype(np.float64)
    y = labels.astype(np.float64)
    tp = weights @ (y * d)
    fp = weights @ ((1 - y) * d)
    fn = weights @ (y * (1 - d))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
