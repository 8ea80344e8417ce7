"""Bootstrap intervals for robustness studies, and the vectorised metrics they resample.

A stratified (optionally paired) bootstrap over images: percentile and BCa intervals,
the bootstrap p-value of a paired difference, and the metrics (AUROC, average precision,
F1 of decisions) that evaluate all ``B`` weighted resamples in one pass. The metrics
themselves are those of :mod:`shiftbench.metrics`, so a table and ``metrics.parquet``
never disagree on a definition. Every name here is also importable from
:mod:`shiftbench.analysis.stats`, the public statistics API.

Conventions: ``labels`` are 0 (normal) / 1 (anomalous), higher scores mean "more
anomalous", and all arrays are 1-D of one length ``n`` (one entry per image). An undefined
metric value is NaN, never 0.0 (F1 without anomalous images, AUROC with one class);
intervals, standard errors and bootstrap p-values use the finite replicates only, so NaN
replicates are neither averaged in as zeros nor allowed to poison the interval.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as _sps

from shiftbench.metrics import image_auprc, image_auroc, threshold_metrics
from shiftbench.metrics._weighted import (
    weighted_auroc,
    weighted_average_precision,
    weighted_f1,
)

__all__ = [
    "BootstrapCI",
    "VectorisedMetric",
    "auroc",
    "average_precision",
    "bootstrap_ci",
    "bootstrap_p_value",
    "bca_interval",
    "f1_decisions",
    "percentile_interval",
    "resample_weights",
    "stratified_resample_indices",
]


# --------------------------------------------------------------------------------------
# Metrics that know how to evaluate many weighted resamples at once
# --------------------------------------------------------------------------------------


class VectorisedMetric:
    """A metric ``f(labels, scores) -> float`` that also evaluates ``B`` resamples at once.

    Calling it evaluates ``point`` -- the :mod:`shiftbench.metrics` function, so an analysis
    number and a ``metrics.parquet`` number share one definition, including NaN when the
    metric is undefined. A bootstrap resample is represented by integer weights (how often
    each image was drawn), so ``weighted(labels, scores, weights[B, n]) -> [B]`` evaluates all
    resamples in one pass over the sorted scores (:mod:`shiftbench.metrics._weighted`, the same
    definitions) instead of ``B`` separate sorts.
    """

    def __init__(
        self,
        name: str,
        weighted: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
        point: Callable[[np.ndarray, np.ndarray], float],
    ):
        self.__name__ = name
        self._weighted = weighted
        self._point = point

    def weighted(self, labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Metric of each weighted resample: ``weights`` is ``[B, n]``, returns ``[B]``."""
        labels, scores = _check_pair(labels, scores)
        weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
        if weights.shape[1] != labels.size:
            raise ValueError(
                f"{self.__name__}: weights have {weights.shape[1]} columns, expected {labels.size}"
            )
        return self._weighted(labels, scores, weights)

    def __call__(self, labels: np.ndarray, scores: np.ndarray) -> float:
        labels, scores = _check_pair(labels, scores)
        return float(self._point(labels, scores))

    def __repr__(self) -> str:
        return f"<metric {self.__name__}>"


def _check_pair(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).astype(np.int64).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"labels ({labels.size}) and scores ({scores.size}) differ in length")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 (normal) or 1 (anomalous)")
    return labels, scores


def _f1_of_decisions(labels: np.ndarray, decisions: np.ndarray) -> float:
    return threshold_metrics(labels, decisions, 0.5)["f1"]


auroc = VectorisedMetric("auroc", weighted_auroc, image_auroc)
"""Area under the ROC curve, ties counted 1/2: :func:`shiftbench.metrics.image_auroc`
(equals ``sklearn.metrics.roc_auc_score``); NaN when only one class is present."""

average_precision = VectorisedMetric("average_precision", weighted_average_precision, image_auprc)
"""Average precision, step-wise: :func:`shiftbench.metrics.image_auprc` (equals
``sklearn.metrics.average_precision_score``); NaN when only one class is present."""

f1_decisions = VectorisedMetric("f1_decisions", weighted_f1, _f1_of_decisions)
"""F1 of binary decisions: pass the 0/1 decisions in place of ``scores``. Defined as
``threshold_metrics(labels, decisions, 0.5)["f1"]`` of :mod:`shiftbench.metrics`:
``2 TP / (2 TP + FP + FN)``, and NaN -- not 0.0 -- when there is no anomalous image, so an
undefined F1 is never averaged in as a zero (the bootstrap intervals and ``se`` skip NaN
replicates)."""


