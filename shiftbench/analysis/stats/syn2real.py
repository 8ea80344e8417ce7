"""Synthetic-to-real: does robustness to a synthetic shift predict robustness to a real one?

A run with a real target domain (``shift`` = ``target:<name>``, see
:mod:`shiftbench.protocols.target`) and synthetic conditions (``shift``, ``severity``) scores
the same clean fit under both. For every model x category *point* the *drop* of a condition
is ``clean - shift-noadapt`` of a metric (image AUROC), averaged over seeds. Per synthetic
condition and target, :func:`syn2real_table` gives

* Kendall's tau-b and Spearman's rho between the synthetic and the real drops across the
  points (:func:`scipy.stats.kendalltau`, :func:`scipy.stats.spearmanr`): does the
  synthetic shift rank (model, category) pairs as the real one does?
* their percentile bootstrap intervals over *categories*: categories are drawn with
  replacement (seeded) and every point of a drawn category comes along, because the
  models of one category share its images and are not independent points
  (:func:`category_bootstrap`);
* the mean absolute difference of the drops (does it also predict *how much*?), the
  mean drops themselves and the number of points, categories and models.

Few points mean nothing: under no association Kendall's tau has standard deviation
``sqrt(2 (2n + 5) / (9 n (n - 1)))`` (:func:`null_sd`), 0.41 at n = 5 and 0.25 at n = 10, so
below :data:`MIN_POINTS` points a 95% interval spans most of [-1, 1]; and with fewer than
:data:`MIN_CATEGORIES` categories the category bootstrap has few distinct resamples.
:func:`few_points_warning` says so (the report puts it in the caption and on the console).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from shiftbench.results import schema

__all__ = [
    "MIN_CATEGORIES",
    "MIN_POINTS",
    "category_bootstrap",
    "drop_points",
    "few_points_warning",
    "null_sd",
    "rank_correlations",
    "syn2real_table",
]

#: below this many model x category points the rank correlations are noise
MIN_POINTS = 10
#: below this many categories the category bootstrap has few distinct resamples
MIN_CATEGORIES = 5
#: the columns of :func:`syn2real_table`
COLUMNS = (
    "target", "shift", "severity", "n_points", "n_categories", "n_models",
    "kendall_tau", "kendall_lo", "kendall_hi", "spearman_rho", "spearman_lo", "spearman_hi",
    "mean_abs_diff", "mean_synthetic_drop", "mean_real_drop",
)  # fmt: skip


def null_sd(n: int) -> float:
    """Kendall's tau's standard deviation under no association with ``n`` untied points
    (Kendall 1938): ``sqrt(2 (2n + 5) / (9 n (n - 1)))``; NaN below 2 points."""
    return math.sqrt(2 * (2 * n + 5) / (9 * n * (n - 1))) if n >= 2 else float("nan")


def few_points_warning(n_points: int, n_categories: int) -> str | None:
    """One sentence when the table has too few points or categories to mean much, else
    None: the number, and why it is too few."""
    problems = []
    if n_points < 2:
        problems.append(f"only {n_points} model $\\times$ category point: no correlation")
    elif n_points < MIN_POINTS:
        spread = min(1.96 * null_sd(n_points), 1.0)
        problems.append(
            f"only {n_points} model $\\times$ category points (fewer than {MIN_POINTS}): "
            f"under no association Kendall's tau still ranges over $\\pm${spread:.2f} (95\\%), "
            "so the intervals are wide and a moderate tau can be chance"
        )
    if n_categories < MIN_CATEGORIES:
        problems.append(
            f"only {n_categories} categor{'y' if n_categories == 1 else 'ies'} (fewer than "
            f"{MIN_CATEGORIES}): the category bootstrap has few distinct resamples"
        )
    if not problems:
        return None
    return "Too few to mean much: " + "; ".join(problems) + "."


def drop_points(metrics: pd.DataFrame, metric: str = "image_auroc") -> pd.DataFrame:
    """Per (model, category, shift, severity): ``drop`` = clean minus ``shift-noadapt`` of
    ``metric``, each averaged over seeds first (per-category rows only, the stored ``mean``
    category left out). ``severity`` is NaN for a real target. Empty without a
    :data:`~shiftbench.results.schema.SHIFT_COLUMN`."""
    cols = ["model", "category", "shift", "severity", "drop"]
    if schema.SHIFT_COLUMN not in metrics.columns:
        return pd.DataFrame(columns=cols)
    m = metrics[(metrics["metric"] == metric) & (metrics["category"] != schema.MEAN_CATEGORY)]
    clean = m[m["protocol"] == "clean"].groupby(["model", "category"])["value"].mean()
    shifted = m[(m["protocol"] == "shift-noadapt") & m[schema.SHIFT_COLUMN].notna()]
    shifted = shifted.assign(severity=shifted["severity"].astype(float).fillna(-1.0))
    keys = ["model", "category", schema.SHIFT_COLUMN, "severity"]
    mean = shifted.groupby(keys, as_index=False)["value"].mean()
    mean["clean"] = clean.reindex(pd.MultiIndex.from_frame(mean[["model", "category"]])).values
    mean["drop"] = mean["clean"] - mean["value"]
    mean["severity"] = mean["severity"].where(mean["severity"] >= 0)  # -1 stood for NaN
    out = mean.rename(columns={schema.SHIFT_COLUMN: "shift"})
    return out[cols].dropna(subset=["drop"]).reset_index(drop=True)


def rank_correlations(x, y) -> tuple[float, float]:
    """Kendall's tau-b and Spearman's rho of two equally long vectors (NaN when either is
    constant or there are fewer than 2 points)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan")
    from scipy.stats import kendalltau, spearmanr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(kendalltau(x, y).statistic), float(spearmanr(x, y).statistic)


