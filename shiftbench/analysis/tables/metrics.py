"""Paper tables read from a run's ``metrics.parquet`` (whole-map and per-run numbers,
with no per-image data to bootstrap): pixel metrics per protocol, efficiency per model and
one metric at every level of a severity sweep. The numbers only, like :mod:`.tables`
(which re-exports them); :mod:`.render` lays them out."""

from __future__ import annotations

import numpy as np
import pandas as pd

from shiftbench.results import schema

__all__ = ["EFFICIENCY_ORDER", "PIXEL_METRICS", "efficiency_table", "pixel_table", "severity_table"]

PROTOCOLS = schema.PROTOCOLS
DELTAS = schema.DELTAS  # (column, minuend protocol, subtrahend protocol)
COLUMNS = (*PROTOCOLS, *schema.DELTA_COLUMNS)

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
