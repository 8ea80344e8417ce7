"""Threshold-transfer analysis: what happens to the clean threshold on shifted data.

The ``shift-noadapt`` protocol keeps the threshold calibrated on Val-clean and applies it
to Test-shift. AUROC says whether the ranking survived; this module says whether the
*decision rule* survived: the realised false- and true-positive rates at the transferred
threshold, how far the normal score distribution moved, and whether the rule collapsed
into calling every image anomalous (or none).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats as _sps

from shiftbench.metrics import threshold_metrics

__all__ = ["ThresholdTransfer", "threshold_transfer", "transfer_table"]


@dataclass(frozen=True)
class ThresholdTransfer:
    """The clean threshold applied to clean and to shifted test scores of the same images.

    Rates are fractions in [0, 1]. ``median_shift`` is in score units;
    ``median_shift_iqr`` divides it by the clean normals' interquartile range so models
    with different score scales compare. ``ks_statistic``/``ks_p`` are the two-sample
    Kolmogorov-Smirnov test between clean and shifted normal scores. ``degenerate`` is
    ``"all-anomalous"``, ``"all-normal"`` or ``""``; an all-anomalous rule has
    ``f1_shift == f1_all_anomalous == 2p / (1 + p)`` with ``p`` the anomalous prevalence.
    Rates and F1 are those of :func:`shiftbench.metrics.threshold_metrics`: undefined ones
    are NaN, not 0.0 (F1 and TPR without anomalous images, FPR without normal ones), so a
    mean over seeds (pandas ``mean`` skips NaN) averages only the defined values.
    """

    threshold: float
    n_normal: int
    n_anomalous: int
    prevalence: float
    fpr_clean: float
    tpr_clean: float
    fpr_shift: float
    tpr_shift: float
    f1_clean: float
    f1_shift: float
    f1_all_anomalous: float
    median_normal_clean: float
    median_normal_shift: float
    median_shift: float
    median_shift_iqr: float
    ks_statistic: float
    ks_p: float
    degenerate: str


def _rates(labels: np.ndarray, scores: np.ndarray, threshold: float) -> tuple[float, float, float]:
    """``(fpr, tpr, f1)`` of ``score >= threshold``, from
    :func:`shiftbench.metrics.threshold_metrics` (F1 and TPR NaN without anomalous images;
    FPR NaN without normal ones)."""
    if labels.size == 0:
        return float("nan"), float("nan"), float("nan")
    m = threshold_metrics(labels, scores, threshold)
    n_neg = m["fp"] + m["tn"]
    fpr = m["fp"] / n_neg if n_neg else float("nan")  # NaN counts (NaN threshold) stay NaN
    return float(fpr), float(m["recall"]), float(m["f1"])


def threshold_transfer(
    labels: np.ndarray,
    scores_clean: np.ndarray,
    scores_shift: np.ndarray,
    threshold: float,
) -> ThresholdTransfer:
    """Analyse a threshold calibrated on clean validation data, applied under shift.

    Args:
        labels: ``[n]`` 0/1 labels of the test images.
        scores_clean: ``[n]`` scores of the model on Test-clean.
        scores_shift: ``[n]`` scores of the same model on Test-shift (same images, same
            order) — the ``shift-noadapt`` protocol.
        threshold: the clean (Val-clean, F1-optimal) threshold; an image is called
            anomalous when ``score >= threshold`` (the run directory's convention).

    The distribution shift test is ``scipy.stats.ks_2samp`` (two-sided) on the normal
    images' scores; with the same images on both sides it is conservative, not exact,
    since the samples are paired rather than independent.
    """
    labels = np.asarray(labels).astype(np.int64).ravel()
    clean = np.asarray(scores_clean, dtype=np.float64).ravel()
    shift = np.asarray(scores_shift, dtype=np.float64).ravel()
    if not (labels.size == clean.size == shift.size):
        raise ValueError(
            "threshold_transfer: labels, scores_clean and scores_shift differ in length"
        )
    dec_shift = shift >= threshold
    fpr_c, tpr_c, f1_c = _rates(labels, clean, threshold)
    fpr_s, tpr_s, f1_s = _rates(labels, shift, threshold)
    prevalence = float(labels.mean()) if labels.size else float("nan")
    normal_clean, normal_shift = clean[labels == 0], shift[labels == 0]
    if normal_clean.size and normal_shift.size:
        med_c, med_s = float(np.median(normal_clean)), float(np.median(normal_shift))
        iqr = float(np.subtract(*np.percentile(normal_clean, [75, 25])))
        ks = _sps.ks_2samp(normal_clean, normal_shift)
        ks_stat, ks_p = float(ks.statistic), float(ks.pvalue)
    else:
        med_c = med_s = iqr = ks_stat = ks_p = float("nan")
    if dec_shift.size and dec_shift.all():
        degenerate = "all-anomalous"
    elif dec_shift.size and not dec_shift.any():
        degenerate = "all-normal"
    else:
        degenerate = ""
    return ThresholdTransfer(
        threshold=float(threshold),
        n_normal=int(np.sum(labels == 0)),
        n_anomalous=int(np.sum(labels == 1)),
        prevalence=prevalence,
        fpr_clean=fpr_c,
        tpr_clean=tpr_c,
        fpr_shift=fpr_s,
        tpr_shift=tpr_s,
        f1_clean=f1_c,
        f1_shift=f1_s,
        f1_all_anomalous=2 * prevalence / (1 + prevalence),
        median_normal_clean=med_c,
        median_normal_shift=med_s,
        median_shift=med_s - med_c,
        median_shift_iqr=(med_s - med_c) / iqr if iqr > 0 else float("nan"),
        ks_statistic=ks_stat,
        ks_p=ks_p,
        degenerate=degenerate,
    )


def transfer_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Threshold transfer for every (category, model, seed) of a run's ``scores.parquet``.

    Pairs the ``clean`` and ``shift-noadapt`` test rows by ``sample_id``; the threshold is
    the ``shift-noadapt`` rows' ``threshold`` (by the protocol, the clean one). Groups
    lacking either protocol are skipped. Returns one row per group with the fields of
    :class:`ThresholdTransfer`.
    """
    test = scores[scores["split"] == "test"]
    rows = []
    for (cat, model, seed), g in test.groupby(["category", "model", "seed"], sort=True):
        clean = g[g["protocol"] == "clean"].set_index("sample_id")
        shift = g[g["protocol"] == "shift-noadapt"].set_index("sample_id")
        common = clean.index.intersection(shift.index).sort_values()
        if common.empty:
            continue
        clean, shift = clean.loc[common], shift.loc[common]
        res = threshold_transfer(
            clean["label"].to_numpy(),
            clean["score"].to_numpy(),
            shift["score"].to_numpy(),
            float(shift["threshold"].iloc[0]),
        )
        rows.append({"category": cat, "model": model, "seed": seed, **asdict(res)})
    return pd.DataFrame(rows)
