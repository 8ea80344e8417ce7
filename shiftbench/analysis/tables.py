"""Paper tables from a run's per-image scores: protocol comparison with bootstrap CIs and
Holm-corrected tests, pixel metrics, efficiency. The numbers only: :mod:`.render` lays them
out as LaTeX (booktabs), Markdown and HTML; the report writes them as CSV too.

How the numbers are made (also printed in every table caption):

* A cell is the metric on the test images, averaged over seeds; ``±`` is half the width of
  the 95% percentile bootstrap interval (exact bounds are in the CSV). Resampling is
  stratified by label and *paired*: for one (category, seed) the same resamples of the
  test images serve every protocol and model, since Test-clean and Test-shift hold the
  same images. The seed average and the macro average (``mean`` row) average the
  replicates index-wise, so their intervals come from the same bootstrap.
* Marks on the two Δ columns: for a category, one test per seed (DeLong for AUROC,
  McNemar on the decisions for F1, paired bootstrap for AUPRC), Holm-corrected over every
  test of the table; a mark needs every seed to pass (the largest adjusted p counts).
  For the ``mean`` row, a Wilcoxon signed-rank test over the (category, seed) pairs,
  Holm-corrected over the mean-row family. ``*`` p < 0.05, ``**`` p < 0.01, ``***`` p < 0.001.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from shiftbench._hashing import stable_int
from shiftbench.analysis import stats
from shiftbench.results import schema

__all__ = [
    "COLUMNS",
    "DELTAS",
    "EFFICIENCY_ORDER",
    "METRICS",
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
    per (category, model, column), for figures.
    """

    metric: str
    label: str
    alpha: float
    n_resamples: int
    table: pd.DataFrame
    per_seed: pd.DataFrame
    replicates: dict[tuple[str, str, str], np.ndarray] = field(repr=False)


def _stable_seed(*parts: object) -> int:
    return stable_int("|".join(map(str, parts)), 8, "little")


def _aligned(
    test: pd.DataFrame,
) -> dict[tuple[str, int], tuple[np.ndarray, dict[tuple[str, str], pd.DataFrame]]]:
    """Per (category, seed): labels and each (model, protocol)'s test rows in one order."""
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
        labels = next(iter(groups.values()))["label"].to_numpy().astype(np.int64)
        out[(cat, seed)] = (labels, groups)
    return out


def _pair_test(
    spec: _MetricSpec, labels: np.ndarray, a: pd.DataFrame, b: pd.DataFrame, d_reps: np.ndarray
) -> float:
    if spec.test == "delong":
        if labels.min() == labels.max():
            return float("nan")
        return stats.delong(labels, a["score"].to_numpy(), b["score"].to_numpy()).p_value
    if spec.test == "mcnemar":
        return stats.mcnemar(a["decision"].to_numpy(), b["decision"].to_numpy(), labels).p_value
    return stats.bootstrap_p_value(d_reps)


def _per_seed(
    test: pd.DataFrame, spec: _MetricSpec, n_resamples: int, seed: int
) -> tuple[dict, dict, list[dict]]:
    """Per (category, model, seed, protocol): the point estimate and its bootstrap
    replicates; and one paired test per (category, model, seed, Δ column)."""
    reps: dict[tuple[str, str, int, str], np.ndarray] = {}
    est: dict[tuple[str, str, int, str], float] = {}
    tests: list[dict] = []
    for (cat, run_seed), (labels, groups) in _aligned(test).items():
        rng = np.random.default_rng(_stable_seed(seed, cat, run_seed))
        idx = stats.stratified_resample_indices(labels, n_resamples, rng)
        weights = stats.resample_weights(idx, labels.size)
        for (model, protocol), rows in groups.items():
            values = rows[spec.column].to_numpy().astype(np.float64)
            est[(cat, model, run_seed, protocol)] = spec.metric(labels, values)
            reps[(cat, model, run_seed, protocol)] = spec.metric.weighted(labels, values, weights)
        for model in sorted({m for m, _ in groups}):
            for dname, pa, pb in DELTAS:
                if (model, pa) in groups and (model, pb) in groups:
                    d = reps[(cat, model, run_seed, pa)] - reps[(cat, model, run_seed, pb)]
                    p = _pair_test(spec, labels, groups[(model, pa)], groups[(model, pb)], d)
                    tests.append(
                        {"category": cat, "model": model, "seed": run_seed, "column": dname, "p": p}
                    )
    return est, reps, tests


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
    tests_df = pd.DataFrame(tests, columns=["category", "model", "seed", "column", "p"])
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
    est, reps, tests = _per_seed(scores[scores["split"] == "test"], spec, n_resamples, seed)
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
                    test_name = spec.test
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
    )


