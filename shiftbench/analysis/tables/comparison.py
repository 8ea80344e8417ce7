"""Paper tables from a run's per-image scores: protocol comparison with bootstrap CIs and
Holm-corrected tests here; pixel metrics, efficiency and severity tables
(:mod:`.metrics`) and recall per defect type (:mod:`.defects`) are importable from
here too. The numbers only: :mod:`.render` lays them out as LaTeX (booktabs), Markdown and
HTML; the report writes them as CSV too.

How the numbers are made (also printed in every table caption):

* A cell is the metric on the test images, averaged over seeds; ``±`` is half the width of
  the 95% percentile bootstrap interval (exact bounds are in the CSV). Resampling is
  stratified by label and *paired*: for one (category, seed) the same resamples of the
  test images serve every protocol and model, since Test-clean and Test-shift hold the
  same images. The seed average and the macro average (``mean`` row) average the
  replicates index-wise, so their intervals come from the same bootstrap. Rows that share
  an :data:`IMAGE_COLUMN` value (one image's twins under several shifts, in a per-shift
  run) are one image: drawn together (a cluster bootstrap), never as independent images.
* Marks on the two Δ columns: for a category, one test per seed (DeLong for AUROC,
  McNemar on the decisions for F1, paired bootstrap for AUPRC), Holm-corrected over every
  test of the table; a mark needs every seed to pass (the largest adjusted p counts).
  For the ``mean`` row, a Wilcoxon signed-rank test over the (category, seed) pairs,
  Holm-corrected over the mean-row family. ``*`` p < 0.05, ``**`` p < 0.01, ``***`` p < 0.001.
  With clustered rows the per-category tests are the paired cluster bootstrap's p-value
  (DeLong and McNemar assume independent images).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from shiftbench._hashing import stable_int
from shiftbench.analysis import stats
from shiftbench.analysis.tables.defects import NORMAL_DEFECT, defect_table
from shiftbench.analysis.tables.metrics import (
    EFFICIENCY_ORDER,
    PIXEL_METRICS,
    efficiency_table,
    pixel_table,
    severity_table,
)
from shiftbench.results import schema

__all__ = [
    "COLUMNS",
    "DELTAS",
    "EFFICIENCY_ORDER",
    "METRICS",
    "NORMAL_DEFECT",
    "PIXEL_METRICS",
    "ProtocolComparison",
    "defect_table",
    "efficiency_table",
    "severity_table",
    "pixel_table",
    "protocol_comparison",
]

PROTOCOLS = schema.PROTOCOLS
DELTAS = schema.DELTAS  # (column, minuend protocol, subtrahend protocol)
COLUMNS = (*PROTOCOLS, *schema.DELTA_COLUMNS)


@dataclass(frozen=True)
class _MetricSpec:
    label: str
    metric: stats.VectorisedMetric
    column: str  # which scores.parquet column feeds the metric
    test: str  # "delong" | "mcnemar" | "bootstrap"


METRICS = {
    "image_auroc": _MetricSpec("Image AUROC", stats.auroc, "score", "delong"),
    "image_auprc": _MetricSpec("Image AUPRC", stats.average_precision, "score", "bootstrap"),
    "image_f1": _MetricSpec(
        "Image F1 at the Val threshold", stats.f1_decisions, "decision", "mcnemar"
    ),
}


@dataclass
class ProtocolComparison:
    """One metric over categories x models x protocols, with intervals and tests.

    ``table``: one row per (category, model) — categories then ``mean`` — with, for each
    of :data:`COLUMNS`, ``<col>``, ``<col>_low``, ``<col>_high`` (fractions) and for the
    two Δ columns ``<col>_p`` (Holm-adjusted) and ``<col>_test``. ``per_seed``: point
    estimates per (category, model, seed, protocol). ``replicates``: bootstrap replicates
    per (category, model, column), for figures. ``clustered``: images were resampled as
    clusters of rows (:data:`IMAGE_COLUMN`) and the per-category tests are bootstrap ones.
    """

    metric: str
    label: str
    alpha: float
    n_resamples: int
    table: pd.DataFrame
    per_seed: pd.DataFrame
    replicates: dict[tuple[str, str, str], np.ndarray] = field(repr=False)
    #: rows grouped into images by :data:`IMAGE_COLUMN` (a per-shift run's twins)
    clustered: bool = False


#: optional column of the scores: rows with one value are one image (its twins under
#: several shifts), resampled together; absent, every row is its own image
IMAGE_COLUMN = "image"


def _stable_seed(*parts: object) -> int:
    return stable_int("|".join(map(str, parts)), 8, "little")


def _aligned(
    test: pd.DataFrame,
) -> dict[
    tuple[str, int], tuple[np.ndarray, dict[tuple[str, str], pd.DataFrame], np.ndarray | None]
]:
    """Per (category, seed): labels, each (model, protocol)'s test rows in one order, and
    the image (cluster) index of each row when :data:`IMAGE_COLUMN` groups rows, else None."""
    out = {}
    for (cat, seed), g in test.groupby(["category", "seed"], sort=True):
        groups = {
            k: v.set_index("sample_id") for k, v in g.groupby(["model", "protocol"], sort=True)
        }
        common = None
        for v in groups.values():
            common = v.index if common is None else common.intersection(v.index)
        common = common.sort_values()
        dropped = max(len(v) for v in groups.values()) - len(common)
        if dropped:
            warnings.warn(
                f"{cat} seed {seed}: {dropped} test images are missing from some model/protocol; "
                "comparing on the images all of them share",
                RuntimeWarning,
                stacklevel=3,
            )
        groups = {k: v.loc[common] for k, v in groups.items()}
        first = next(iter(groups.values()))
        labels = first["label"].to_numpy().astype(np.int64)
        clusters = None
        if IMAGE_COLUMN in first.columns:
            codes, uniques = pd.factorize(first[IMAGE_COLUMN], sort=True)
            if len(uniques) < len(codes):
                clusters = codes
        out[(cat, seed)] = (labels, groups, clusters)
    return out


def _resample(
    labels: np.ndarray, clusters: np.ndarray | None, n_resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """Bootstrap weights ``[B, n]`` of the rows: images drawn within their label, a
    cluster's rows with its image's weight."""
    if clusters is None:
        idx = stats.stratified_resample_indices(labels, n_resamples, rng)
        return stats.resample_weights(idx, labels.size)
    n_images = int(clusters.max()) + 1
    image_labels = np.zeros(n_images, np.int64)
    image_labels[clusters] = labels
    if np.any(image_labels[clusters] != labels):
        raise ValueError("rows of one image carry different labels")
    idx = stats.stratified_resample_indices(image_labels, n_resamples, rng)
    return stats.resample_weights(idx, n_images)[:, clusters]


def _pair_test(
    test: str, labels: np.ndarray, a: pd.DataFrame, b: pd.DataFrame, d_reps: np.ndarray
) -> float:
    """``test``: "delong", "mcnemar" or "bootstrap" (the paired bootstrap's p-value)."""
    if test == "delong":
        if labels.min() == labels.max():
            return float("nan")
        return stats.delong(labels, a["score"].to_numpy(), b["score"].to_numpy()).p_value
    if test == "mcnemar":
        return stats.mcnemar(a["decision"].to_numpy(), b["decision"].to_numpy(), labels).p_value
    return stats.bootstrap_p_value(d_reps)


def _per_seed(
    test: pd.DataFrame, spec: _MetricSpec, n_resamples: int, seed: int
) -> tuple[dict, dict, list[dict], bool]:
    """Per (category, model, seed, protocol): the point estimate and its bootstrap
    replicates; one paired test per (category, model, seed, Δ column); whether any
    images were clusters of rows."""
    reps: dict[tuple[str, str, int, str], np.ndarray] = {}
    est: dict[tuple[str, str, int, str], float] = {}
    tests: list[dict] = []
    clustered = False
    for (cat, run_seed), (labels, groups, clusters) in _aligned(test).items():
        clustered |= clusters is not None
        rng = np.random.default_rng(_stable_seed(seed, cat, run_seed))
        weights = _resample(labels, clusters, n_resamples, rng)
        # DeLong and McNemar assume independent images: an image's twins are not
        test = "bootstrap" if clusters is not None else spec.test
        for (model, protocol), rows in groups.items():
            values = rows[spec.column].to_numpy().astype(np.float64)
            est[(cat, model, run_seed, protocol)] = spec.metric(labels, values)
            reps[(cat, model, run_seed, protocol)] = spec.metric.weighted(labels, values, weights)
        for model in sorted({m for m, _ in groups}):
            for dname, pa, pb in DELTAS:
                if (model, pa) in groups and (model, pb) in groups:
                    d = reps[(cat, model, run_seed, pa)] - reps[(cat, model, run_seed, pb)]
                    p = _pair_test(test, labels, groups[(model, pa)], groups[(model, pb)], d)
                    tests.append(
                        {"category": cat, "model": model, "seed": run_seed, "column": dname,
                         "p": p, "test": test}
                    )  # fmt: skip
    return est, reps, tests, clustered


def _cells(est: dict, reps: dict, categories: list, models: list) -> tuple[dict, dict]:
    """Seed averages of point estimates and of replicates per (category, model, column),
    then the macro average over categories (category ``mean``)."""
    cell_est: dict[tuple[str, str, str], float] = {}
    cell_reps: dict[tuple[str, str, str], np.ndarray] = {}
    for cat in categories:
        for model in models:
            seeds = sorted({s for (c, m, s, _) in est if c == cat and m == model})
            for protocol in PROTOCOLS:
                keys = [
                    (cat, model, s, protocol) for s in seeds if (cat, model, s, protocol) in est
                ]
                if keys and len(keys) == len(seeds):
                    cell_est[(cat, model, protocol)] = float(np.mean([est[k] for k in keys]))
                    cell_reps[(cat, model, protocol)] = np.mean([reps[k] for k in keys], axis=0)
            for dname, pa, pb in DELTAS:
                if (cat, model, pa) in cell_est and (cat, model, pb) in cell_est:
                    cell_est[(cat, model, dname)] = (
                        cell_est[(cat, model, pa)] - cell_est[(cat, model, pb)]
                    )
                    cell_reps[(cat, model, dname)] = (
                        cell_reps[(cat, model, pa)] - cell_reps[(cat, model, pb)]
                    )
    for model in models:
        for col in COLUMNS:
            keys = [(c, model, col) for c in categories if (c, model, col) in cell_est]
            if keys and len(keys) == len(categories):
                cell_est[("mean", model, col)] = float(np.mean([cell_est[k] for k in keys]))
                cell_reps[("mean", model, col)] = np.mean([cell_reps[k] for k in keys], axis=0)
    return cell_est, cell_reps


def _significance(
    tests: list[dict], per_seed: pd.DataFrame, categories: list, models: list, alpha: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-category tests Holm-corrected over the whole table; for the mean row, Wilcoxon
    over (category, seed) pairs, Holm-corrected over the mean-row family."""
    tests_df = pd.DataFrame(tests, columns=["category", "model", "seed", "column", "p", "test"])
    if len(tests_df):
        tests_df["p_holm"] = stats.holm(tests_df["p"].to_numpy(), alpha)[1]
    mean_tests = []
    for model in models:
        for dname, pa, pb in DELTAS:
            sub = per_seed[(per_seed["model"] == model) & (per_seed["category"].isin(categories))]
            wide = sub.pivot_table(index=["category", "seed"], columns="protocol", values="value")
            if pa in wide and pb in wide:
                pair = wide[[pa, pb]].dropna()
                p = stats.wilcoxon(pair[pa], pair[pb]).p_value if len(pair) else float("nan")
                mean_tests.append({"model": model, "column": dname, "p": p})
    mean_df = pd.DataFrame(mean_tests, columns=["model", "column", "p"])
    if len(mean_df):
        mean_df["p_holm"] = stats.holm(mean_df["p"].to_numpy(), alpha)[1]
    return tests_df, mean_df


def protocol_comparison(
    scores: pd.DataFrame,
    metric: str = "image_auroc",
    *,
    n_resamples: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> ProtocolComparison:
    """Compare protocols for one metric, from ``scores.parquet`` rows.

    Args:
        scores: the run's per-image scores (:data:`schema.SCORE_COLUMNS`).
        metric: a key of :data:`METRICS`.
        n_resamples: bootstrap resamples per (category, seed).
        alpha: interval level ``1 - alpha`` and significance level of the marks.
        seed: base seed of the resampling (each (category, seed) derives its own).
    """
    spec = METRICS[metric]
    est, reps, tests, clustered = _per_seed(
        scores[scores["split"] == "test"], spec, n_resamples, seed
    )
    per_seed = (
        pd.Series(est, name="value")
        .rename_axis(["category", "model", "seed", "protocol"])
        .reset_index()
    )
    categories = sorted(per_seed["category"].unique())
    models = sorted(per_seed["model"].unique())
    cell_est, cell_reps = _cells(est, reps, categories, models)
    tests_df, mean_df = _significance(tests, per_seed, categories, models, alpha)

    rows = []
    for cat in [*categories, "mean"]:
        for model in models:
            if not any((cat, model, c) in cell_est for c in COLUMNS):
                continue
            row: dict = {"category": cat, "model": model}
            for col in COLUMNS:
                if (cat, model, col) in cell_est:
                    low, high = stats.percentile_interval(cell_reps[(cat, model, col)], alpha)
                    row[col], row[f"{col}_low"], row[f"{col}_high"] = (
                        cell_est[(cat, model, col)],
                        low,
                        high,
                    )
                else:
                    row[col] = row[f"{col}_low"] = row[f"{col}_high"] = np.nan
            for dname, _, _ in DELTAS:
                if cat == "mean":
                    hit = mean_df[(mean_df["model"] == model) & (mean_df["column"] == dname)]
                    test_name = "wilcoxon"
                else:
                    hit = tests_df[
                        (tests_df["category"] == cat)
                        & (tests_df["model"] == model)
                        & (tests_df["column"] == dname)
                    ]
                    test_name = hit["test"].iloc[0] if len(hit) else ""
                row[f"{dname}_p"] = float(hit["p_holm"].max()) if len(hit) else np.nan
                row[f"{dname}_test"] = test_name if len(hit) else ""
            rows.append(row)
    return ProtocolComparison(
        metric=metric,
        label=spec.label,
        alpha=alpha,
        n_resamples=n_resamples,
        table=pd.DataFrame(rows),
        per_seed=per_seed,
        replicates=cell_reps,
        clustered=clustered,
    )
