"""Statistics for robustness studies: bootstrap intervals, DeLong, McNemar, rank tests.

Every function names its reference. Where scipy, statsmodels or scikit-posthocs provide a
test, we call them; what is written here is only what they lack (a vectorised stratified
bootstrap, the fast DeLong covariance, the Nemenyi critical difference). The metrics
themselves (AUROC, average precision, F1) are those of :mod:`shiftbench.metrics`, so a
table and ``metrics.parquet`` never disagree on a definition. The bootstrap and its
vectorised metrics live in :mod:`shiftbench.analysis.stats.bootstrap`; they are re-exported
here, so every name of the statistics API imports from ``shiftbench.analysis.stats``.

Conventions: ``labels`` are 0 (normal) / 1 (anomalous), higher scores mean "more
anomalous", and all arrays are 1-D of one length ``n`` (one entry per image). An undefined
metric value is NaN, never 0.0 (F1 without anomalous images, AUROC with one class);
intervals, standard errors and bootstrap p-values use the finite replicates only, so NaN
replicates are neither averaged in as zeros nor allowed to poison the interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as _sps

from shiftbench.analysis.stats.bootstrap import (
    BootstrapCI,
    VectorisedMetric,
    _as_vectorised,  # noqa: F401  (re-exported: private helpers kept importable from here)
    _check_pair,
    _f1_of_decisions,  # noqa: F401
    _finite_sd,  # noqa: F401
    _interval,  # noqa: F401
    _jackknife,  # noqa: F401
    auroc,
    average_precision,
    bca_interval,
    bootstrap_ci,
    bootstrap_p_value,
    f1_decisions,
    percentile_interval,
    resample_weights,
    stratified_resample_indices,
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
