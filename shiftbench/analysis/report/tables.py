"""Which tables a report writes, and how each is laid out: the protocol comparison of
the image metrics, pixel metrics, threshold transfer, efficiency, every severity of a
sweep, and recall (and pixel PRO) per defect type. Each goes to ``tables/`` as CSV and in
the report's formats (:meth:`Build.grid`); the robustness tables are in
:mod:`.robustness`."""

from __future__ import annotations

import pandas as pd

from shiftbench.analysis.report.context import Build, suite_name
from shiftbench.results import schema

__all__ = ["TABLE_METRICS", "defect_tables", "image_tables", "other_tables", "sweep_tables"]

TABLE_METRICS = ("image_auroc", "image_auprc", "image_f1")


def image_tables(b: Build, n_resamples: int, seed: int) -> dict:
    """Protocol comparison tables; returns them by metric."""
    from shiftbench.analysis.tables import comparison as tables
    from shiftbench.analysis.tables import render

    comparisons = {}
    for metric in TABLE_METRICS:
        comp = tables.protocol_comparison(
            b.scores, metric, n_resamples=n_resamples, alpha=b.alpha, seed=seed
        )
        comparisons[metric] = comp
        csv = b.table(comp.table, metric)
        b.grid(render.render_comparison(comp, b.context, b.over), metric, "Protocols",
               comp.label, csv)  # fmt: skip
    return comparisons


def other_tables(b: Build) -> None:
    """Pixel metrics (whole-map values from metrics.parquet, at the tables' severity),
    threshold transfer and efficiency."""
    from shiftbench.analysis.stats import transfer
    from shiftbench.analysis.tables import comparison as tables
    from shiftbench.analysis.tables import render

    metrics = b.run.metrics
    if metrics is not None and schema.SHIFT_COLUMN in metrics.columns:
        # pooled like the image tables: a real target has its own table (report/syn2real.py)
        metrics = metrics[~metrics[schema.SHIFT_COLUMN].map(schema.is_target_shift).astype(bool)]
    if metrics is not None:
        for metric in tables.PIXEL_METRICS:
            if metric not in set(metrics["metric"]):
                continue
            table = tables.pixel_table(metrics, metric, b.level)
            csv = b.table(table, metric)
            b.grid(render.render_pixel(table, metric, b.context, b.over), metric, "Protocols",
                   tables.PIXEL_METRICS[metric], csv)  # fmt: skip
    tt = transfer.transfer_table(b.scores)
    csv = b.table(tt, "threshold_transfer")
    if len(tt):
        b.grid(render.render_transfer(tt, b.context, b.over), "threshold_transfer",
               "Thresholds", "Threshold transfer", csv)  # fmt: skip
    if metrics is None:
        b.out.skipped.append("efficiency table: no metrics.parquet")
        return
    eff = tables.efficiency_table(metrics)
    if len(eff):
        csv = b.table(eff, "efficiency")
        b.grid(render.render_efficiency(eff), "efficiency", "Efficiency", "Efficiency", csv)


def sweep_tables(b: Build) -> None:
    """Every severity as a column (and the clean reference)."""
    from shiftbench.analysis.figures.palette import protocol_label
    from shiftbench.analysis.tables import comparison as tables
    from shiftbench.analysis.tables import render

    metrics = b.run.metrics
    if metrics is None or len(b.levels) < 2:
        b.out.skipped.append("severity tables: the run did not sweep severities")
        return
    for metric, label in (("image_auroc", "Image AUROC"), ("pixel_aupro", "Pixel PRO")):
        if metric not in set(metrics["metric"]):
            continue
        t = tables.severity_table(metrics, metric)
        if t.empty:
            continue
        csv = b.table(t, f"severity_{metric}")
        levels = [c for c in t.columns if c.startswith("sev") and not c.endswith("_sd")]
        vcols = [("clean", "Clean", "Clean")] + [
            (c, f"Sev. {c[3:]}", f"Sev.\\ {c[3:]}") for c in levels
        ]
        t = t.assign(block=t["protocol"].map(protocol_label) + ", " + t["category"])
        grid = render.render_frame(
            t,
            caption=f"{label} (\\%) at every severity of suite {suite_name(b.run)}, {b.over}.",
            label=f"tab:severity_{metric}",
            text_columns=[("block", "Protocol, category", "Protocol, category"),
                          ("model", "Model", "Model")],
            value_columns=vcols,
            notes=["Clean: the clean protocol, the same reference for every level."],
            pm_rule="$\\pm$: standard deviation over seeds.",
            bold_rule="Bold: best per block and column.",
            group=True,
            bold={c: True for c, _, _ in vcols},
            half_columns={c: f"{c}_sd" for c, _, _ in vcols},
        )  # fmt: skip
        b.grid(grid, f"severity_{metric}", "Severity", f"{label} per severity", csv)