# --------------------------------------------------------------------------------------
# Pixel metrics (from metrics.parquet: a run keeps whole-map metrics, not per-pixel data)
# --------------------------------------------------------------------------------------

#: the pixel metrics tabled (name -> label); the names are :data:`schema.PIXEL_METRICS`
PIXEL_METRICS = {
    "pixel_auroc": "Pixel AUROC",
    "pixel_aupro": "Pixel PRO (normalised AUPRO up to FPR 0.3)",
    "pixel_f1": "Pixel F1 at the Val threshold",
}


def pixel_table(metrics: pd.DataFrame, metric: str, severity: float | None = None) -> pd.DataFrame:
    """One metric of ``metrics.parquet`` per (category, model), ``mean`` row last.

    For each of :data:`COLUMNS`: ``<col>`` the mean over seeds, ``<col>_sd`` the standard
    deviation over seeds (NaN with one seed); a Δ column is the seed-wise difference of
    two protocols, then averaged. ``severity`` picks one level of a sweep (protocols that
    see no shift have no level). Columns of protocols the run did not use are NaN.
    """
    m = metrics[metrics["metric"] == metric]
    if severity is not None and "severity" in m.columns:
        m = m[(m["severity"] == severity) | m["severity"].isna()]
    wide = m.pivot_table(
        index=["category", "model", "seed"], columns="protocol", values="value", aggfunc="mean"
    )
    for p in PROTOCOLS:
        if p not in wide.columns:
            wide[p] = np.nan
    for name, a, b in DELTAS:
        wide[name] = wide[a] - wide[b]
    g = wide[list(COLUMNS)].groupby(level=["category", "model"])
    mean, sd = g.mean(), g.std(ddof=1)
    out = mean.join(sd.add_suffix("_sd")).reset_index()
    out["_mean_last"] = out["category"] == schema.MEAN_CATEGORY
    out = out.sort_values(["_mean_last", "category", "model"]).drop(columns="_mean_last")
    return out.reset_index(drop=True)


assert set(PIXEL_METRICS) <= set(schema.PIXEL_METRICS)


# --------------------------------------------------------------------------------------
# Efficiency
# --------------------------------------------------------------------------------------

#: the column order of the efficiency table: every :data:`schema.EFFICIENCY_METRICS`, timing first
EFFICIENCY_ORDER = (
    "fit_seconds",
    "ms_per_image",
    "images_per_second",
    "model_size_mb",
    "peak_memory_mb",
    "n_parameters",
)
assert sorted(EFFICIENCY_ORDER) == sorted(schema.EFFICIENCY_METRICS)


