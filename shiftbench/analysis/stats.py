"""Statistics for robustness studies: bootstrap intervals, DeLong, McNemar, rank tests.

Every function names its reference. Where scipy, statsmodels or scikit-posthocs provide a
test, we call them; what is written here is only what they lack (a vectorised stratified
bootstrap, the fast DeLong covariance, the Nemenyi critical difference). The metrics
themselves (AUROC, average precision, F1) are those of :mod:`shiftbench.metrics`, so a
table and ``metrics.parquet`` never disagree on a definition.

Conventions: ``labels`` are 0 (normal) / 1 (anomalous), higher scores mean "more
anomalous", and all arrays are 1-D of one length ``n`` (one entry per image). An undefined
metric value is NaN, never 0.0 (F1 without anomalous images, AUROC with one class);
intervals, standard errors and bootstrap p-values use the finite replicates only, so NaN
replicates are neither averaged in as zeros nor allowed to poison the interval.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as _sps

from shiftbench.metrics import image_auprc, image_auroc, threshold_metrics
from shiftbench.metrics._weighted import (
    weighted_auroc,
    weighted_average_precision,
    weighted_f1,
)

__all__ = [
    "BootstrapCI",
    "DeLongResult",
    "FriedmanNemenyiResult",
    "McNemarResult",
    "VectorisedMetric",
    "WilcoxonResult",
    "auroc",
    "average_precision",
    "bootstrap_ci",
    "bootstrap_p_value",
    "bca_interval",
    "critical_difference",
    "delong",
    "delong_ci",
    "f1_decisions",
    "friedman_nemenyi",
    "holm",
    "mcnemar",
    "percentile_interval",
    "resample_weights",
    "stratified_resample_indices",
    "wilcoxon",
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


# --------------------------------------------------------------------------------------
# DeLong
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeLongResult:
    """DeLong comparison of two correlated AUCs (same images, same labels)."""

    auc_a: float
    auc_b: float
    var_a: float
    var_b: float
    covariance: float
    z: float
    p_value: float


def _delong_components(
    labels: np.ndarray, score_rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AUCs ``[k]`` and the DeLong structural components ``V10 [k, m]``, ``V01 [k, n]``.

    Sun & Xu 2014 (IEEE Signal Process. Lett. 21:1389): with midranks over the positives
    (``tx``), negatives (``ty``) and both (``tz``), ``V10 = (tz_pos - tx) / n`` and
    ``V01 = 1 - (tz_neg - ty) / m`` — O(N log N) instead of the O(m n) pairwise kernel.
    Midranks count ties 1/2.
    """
    pos, neg = labels == 1, labels == 0
    m, n = int(pos.sum()), int(neg.sum())
    if m == 0 or n == 0:
        raise ValueError("DeLong needs both normal (0) and anomalous (1) labels")
    x, y = score_rows[:, pos], score_rows[:, neg]
    tx = _sps.rankdata(x, axis=1)
    ty = _sps.rankdata(y, axis=1)
    tz = _sps.rankdata(np.concatenate([x, y], axis=1), axis=1)
    aucs = (tz[:, :m].sum(axis=1) / m - (m + 1) / 2) / n
    v10 = (tz[:, :m] - tx) / n
    v01 = 1.0 - (tz[:, m:] - ty) / m
    return aucs, v10, v01