def category_bootstrap(
    x, y, categories, *, indices: np.ndarray | None = None, n_resamples: int = 2000, seed: int = 0
) -> np.ndarray:
    """Bootstrap replicates ``[B, 2]`` (Kendall, Spearman) of the points ``(x, y)`` whose
    category is ``categories``: each replicate draws as many categories as there are, with
    replacement, and takes every point of each drawn category (a category drawn twice
    counts twice). ``indices`` ``[B, K]`` picks the categories (positions in their sorted
    order) instead of ``numpy.random.default_rng(seed).integers(0, K, (n_resamples, K))``.
    A replicate whose drops are constant is NaN."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    cats = np.asarray(categories).astype(str)
    names = np.unique(cats)
    members = [np.flatnonzero(cats == c) for c in names]
    if indices is None:
        rng = np.random.default_rng(seed)
        indices = rng.integers(0, len(names), (n_resamples, len(names)))
    out = np.empty((len(indices), 2))
    for b, draw in enumerate(np.asarray(indices)):
        rows = np.concatenate([members[k] for k in draw])
        out[b] = rank_correlations(x[rows], y[rows])
    return out


def _interval(replicates: np.ndarray, alpha: float) -> tuple[float, float]:
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.percentile(finite, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)


def syn2real_table(
    metrics: pd.DataFrame,
    metric: str = "image_auroc",
    *,
    n_resamples: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per (target, synthetic shift, severity) (:data:`COLUMNS`) and the points
    behind them (``target, shift, severity, model, category, synthetic_drop, real_drop``).
    Both are empty when the run has no real target or no synthetic condition. Each
    condition's bootstrap uses the same seeded draws of categories."""
    drops = drop_points(metrics, metric)
    is_target = drops["shift"].map(schema.is_target_shift).astype(bool)
    real, synthetic = drops[is_target], drops[~is_target]
    rows, points = [], []
    for target, r in real.groupby("shift", sort=True):
        r = r[["model", "category", "drop"]].rename(columns={"drop": "real_drop"})
        for (shift, severity), s in synthetic.groupby(["shift", "severity"], sort=True):
            p = s[["model", "category", "drop"]].rename(columns={"drop": "synthetic_drop"})
            p = p.merge(r, on=["model", "category"]).sort_values(["category", "model"])
            if p.empty:
                continue
            x, y = p["synthetic_drop"].to_numpy(), p["real_drop"].to_numpy()
            tau, rho = rank_correlations(x, y)
            reps = category_bootstrap(x, y, p["category"], n_resamples=n_resamples, seed=seed)
            (k_lo, k_hi), (s_lo, s_hi) = _interval(reps[:, 0], alpha), _interval(reps[:, 1], alpha)
            rows.append(
                (target, shift, severity, len(p), p["category"].nunique(), p["model"].nunique(),
                 tau, k_lo, k_hi, rho, s_lo, s_hi, float(np.mean(np.abs(x - y))),
                 float(np.mean(x)), float(np.mean(y)))
            )  # fmt: skip
            points.append(p.assign(target=target, shift=shift, severity=severity))
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    cols = ["target", "shift", "severity", "model", "category", "synthetic_drop", "real_drop"]
    pts = pd.concat(points, ignore_index=True)[cols] if points else pd.DataFrame(columns=cols)
    return table, pts