def efficiency_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Efficiency per model from ``metrics.parquet``: mean over categories, seeds and
    protocols of every efficiency metric present (per-category rows; the ``mean`` category
    is used only when no per-category row exists). One row per model.

    Latency is measured once: ``ms_per_image`` is averaged and ``images_per_second`` is
    derived from that mean (``1000 / ms_per_image``), never averaged on its own -- the mean
    of rates is not the rate of the mean time, and the two columns would contradict each
    other. A run that stored only ``images_per_second`` gets its latency from each row
    (``1000 / images_per_second``) first."""
    names = list(EFFICIENCY_ORDER)
    m = metrics[metrics["metric"].isin(names)]
    if m.empty:
        return pd.DataFrame(columns=["model", *names])
    per_cat = m[m["category"] != schema.MEAN_CATEGORY]
    m = per_cat if len(per_cat) else m
    m = m.copy()
    ips = m["metric"] == "images_per_second"
    has_ms = set(m.loc[m["metric"] == "ms_per_image", "model"])
    derive = ips & ~m["model"].isin(has_ms)  # latency only as a rate: turn each row into ms
    m.loc[derive, "value"] = 1000.0 / m.loc[derive, "value"]
    m.loc[derive, "metric"] = "ms_per_image"
    m = m[~(m["metric"] == "images_per_second")]
    out = m.pivot_table(index="model", columns="metric", values="value", aggfunc="mean")
    if "ms_per_image" in out.columns:
        out["images_per_second"] = 1000.0 / out["ms_per_image"]
    return out.reindex(columns=[n for n in names if n in out.columns]).reset_index()


# --------------------------------------------------------------------------------------
# Severity sweep: every level as a column
# --------------------------------------------------------------------------------------


def severity_table(metrics: pd.DataFrame, metric: str = "image_auroc") -> pd.DataFrame:
    """One metric at every severity of a sweep, from ``metrics.parquet``.

    One row per (protocol, category, model) for the shifted protocols (categories in
    order, ``mean`` last); columns ``clean`` (the reference: protocol ``clean``, which has
    no level) and ``sev<L>`` for each level, each the mean over seeds, with ``<col>_sd``
    the standard deviation over seeds (NaN with one seed)."""
    m = metrics[metrics["metric"] == metric]
    if schema.SHIFT_COLUMN in m.columns:  # per-shift runs: the mean over the shifts per seed
        m = m.groupby(
            ["category", "model", "seed", "protocol", "severity"], dropna=False, as_index=False
        )["value"].mean()
    clean = (
        m[m["protocol"] == "clean"]
        .groupby(["category", "model", "seed"])["value"]
        .mean()
        .rename("clean")
    )
    shifted = m[(m["protocol"] != "clean") & m["severity"].notna()]
    levels = sorted(shifted["severity"].unique())
    rows = []
    for protocol in [p for p in PROTOCOLS if p in set(shifted["protocol"])]:
        wide = shifted[shifted["protocol"] == protocol].pivot_table(
            index=["category", "model", "seed"], columns="severity", values="value", aggfunc="mean"
        )
        wide.columns = [f"sev{int(c) if float(c).is_integer() else c}" for c in wide.columns]
        wide = wide.join(clean, how="left")
        g = wide.groupby(level=["category", "model"])
        out = g.mean().join(g.std(ddof=1).add_suffix("_sd")).reset_index()
        out.insert(0, "protocol", protocol)
        rows.append(out)
    if not rows:
        return pd.DataFrame(columns=["protocol", "category", "model", "clean"])
    out = pd.concat(rows, ignore_index=True)
    out["_mean_last"] = out["category"] == schema.MEAN_CATEGORY
    order = {p: i for i, p in enumerate(PROTOCOLS)}
    out["_p"] = out["protocol"].map(order)
    out = out.sort_values(["_p", "_mean_last", "category", "model"]).drop(
        columns=["_p", "_mean_last"]
    )
    cols = ["clean", *[f"sev{int(v) if float(v).is_integer() else v}" for v in levels]]
    lead = ["protocol", "category", "model"]
    return out[lead + cols + [f"{c}_sd" for c in cols]].reset_index(drop=True)


# --------------------------------------------------------------------------------------
# Per defect type
# --------------------------------------------------------------------------------------

#: the defect type of normal images in ``scores.parquet``
NORMAL_DEFECT = "good"


def defect_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Per (category, model, protocol, defect type): the share of test images called
    anomalous at the protocol's validation threshold (``decision``), mean over seeds.

    For a defect type this is the image recall (TPR); for the normal images
    (``defect_type == "good"`` or label 0) it is the false-positive rate. ``n`` is the number
    of test images of the type in one seed (the mean over seeds). Columns: ``category,
    model, protocol, defect_type, rate, rate_sd, n``."""
    test = scores[scores["split"] == "test"].copy()
    if "defect_type" not in test.columns:
        test["defect_type"] = np.where(test["label"] == 1, "anomalous", NORMAL_DEFECT)
    test["defect_type"] = test["defect_type"].fillna("").astype(str)
    test.loc[test["label"] == 0, "defect_type"] = NORMAL_DEFECT
    test.loc[(test["label"] == 1) & (test["defect_type"] == ""), "defect_type"] = "anomalous"
    keys = ["category", "model", "protocol", "defect_type"]
    per_seed = (
        test.groupby([*keys, "seed"], sort=True)
        .agg(rate=("decision", "mean"), n=("decision", "size"))
        .reset_index()
    )
    out = (
        per_seed.groupby(keys, sort=True)
        .agg(rate=("rate", "mean"), rate_sd=("rate", "std"), n=("n", "mean"))
        .reset_index()
    )
    order = {p: i for i, p in enumerate(PROTOCOLS)}
    out["_p"] = out["protocol"].map(order).fillna(len(order))
    out["_good"] = out["defect_type"] == NORMAL_DEFECT
    out = out.sort_values(["category", "model", "_p", "_good", "defect_type"])
    return out.drop(columns=["_p", "_good"]).reset_index(drop=True)