def _as_vectorised(metric_fn: Callable) -> VectorisedMetric | None:
    if isinstance(metric_fn, VectorisedMetric):
        return metric_fn
    # sklearn's own functions have exact vectorised twins here; use them transparently.
    name = getattr(metric_fn, "__name__", "")
    module = getattr(metric_fn, "__module__", "") or ""
    if module.startswith("sklearn.metrics"):
        return {"roc_auc_score": auroc, "average_precision_score": average_precision}.get(name)
    return None


# --------------------------------------------------------------------------------------
# Bootstrap
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BootstrapCI:
    """A bootstrap confidence interval.

    ``estimate`` is the metric on the full sample, ``low``/``high`` the ``1 - alpha``
    interval, ``se`` the standard deviation of the replicates. For a paired call,
    ``other`` is the interval of the paired score vector and ``difference`` the interval
    of ``metric(scores) - metric(paired_with)`` from the same resamples.
    """

    estimate: float
    low: float
    high: float
    se: float
    method: str
    alpha: float
    replicates: np.ndarray = field(repr=False)
    other: BootstrapCI | None = None
    difference: BootstrapCI | None = None


def stratified_resample_indices(
    labels: np.ndarray, n_resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """Bootstrap index matrix ``int64 [n_resamples, n]``, resampled within each label.

    Each row draws, with replacement, as many normals among the normals and as many
    anomalies among the anomalies as the sample holds, so every resample keeps the class
    balance (and AUROC stays defined). Columns are grouped by class, not in input order.
    """
    labels = np.asarray(labels).ravel()
    blocks = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        blocks.append(members[rng.integers(0, members.size, size=(n_resamples, members.size))])
    return np.concatenate(blocks, axis=1)


def resample_weights(indices: np.ndarray, n: int) -> np.ndarray:
    """Bootstrap index matrix ``[B, n]`` -> how often each image was drawn, ``float64 [B, n]``
    (the ``weights`` argument of :meth:`VectorisedMetric.weighted`)."""
    b = indices.shape[0]
    flat = indices + (np.arange(b)[:, None] * n)
    return np.bincount(flat.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)


def percentile_interval(replicates: np.ndarray, alpha: float) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates (Efron & Tibshirani 1993, ch. 13)."""
    r = np.asarray(replicates, dtype=np.float64)
    r = r[np.isfinite(r)]
    if r.size == 0:
        return float("nan"), float("nan")
    low, high = np.percentile(r, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(low), float(high)


def bca_interval(
    replicates: np.ndarray, estimate: float, jackknife: np.ndarray, alpha: float
) -> tuple[float, float]:
    """Bias-corrected and accelerated interval (Efron 1987, JASA 82:171; Efron &
    Tibshirani 1993, ch. 14.3): bias ``z0`` from the share of replicates below the
    estimate (ties count 1/2), acceleration from the jackknife skewness."""
    r = np.asarray(replicates, dtype=np.float64)
    r = r[np.isfinite(r)]
    jack = np.asarray(jackknife, dtype=np.float64)
    jack = jack[np.isfinite(jack)]  # leave-one-out values that are undefined carry no skew
    if r.size == 0 or not np.isfinite(estimate):
        return float("nan"), float("nan")
    share = (np.sum(r < estimate) + 0.5 * np.sum(r == estimate)) / r.size
    if share in (0.0, 1.0):  # the estimate lies outside the bootstrap cloud: no correction possible
        return percentile_interval(r, alpha)
    z0 = _sps.norm.ppf(share)
    dev = jack.mean() - jack if jack.size else np.zeros(1)
    denom = 6.0 * np.sum(dev**2) ** 1.5
    accel = np.sum(dev**3) / denom if denom > 0 else 0.0
    z = _sps.norm.ppf([alpha / 2, 1 - alpha / 2])
    levels = _sps.norm.cdf(z0 + (z0 + z) / (1 - accel * (z0 + z)))
    low, high = np.percentile(r, 100 * levels)
    return float(low), float(high)


def _jackknife(
    metric: VectorisedMetric | None, metric_fn: Callable, labels: np.ndarray, scores: np.ndarray
) -> np.ndarray:
    n = labels.size
    if metric is not None:
        out = np.empty(n)
        chunk = max(1, 4_000_000 // max(n, 1))  # bound the [chunk, n] weight matrix to ~32 MB
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            w = np.ones((stop - start, n))
            w[np.arange(stop - start), np.arange(start, stop)] = 0.0
            out[start:stop] = metric.weighted(labels, scores, w)
        return out
    keep = ~np.eye(n, dtype=bool)
    return np.array(
        [metric_fn(labels[keep[i]], scores[keep[i]]) for i in range(n)], dtype=np.float64
    )


def _finite_sd(reps: np.ndarray) -> float:
    """Standard deviation (ddof 1) of the finite replicates; NaN with fewer than two."""
    r = np.asarray(reps, dtype=np.float64)
    r = r[np.isfinite(r)]
    return float(np.std(r, ddof=1)) if r.size > 1 else float("nan")


def _interval(
    estimate: float,
    reps: np.ndarray,
    alpha: float,
    method: str,
    jack: Callable[[], np.ndarray],
) -> BootstrapCI:
    if method == "percentile":
        low, high = percentile_interval(reps, alpha)
    else:
        low, high = bca_interval(reps, estimate, jack(), alpha)
    return BootstrapCI(
        estimate=float(estimate),
        low=low,
        high=high,
        se=_finite_sd(reps),
        method=method,
        alpha=alpha,
        replicates=reps,
    )


def bootstrap_ci(
    metric_fn: Callable[[np.ndarray, np.ndarray], float],
    labels: np.ndarray,
    scores: np.ndarray,
    *,
    n_resamples: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
    paired_with: np.ndarray | None = None,
    method: str = "percentile",
) -> BootstrapCI:
    """Stratified (and optionally paired) bootstrap confidence interval of a metric.

    Images are resampled with replacement within each label (Efron & Tibshirani 1993,
    ch. 6 on stratified sampling), so every resample has the original numbers of normal
    and anomalous images. With ``paired_with`` (a second score vector for the *same*
    images, e.g. Test-clean vs Test-shift, or model A vs model B) both vectors are
    evaluated on the same resamples, and ``.difference`` holds the interval of
    ``metric(scores) - metric(paired_with)`` (paired bootstrap).

    Args:
        metric_fn: ``f(labels, scores) -> float``. The metrics of this module
            (:data:`auroc`, :data:`average_precision`, :data:`f1_decisions`) and sklearn's
            ``roc_auc_score`` / ``average_precision_score`` run vectorised over all
            resamples; any other callable runs once per resample.
        labels: ``[n]`` 0/1.
        scores: ``[n]`` anomaly scores (or 0/1 decisions for a thresholded metric).
        n_resamples: number of bootstrap resamples ``B``.
        alpha: the interval has coverage ``1 - alpha``.
        seed: seeds the resampling (``numpy.random.default_rng``).
        paired_with: ``[n]`` second score vector for the same images, or None.
        method: ``"percentile"`` or ``"bca"`` (bias-corrected and accelerated; Efron 1987).

    Returns:
        :class:`BootstrapCI`; with ``paired_with``, ``.other`` and ``.difference`` too.
    """
    if method not in ("percentile", "bca"):
        raise ValueError(f"bootstrap_ci: method must be 'percentile' or 'bca', got {method!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"bootstrap_ci: alpha must be in (0, 1), got {alpha}")
    labels, scores = _check_pair(labels, scores)
    other = None
    if paired_with is not None:
        _, other = _check_pair(labels, paired_with)
    rng = np.random.default_rng(seed)
    idx = stratified_resample_indices(labels, n_resamples, rng)
    metric = _as_vectorised(metric_fn)

    def evaluate(s: np.ndarray) -> tuple[float, np.ndarray]:
        if metric is not None:
            return metric(labels, s), metric.weighted(labels, s, resample_weights(idx, labels.size))
        reps = np.array([metric_fn(labels[row], s[row]) for row in idx], dtype=np.float64)
        return float(metric_fn(labels, s)), reps

    est_a, reps_a = evaluate(scores)
    jack_a = lambda: _jackknife(metric, metric_fn, labels, scores)  # noqa: E731
    result = _interval(est_a, reps_a, alpha, method, jack_a)
    if other is None:
        return result
    est_b, reps_b = evaluate(other)
    jack_b = lambda: _jackknife(metric, metric_fn, labels, other)  # noqa: E731
    res_b = _interval(est_b, reps_b, alpha, method, jack_b)
    res_d = _interval(est_a - est_b, reps_a - reps_b, alpha, method, lambda: jack_a() - jack_b())
    return BootstrapCI(**{**result.__dict__, "other": res_b, "difference": res_d})


def bootstrap_p_value(difference_replicates: np.ndarray) -> float:
    """Two-sided p-value that a paired difference is zero, from its bootstrap replicates.

    ``2 * min(P(d <= 0), P(d >= 0))``, floored at ``1/B`` — the percentile-interval
    inversion (Efron & Tibshirani 1993, ch. 15.4): p < alpha exactly when the percentile
    ``1 - alpha`` interval excludes 0.
    """
    d = np.asarray(difference_replicates, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return float("nan")
    p = 2 * min(np.mean(d <= 0), np.mean(d >= 0))
    return float(min(1.0, max(p, 1.0 / d.size)))
