"""The real-target part of a report: ``tables/target.*`` (image AUROC clean, on the target
without and with adaptation, per model and category) and, when the run also has synthetic
conditions, a table of the rank correlations between each
synthetic condition's AUROC drop and the target's across models x categories
(``tables/syn2real.{csv,tex,md}``, the points in ``syn2real_points.csv``) and their scatter
(``figures/syn2real.{pdf,png}``). The numbers come from
:mod:`shiftbench.analysis.stats.syn2real`; too few points is said in the caption and in
:attr:`Report.warnings` (printed by ``shiftbench report``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from shiftbench.analysis.report.context import Build
from shiftbench.analysis.report.html import records
from shiftbench.results import schema

__all__ = ["syn2real_tables", "target_tables"]

_NOTES = [
    "Drop: clean $-$ shift (no adapt.) image AUROC of the same clean fit, per model and "
    "category (mean over seeds), in AUROC points $\\times$ 100. Kendall's tau-b and "
    "Spearman's rho between the synthetic and the real drops across the model "
    "$\\times$ category points; in brackets their percentile bootstrap interval over "
    "categories (categories drawn with replacement, all points of a drawn category kept). "
    "MAD: mean absolute difference of the drops. How to read it: docs/robustness.md.",
]


def _interval_text(value: float, lo: float, hi: float) -> str:
    if not np.isfinite(value):
        return "–"
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return f"{value:.2f}"
    return f"{value:.2f} [{lo:.2f}, {hi:.2f}]"


def _has_target(metrics: pd.DataFrame | None) -> bool:
    if metrics is None or schema.SHIFT_COLUMN not in metrics.columns:
        return False
    return bool(metrics[schema.SHIFT_COLUMN].map(schema.is_target_shift).any())


#: the metrics of a real target's tables: (metric, file suffix, caption name)
_TARGET_METRICS = (
    ("image_auroc", "", "Image AUROC"),
    ("pixel_aupro", "_pixel_aupro", "Pixel PRO (normalised AUPRO up to FPR 0.3)"),
)


def target_tables(b: Build) -> None:
    """Image AUROC and pixel PRO on each real target (mean ± SD over seeds), from
    ``metrics.parquet``: ``tables/target_<name>.*`` and ``target_<name>_pixel_aupro.*``."""
    metrics = b.run.metrics
    shifts = metrics[schema.SHIFT_COLUMN].dropna().unique()
    for target in sorted(x for x in shifts if schema.is_target_shift(x)):
        for metric, suffix, title in _TARGET_METRICS:
            m = metrics[metrics["metric"] == metric]
            on = m[m[schema.SHIFT_COLUMN] == target]
            if on.empty:
                continue
            name = schema.file_token(target).replace("-", "_", 1) + suffix  # target_lamp2
            _target_table(b, m[m["protocol"] == "clean"], on, target, name, title)


def _target_table(b: Build, clean, on, target: str, name: str, title: str) -> None:
    from shiftbench.analysis.tables import render

    parts = [clean.assign(col="clean")]
    parts += [on[on["protocol"] == p].assign(col=p) for p in ("shift-noadapt", "shift-adapt")]
    per_seed = pd.concat(parts).pivot_table(
        index=["model", "category", "seed"], columns="col", values="value"
    )
    cols = [c for c in ("clean", "shift-noadapt", "shift-adapt") if c in per_seed.columns]
    for delta, a, z in schema.DELTAS:
        if a in per_seed.columns and z in per_seed.columns:
            per_seed[delta] = per_seed[a] - per_seed[z]
            cols.append(delta)
    grouped = per_seed.groupby(["model", "category"], sort=True)[cols]
    t = grouped.mean().join(grouped.std(ddof=1).add_suffix("_sd")).reset_index()
    order = sorted(set(t["category"]) - {schema.MEAN_CATEGORY}) + [schema.MEAN_CATEGORY]
    t["category"] = pd.Categorical(t["category"], order)
    t = t.sort_values(["model", "category"]).astype({"category": str})
    csv = b.table(t.assign(target=target), name)
    vcols = [(c, render.HEADERS[c][0], render.HEADERS[c][1]) for c in cols]
    grid = render.render_frame(
        t,
        caption=f"{title} on the real target {render.latex_escape(target)}: the clean test "
        f"split, then the target's test split without and with adaptation, {b.over}.",
        label=f"tab:{name}",
        text_columns=[("model", "Model", "Model"), ("category", "Category", "Category")],
        value_columns=vcols,
        notes=[
            "In \\%; $\\pm$: standard deviation over seeds. The target's images are not "
            "twins of the clean ones, so its differences are unpaired and untested; "
            "category mean = macro average over categories."
        ],
        group=True,
        formats={c: {"signed": True} for c, _, _ in vcols if c.startswith("d_")},
        half_columns={c: f"{c}_sd" for c in cols},
    )
    b.grid(grid, name, "Real target", f"{title}, {target}", csv)


def syn2real_tables(b: Build, n_resamples: int, seed: int) -> None:
    """The target tables, and the syn2real table and scatter, when the run has a real
    target."""
    from shiftbench.analysis.stats import syn2real as s2r

    metrics = b.run.metrics
    if not _has_target(metrics):
        return  # nothing to say: an ordinary run
    target_tables(b)
    table, points = s2r.syn2real_table(metrics, n_resamples=n_resamples, alpha=b.alpha, seed=seed)
    if table.empty:
        b.out.skipped.append(
            "syn2real: the run has a real target but no synthetic condition to compare with"
        )
        return
    csv = b.table(table, "syn2real")
    b.table(points, "syn2real_points")
    warning = s2r.few_points_warning(int(table["n_points"].min()), int(table["n_categories"].min()))
    if warning is not None:
        from shiftbench.analysis.tables.grid import plain_caption

        b.out.warnings.append(f"syn2real: {plain_caption(warning)}")
    b.grid(_grid(b, table, warning), "syn2real", "Synthetic to real", "Synthetic to real", csv)
    b.summary["syn2real"] = records(table)
    if "syn2real" in b.kinds:
        from shiftbench.analysis.figures.syn2real import syn2real_scatter

        b.figure(
            syn2real_scatter(points, table, b.fdir / "syn2real"),
            "Synthetic drop vs real drop of image AUROC (clean $-$ shift, no adapt.), one "
            "point per model x category; dashed: identity (the synthetic shift predicts the "
            "real drop exactly). Title: Kendall's tau." + (f" {warning}" if warning else ""),
            "Synthetic to real",
            "Synthetic vs real drop",
        )


def _grid(b: Build, table: pd.DataFrame, warning: str | None):
    from shiftbench.analysis.tables import render

    t = table.copy()
    t["condition"] = [
        s if not np.isfinite(v) else f"{s} @ {v:g}"
        for s, v in zip(t["shift"], t["severity"], strict=True)
    ]
    t["kendall_text"] = [
        _interval_text(*v)
        for v in zip(t["kendall_tau"], t["kendall_lo"], t["kendall_hi"], strict=True)
    ]
    t["spearman_text"] = [
        _interval_text(*v)
        for v in zip(t["spearman_rho"], t["spearman_lo"], t["spearman_hi"], strict=True)
    ]
    t["n_text"] = [
        f"{n} ({k}, {m})"
        for n, k, m in zip(t["n_points"], t["n_categories"], t["n_models"], strict=True)
    ]
    targets = ", ".join(render.latex_escape(x) for x in sorted(t["target"].unique()))
    level = round(100 * (1 - b.alpha))
    caption = (
        f"Does a synthetic shift predict the real one ({targets})? Rank correlation of "
        f"image AUROC drops across models $\\times$ categories with {level}\\% bootstrap "
        f"intervals, {b.over}."
    )
    if warning:  # said in the caption, explained in the notes
        n = int(t["n_points"].min())
        caption += f" Caution: {n} point{'s' if n != 1 else ''}, too few to mean much (see notes)."
    notes = list(_NOTES)
    if warning:
        notes.append(warning)
    return render.render_frame(
        t,
        caption=caption,
        label="tab:syn2real",
        text_columns=[("target", "Target", "Target"), ("condition", "Synthetic", "Synthetic")],
        value_columns=[
            ("kendall_text", "Kendall τ [CI]", "Kendall $\\tau$ [CI]"),
            ("spearman_text", "Spearman ρ [CI]", "Spearman $\\rho$ [CI]"),
            ("mean_abs_diff", "MAD", "MAD"),
            ("mean_synthetic_drop", "Syn. drop", "Syn.\ndrop"),
            ("mean_real_drop", "Real drop", "Real\ndrop"),
            ("n_text", "Points (categories, models)", "Points\n(cat., models)"),
        ],
        notes=notes,
        group=True,
        formats={c: {"signed": c != "mean_abs_diff"} for c in
                 ("mean_abs_diff", "mean_synthetic_drop", "mean_real_drop")},
    )  # fmt: skip