def _delong_cov(labels: np.ndarray, score_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    aucs, v10, v01 = _delong_components(labels, score_rows)
    m, n = v10.shape[1], v01.shape[1]
    s10 = np.atleast_2d(np.cov(v10))
    s01 = np.atleast_2d(np.cov(v01))
    return aucs, s10 / m + s01 / n


def delong(labels: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray) -> DeLongResult:
    """DeLong's test for two correlated AUCs (DeLong, DeLong & Clarke-Pearson 1988,
    Biometrics 44:837), computed with the fast algorithm of Sun & Xu (2014).

    Args:
        labels: ``[n]`` 0/1.
        scores_a, scores_b: ``[n]`` two score vectors for the same images (two models,
            or one model on Test-clean and on Test-shift).

    Returns:
        :class:`DeLongResult`: AUCs, their variances and covariance,
        ``z = (auc_a - auc_b) / sqrt(var_a + var_b - 2 cov)`` and the two-sided normal p.
        Identical score vectors give ``z = 0, p = 1``.
    """
    labels, a = _check_pair(labels, scores_a)
    _, b = _check_pair(labels, scores_b)
    aucs, cov = _delong_cov(labels, np.vstack([a, b]))
    var_diff = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    diff = aucs[0] - aucs[1]
    if var_diff <= 1e-300:
        z = 0.0 if diff == 0 else float(np.sign(diff) * np.inf)
    else:
        z = float(diff / np.sqrt(var_diff))
    p = float(2 * _sps.norm.sf(abs(z)))
    return DeLongResult(
        auc_a=float(aucs[0]),
        auc_b=float(aucs[1]),
        var_a=float(cov[0, 0]),
        var_b=float(cov[1, 1]),
        covariance=float(cov[0, 1]),
        z=z,
        p_value=p,
    )


def delong_ci(
    labels: np.ndarray, scores: np.ndarray, alpha: float = 0.05
) -> tuple[float, float, float]:
    """AUC and its DeLong ``1 - alpha`` confidence interval, ``(auc, low, high)``.

    Normal interval ``auc -/+ z_{1-alpha/2} sqrt(var)`` clipped to [0, 1], as
    ``pROC::ci.auc(method="delong")`` (Robin et al. 2011, BMC Bioinformatics 12:77).
    """
    labels, s = _check_pair(labels, scores)
    aucs, cov = _delong_cov(labels, s[None, :])
    auc, sd = float(aucs[0]), float(np.sqrt(cov[0, 0]))
    z = _sps.norm.ppf(1 - alpha / 2)
    return auc, float(max(0.0, auc - z * sd)), float(min(1.0, auc + z * sd))


# --------------------------------------------------------------------------------------
# McNemar, Wilcoxon, Friedman / Nemenyi, Holm
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class McNemarResult:
    """McNemar's test on paired correctness. ``b``: only A correct; ``c``: only B correct."""

    table: np.ndarray
    b: int
    c: int
    statistic: float
    p_value: float
    exact: bool


def mcnemar(
    decisions_a: np.ndarray,
    decisions_b: np.ndarray,
    labels: np.ndarray,
    *,
    exact_below: int = 25,
    correction: bool = True,
) -> McNemarResult:
    """McNemar's test that two decision rules have the same error rate on the same images
    (McNemar 1947, Psychometrika 12:153), via ``statsmodels.stats.contingency_tables.mcnemar``.

    The 2x2 table counts images both rules get right, only A, only B, neither. With fewer
    than ``exact_below`` discordant images (``b + c``) the exact binomial test is used
    (statistic = min(b, c)); otherwise the chi-square form, with continuity correction
    when ``correction``.
    """
    from statsmodels.stats.contingency_tables import mcnemar as _sm_mcnemar

    labels = np.asarray(labels).astype(np.int64).ravel()
    da = np.asarray(decisions_a).astype(np.int64).ravel()
    db = np.asarray(decisions_b).astype(np.int64).ravel()
    if not (labels.size == da.size == db.size):
        raise ValueError("mcnemar: decisions_a, decisions_b and labels differ in length")
    ok_a, ok_b = da == labels, db == labels
    table = np.array(
        [
            [np.sum(ok_a & ok_b), np.sum(ok_a & ~ok_b)],
            [np.sum(~ok_a & ok_b), np.sum(~ok_a & ~ok_b)],
        ],
        dtype=np.int64,
    )
    b, c = int(table[0, 1]), int(table[1, 0])
    exact = (b + c) < exact_below
    if b + c == 0:  # no discordant pair: the rules agree on every image
        return McNemarResult(table, b, c, 0.0, 1.0, exact)
    res = _sm_mcnemar(table, exact=exact, correction=correction)
    return McNemarResult(table, b, c, float(res.statistic), float(res.pvalue), exact)


@dataclass(frozen=True)
class WilcoxonResult:
    """Wilcoxon signed-rank test on paired values (e.g. categories x seeds)."""

    statistic: float
    p_value: float
    n: int
    median_difference: float


def wilcoxon(
    values_a: Sequence[float], values_b: Sequence[float], *, alternative: str = "two-sided"
) -> WilcoxonResult:
    """Wilcoxon signed-rank test (Wilcoxon 1945; Demšar 2006, JMLR 7:1, sec. 3.1.3) of
    paired values, one pair per (category, seed), via ``scipy.stats.wilcoxon``.

    Zero differences are dropped (``zero_method="wilcox"``); if every difference is zero
    the result is ``p = 1``. With few pairs the exact distribution is used: 4 pairs can
    never reach p < 0.125, which is an honest answer, not a bug.
    """
    a = np.asarray(values_a, dtype=np.float64).ravel()
    b = np.asarray(values_b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError("wilcoxon: the two value vectors differ in length")
    d = a - b
    med = float(np.median(d)) if d.size else float("nan")
    if d.size == 0 or np.all(d == 0):
        return WilcoxonResult(0.0, 1.0, int(d.size), med)
    res = _sps.wilcoxon(a, b, zero_method="wilcox", alternative=alternative)
    return WilcoxonResult(float(res.statistic), float(res.pvalue), int(d.size), med)


def holm(p_values: Sequence[float], alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Holm's step-down correction of a family of p-values (Holm 1979, Scand. J. Stat.
    6:65) via ``statsmodels.stats.multitest.multipletests``. NaN p-values are left out of
    the family and stay NaN. Returns ``(reject bool [k], adjusted p [k])``."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p_values, dtype=np.float64).ravel()
    reject = np.zeros(p.size, dtype=bool)
    adjusted = np.full(p.size, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        r, a, _, _ = multipletests(p[ok], alpha=alpha, method="holm")
        reject[ok], adjusted[ok] = r, a
    return reject, adjusted


def critical_difference(n_models: int, n_blocks: int, alpha: float = 0.05) -> float:
    """Nemenyi critical difference of average ranks (Demšar 2006, JMLR 7:1, eq. 5):
    ``CD = q_alpha sqrt(k (k + 1) / (6 N))`` with ``q_alpha`` the studentized range
    quantile (infinite degrees of freedom) divided by sqrt(2)."""
    q = _sps.studentized_range.ppf(1 - alpha, n_models, np.inf) / np.sqrt(2)
    return float(q * np.sqrt(n_models * (n_models + 1) / (6.0 * n_blocks)))


@dataclass(frozen=True)
class FriedmanNemenyiResult:
    """Friedman test over blocks and Nemenyi post-hoc comparisons of the models."""

    statistic: float
    p_value: float
    average_ranks: pd.Series  # per model, rank 1 = best
    critical_difference: float
    nemenyi_p: pd.DataFrame  # model x model p-values
    n_blocks: int


def friedman_nemenyi(
    table: pd.DataFrame, *, alpha: float = 0.05, higher_is_better: bool = True
) -> FriedmanNemenyiResult:
    """Friedman test and Nemenyi post-hoc test for three or more models (Demšar 2006).

    Args:
        table: one row per block (e.g. each category x seed), one column per model, values
            the metric. Rows with a missing value are dropped.
        alpha: level for the critical difference.
        higher_is_better: rank 1 goes to the highest value (AUROC) when True.

    Uses ``scipy.stats.friedmanchisquare`` and ``scikit_posthocs.posthoc_nemenyi_friedman``;
    the critical difference is :func:`critical_difference`.
    """
    import scikit_posthocs as sp

    data = table.dropna(axis=0, how="any")
    k, n = data.shape[1], data.shape[0]
    if k < 3:
        raise ValueError(f"friedman_nemenyi needs at least 3 models, got {k}")
    if n < 2:
        raise ValueError(f"friedman_nemenyi needs at least 2 complete blocks, got {n}")
    stat, p = _sps.friedmanchisquare(*[data[c].to_numpy() for c in data.columns])
    ranks = (-data if higher_is_better else data).rank(axis=1, method="average")
    nem = sp.posthoc_nemenyi_friedman(data.to_numpy())
    nem.index = nem.columns = list(data.columns)
    return FriedmanNemenyiResult(
        statistic=float(stat),
        p_value=float(p),
        average_ranks=ranks.mean(axis=0).sort_values(),
        critical_difference=critical_difference(k, n, alpha),
        nemenyi_p=nem,
        n_blocks=n,
    )