def _defect_grid(b: Build, d: pd.DataFrame, value: str, cat: str, caption: str, notes: list,
                 label: str, normal: bool):  # fmt: skip
    """Rows = (model, protocol), columns = defect types (normal images last, if ``normal``)."""
    from shiftbench.analysis.figures.palette import protocol_label
    from shiftbench.analysis.tables import comparison as tables
    from shiftbench.analysis.tables import render

    defects = sorted(x for x in set(d["defect_type"]) if x != tables.NORMAL_DEFECT)
    if normal and tables.NORMAL_DEFECT in set(d["defect_type"]):
        defects.append(tables.NORMAL_DEFECT)
    wide = d.pivot_table(index=["model", "protocol"], columns="defect_type", values=value)
    wide = wide.reindex(columns=defects).reset_index()
    order = {p: i for i, p in enumerate(schema.PROTOCOLS)}
    wide = wide.assign(_p=wide["protocol"].map(order)).sort_values(["model", "_p"])
    wide["protocol"] = wide["protocol"].map(protocol_label)
    n = d.groupby("defect_type")["n"].mean()

    def head(x: str, tex: bool) -> str:
        name = "normal FPR" if x == tables.NORMAL_DEFECT else (render.latex_escape(x) if tex else x)
        return f"{name}\n($n={n[x]:.0f}$)" if tex else f"{name} (n={n[x]:.0f})"

    return render.render_frame(
        wide, caption=caption, label=label,
        text_columns=[("model", "Model", "Model"), ("protocol", "Protocol", "Protocol")],
        value_columns=[(x, head(x, False), head(x, True)) for x in defects],
        notes=notes, group=True, formats={x: {"digits": 0} for x in defects},
    )  # fmt: skip


def defect_tables(b: Build) -> None:
    """Per category: image recall per defect type at the validation threshold (and the
    false-positive rate on normal images), per protocol; pixel PRO per defect type where
    the run saved maps."""
    from shiftbench.analysis.tables import comparison as tables
    from shiftbench.analysis.tables import render
    from shiftbench.analysis.tables.defects import defect_pro_table

    dt = tables.defect_table(b.scores)
    if dt.empty:
        return
    pro, skipped = defect_pro_table(b.run, b.level)
    b.out.skipped.extend(skipped)
    for cat in sorted(dt["category"].unique()):
        d = dt[dt["category"] == cat]
        csv = b.table(d, f"defects_{cat}")
        grid = _defect_grid(
            b, d, "rate", cat,
            caption=f"{render.latex_escape(cat)}: share of test images called anomalous per "
            f"defect type at the validation threshold, {b.over}; {b.context or 'no shift'}.",
            notes=["In \\%. For a defect type: image recall (true-positive rate); normal FPR: "
                   "false-positive rate on the normal test images. $n$: test images per seed. "
                   "A defect whose recall holds under shift survives it."],
            label=f"tab:defects_{cat}", normal=True,
        )  # fmt: skip
        b.grid(grid, f"defects_{cat}", "Defect types", f"Defect types, {cat}", csv)
        if pro.empty or cat not in set(pro["category"]):
            continue
        dp = pro[pro["category"] == cat]
        csv = b.table(dp, f"defects_pro_{cat}")
        seeds = sorted({int(x) for v in dp["seeds"] for x in str(v).split(",")})
        over = render.describe_seeds(len(seeds), seeds)
        grid = _defect_grid(
            b, dp.rename(columns={"pro": "rate"}), "rate", cat,
            caption=f"{render.latex_escape(cat)}: pixel PRO per defect type (\\%), {over}; "
            f"{b.context or 'no shift'}; models with saved maps.",
            notes=["Normalised AUPRO up to FPR 0.3 on the maps of the type's anomalous test "
                   "images plus all normal test images; shifted masks are the twins' masks. "
                   "$n$: anomalous test images of the type per seed."],
            label=f"tab:defects_pro_{cat}", normal=False,
        )  # fmt: skip
        b.grid(grid, f"defects_pro_{cat}", "Defect types", f"Pixel PRO per defect type, {cat}",
               csv)  # fmt: skip
