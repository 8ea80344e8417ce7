"""Pixel-level metrics: AUROC and F1 over all pixels of a set of anomaly maps.

Conventions:

- ``maps``: ``[N, H, W]`` real anomaly maps (float16/32/64 kept as they are; integers become
  float64); ``masks``: ``[N, H, W]`` ground truth, bool or 0/1 or 0/255 -- any non-zero pixel
  is anomalous. A single ``[H, W]`` pair counts as ``N = 1``.
- All pixels of all images are pooled (fully normal images included), as in the MVTec AD
  evaluation.
- Decision rule ``map >= threshold`` -> anomalous pixel.
- Undefined inputs raise :class:`~shiftbench.metrics.MetricInputError`: shapes that differ,
  NaN/inf in a map, no anomalous or no normal pixel at all.

Memory: the functions copy each class's pixels once (about the size of ``maps``) and sort
them in place; counts are exact integers from ``np.searchsorted`` in chunks. There is no
per-pixel ``argsort`` and no full-size float64 temporary, unlike
``sklearn.metrics.roc_auc_score`` on the flattened arrays (which it equals).
"""

from __future__ import annotations

import math

import numpy as np

from shiftbench.metrics._checks import (
    MetricInputError,
    check_pixel_inputs,
    check_threshold,
    iter_images,
)
from shiftbench.metrics._core import auc_from_sorted, best_f1_from_sorted

__all__ = ["pixel_auroc", "pixel_f1", "pixel_f1_optimal_threshold"]


def pixel_auroc(maps, masks) -> float:
    """Area under the pixel ROC curve, ties counted 1/2 (equals ``roc_auc_score``).

    Computed as the Mann-Whitney statistic from exact counts, in about one copy of ``maps``
    of extra memory.
    """
    normal, anomalous = split_sorted(maps, masks, "pixel_auroc")
    return auc_from_sorted(normal, anomalous)


def pixel_f1_optimal_threshold(maps, masks) -> tuple[float, float]:
    """Pixel threshold maximising pixel F1 on (validation) maps; returns ``(threshold, f1)``.

    Exact over every distinct anomalous pixel score. The threshold is that score itself, so
    ``pixel_f1(maps, masks, threshold)`` reproduces the returned F1 exactly; among equal F1
    the smallest threshold (highest recall) wins. Same rule as
    :func:`shiftbench.metrics.f1_optimal_threshold`.
    """
    normal, anomalous = split_sorted(maps, masks, "pixel_f1_optimal_threshold")
    return best_f1_from_sorted(normal, anomalous)


def pixel_f1(maps, masks, threshold: float) -> float:
    """F1 of the pixel decisions ``map >= threshold`` pooled over all images.

    ``2 TP / (2 TP + FP + FN)``. A NaN threshold (from a one-class calibration) warns and
    returns NaN.
    """
    func = "pixel_f1"
    m, g = check_pixel_inputs(maps, masks, func)
    t = check_threshold(threshold, func)
    # A float64 scalar makes numpy compare exactly; a Python float would be rounded to the
    # map dtype first (NEP 50), flagging e.g. float16(0.1) = 0.09998 at threshold 0.1.
    t_exact = np.float64(t)
    tp = fp = fn = 0
    for _, mp, anomalous in iter_images(m, g, func):
        flagged = mp >= t_exact
        hits = int(np.count_nonzero(flagged & anomalous))
        tp += hits
        fp += int(np.count_nonzero(flagged)) - hits
        fn += int(np.count_nonzero(anomalous)) - hits
    if tp + fn == 0:
        raise MetricInputError(f"{func}: masks have no anomalous pixel; pixel F1 is undefined")
    if math.isnan(t):
        return math.nan
    return 2 * tp / (2 * tp + fp + fn)


def split_sorted(maps, masks, func: str) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(normal scores, anomalous scores)``, each 1-D and sorted ascending.

    Raises if either class has no pixel.
    """
    m, g = check_pixel_inputs(maps, masks, func)
    n_anomalous = int(np.count_nonzero(g))
    n_normal = g.size - n_anomalous
    if n_anomalous == 0:
        raise MetricInputError(
            f"{func}: masks have no anomalous pixel; the metric is undefined "
            "(pass the maps of a set that contains defects)"
        )
    if n_normal == 0:
        raise MetricInputError(f"{func}: masks have no normal pixel; the metric is undefined")
    normal = np.empty(n_normal, dtype=m.dtype)
    anomalous = np.empty(n_anomalous, dtype=m.dtype)
    i_n = i_a = 0
    for _, mp, anom in iter_images(m, g, func):
        a = mp[anom]
        anomalous[i_a : i_a + a.size] = a
        i_a += a.size
        b = mp[~anom]
        normal[i_n : i_n + b.size] = b
        i_n += b.size
    normal.sort()
    anomalous.sort()
    return normal, anomalous
