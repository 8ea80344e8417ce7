"""The robustness part of a report, from the shift-noadapt rows of ``metrics.parquet``:
the summary table (AUSC, relative robustness, worst level, mCE with a baseline), the
corruption error per shift, the ranking across shifts (with its critical-difference
diagram) and the heat maps of a metric per shift and severity. The numbers come from
:mod:`shiftbench.analysis.stats.robustness`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from shiftbench.analysis.report.context import Build, suite_name
from shiftbench.analysis.report.html import records
from shiftbench.errors import ShiftbenchError

__all__ = ["robustness_tables"]

_SUMMARY_NOTES = [
    "Clean and mean shifted AUROC, drop (clean $-$ mean shifted) and AUSC in \\%; "
    "relative robustness = mean shifted / clean; AUSC: area under the severity curve "
    "from clean (severity 0) to the last level, divided by that level; worst level: "
    "lowest AUROC and where. Definitions: docs/robustness.md.",
]
_SUMMARY_PM = "$\\pm$: standard deviation of the same number computed seed by seed."
_SUMMARY_BOLD = (
    "Bold: best model in Clean, Mean shifted, Rel.\\ robust.\\ and AUSC (higher is better)."
)
_MCE_NOTE = (
    "mCE: sum over levels of the error $1-$AUROC, divided by the baseline's, "
    "averaged over shifts; relative mCE does the same with the errors minus the clean "
    "error. In \\%, the baseline scores 100; lower is better."
)
_NO_MCE_NOTE = "mCE needs a baseline model: pass \\texttt{-{}-baseline} MODEL."


def robustness_tables(b: Build) -> None:
    """Robustness summary, corruption errors, ranking across shifts, heat maps."""
    from shiftbench.analysis.stats import robustness as rb

    metrics = b.run.metrics
    if metrics is None or "shift-noadapt" not in set(metrics["protocol"]):
        b.out.skipped.append("robustness tables: no shift-noadapt rows in metrics.parquet")
        return
    suite = suite_name(b.run)
    curves = rb.curve_frame(metrics, "image_auroc", "shift-noadapt", suite)
    if curves.empty or not (curves["severity"] > 0).any():
        b.out.skipped.append("robustness tables: no shifted image AUROC")
        return
    baseline = b.baseline
    if baseline is not None and baseline not in set(curves["model"]):
        raise ShiftbenchError(
            f"--baseline {baseline!r}: not a model of the run; choose from "
            f"{', '.join(sorted(set(curves['model'])))}"
        )
    summ = rb.robustness_summary(curves, baseline)
    csv = b.table(summ, "robustness")
    b.grid(_summary_grid(b, summ, curves, suite), "robustness", "Robustness",
           "Robustness summary", csv)  # fmt: skip
    b.summary["robustness"] = records(summ)
    if baseline is not None:
        _corruption_errors(b, curves)
    _ranking(b, curves)
    if "heatmap" in b.kinds:
        _heatmaps(b, curves, suite)


def _summary_grid(b: Build, summ: pd.DataFrame, curves: pd.DataFrame, suite: str):
    """The summary table: clean, mean shifted, drop, relative robustness, AUSC, worst level
    (and mCE, relative mCE with a baseline) per model."""
    from shiftbench.analysis.tables import render

    baseline = b.baseline
    n_shifts = curves["shift"].nunique()
    levels = sorted(v for v in curves["severity"].unique() if v > 0)
    vcols = [
        ("clean", "Clean", "Clean"),
        ("mean_shifted", "Mean shifted", "Mean\nshifted"),
        ("drop", "Drop", "Drop"),
        ("relative_robustness", "Rel. robustness", "Rel.\nrobust."),
        ("ausc", "AUSC", "AUSC"),
        ("worst_text", "Worst level", "Worst\nlevel"),
    ]
    t = summ.copy()
    t["worst_text"] = [
        (f"{100 * w:.1f} ({s + ', ' if n_shifts > 1 else ''}sev. {lv:g})" if np.isfinite(w) else "–")
        for w, s, lv in zip(t["worst"], t["worst_shift"], t["worst_severity"], strict=False)
    ]  # fmt: skip
    formats = {"drop": {"signed": False}}
    bold = {"clean": True, "mean_shifted": True, "drop": False, "relative_robustness": True,
            "ausc": True}  # fmt: skip
    if baseline is not None:
        vcols += [("mce", "mCE", "mCE"), ("relative_mce", "Rel. mCE", "Rel.\nmCE")]
        bold.update({"mce": False, "relative_mce": False})
    return render.render_frame(
        t,
        caption=f"Robustness of image AUROC under suite {suite} (shift, no adapt.; "
        f"{len(levels)} level{'s' if len(levels) > 1 else ''}), {b.over}."
        + (f" mCE relative to {render.latex_escape(baseline)}." if baseline else ""),
        label="tab:robustness",
        text_columns=[("model", "Model", "Model")],
        value_columns=vcols,
        notes=_SUMMARY_NOTES + [_MCE_NOTE if baseline else _NO_MCE_NOTE],
        bold={k: v for k, v in bold.items() if v},
        formats={**formats, "relative_robustness": {"scale": 1.0, "digits": 3},
                 "mce": {"digits": 1}, "relative_mce": {"digits": 1}},
        half_columns={c: f"{c}_sd" for c, _, _ in vcols if f"{c}_sd" in t.columns},
        pm_rule=_SUMMARY_PM, bold_rule=_SUMMARY_BOLD,
    )  # fmt: skip


def _corruption_errors(b: Build, curves: pd.DataFrame) -> None:
    """The corruption error per model and shift (relative to the baseline); laid out as a
    table only with more than one shift."""
    from shiftbench.analysis.stats import robustness as rb
    from shiftbench.analysis.tables import render

    baseline = b.baseline
    ce = rb.corruption_errors(rb.mean_curves(curves), baseline)
    csv = b.table(ce, "corruption_error")
    if curves["shift"].nunique() > 1:
        wide = ce.pivot_table(index="model", columns="shift", values="ce").reset_index()
        cols = [(c, c, render.latex_escape(c)) for c in wide.columns if c not in ("model", "all")]
        grid = render.render_frame(
            wide, caption=f"Corruption error per shift (\\%, baseline "
            f"{render.latex_escape(baseline)} = 100), {b.over}.", label="tab:corruption_error",
            text_columns=[("model", "Model", "Model")], value_columns=cols,
            notes=["Per shift: sum over levels of $1-$AUROC divided by the baseline's."],
        )  # fmt: skip
        b.grid(grid, "corruption_error", "Robustness", "Corruption error per shift", csv)


def _ranking(b: Build, curves: pd.DataFrame) -> None:
    """Average ranks across shifts and levels (Friedman / Nemenyi), and their
    critical-difference diagram when there are enough blocks."""
    from shiftbench.analysis.figures import curves as fig
    from shiftbench.analysis.stats import robustness as rb
    from shiftbench.analysis.tables import render

    rk = rb.ranking(curves, b.alpha)
    if rk.result is None:
        b.out.skipped.append(f"robustness ranking: {rk.reason}")
        return
    r = rk.result
    ranks = pd.DataFrame({"model": r.average_ranks.index, "average_rank": r.average_ranks.values})
    ranks["friedman_chi2"], ranks["friedman_p"] = r.statistic, r.p_value
    ranks["critical_difference"], ranks["n_blocks"] = r.critical_difference, r.n_blocks
    csv = b.table(ranks, "robustness_ranks")
    grid = render.render_frame(
        ranks, caption=f"Average rank of image AUROC across shifts and levels (1 = best; "
        f"shift, no adapt.), {r.n_blocks} blocks.", label="tab:robustness_ranks",
        text_columns=[("model", "Model", "Model")],
        value_columns=[("average_rank", "Average rank", "Average rank")],
        notes=[f"{_blocks_note(rk)} Friedman "
               f"$\\chi^2 = {r.statistic:.2f}$, $p = {r.p_value:.3g}$; Nemenyi critical difference "
               f"{r.critical_difference:.2f} at $\\alpha = {b.alpha:g}$."],
        formats={"average_rank": {"scale": 1.0, "digits": 2}},
    )  # fmt: skip
    b.grid(grid, "robustness_ranks", "Robustness", "Ranking across shifts", csv)
    if "cd" not in b.kinds:
        return
    if not rk.draw_cd:
        b.out.skipped.append(f"critical-difference diagram across shifts: {rk.reason}")
        return
    b.figure(
        fig.critical_difference_diagram(
            r, b.fdir / "cd_robustness", title="Image AUROC across shifts"
        ),
        f"Critical-difference diagram (Nemenyi, alpha={b.alpha:g}) of image AUROC "
        f"under shift, no adapt., averaged over shifts and levels; {rk.blocks}. Models "
        "joined by a bar do not differ significantly.",
        "Robustness", "Critical differences across shifts",
    )  # fmt: skip


def _blocks_note(rk) -> str:
    """The ranking table's note on its blocks (LaTeX)."""
    if rk.n_seeds <= 1:
        return "Blocks: categories, each the mean over shifts and levels."
    return (
        "Blocks: category $\\times$ seed, each the mean over shifts and levels; the seeds "
        "of one category share its images, so the blocks are not independent."
    )


def _heatmaps(b: Build, curves: pd.DataFrame, suite: str) -> None:
    """Image AUROC and pixel PRO per shift and severity, one panel per model."""
    from shiftbench.analysis.figures import curves as fig
    from shiftbench.analysis.figures.grids import HEATMAP_RANGE
    from shiftbench.analysis.stats import robustness as rb

    for metric, label in (("image_auroc", "Image AUROC"), ("pixel_aupro", "Pixel PRO")):
        c = curves if metric == "image_auroc" else rb.curve_frame(
            b.run.metrics, metric, "shift-noadapt", suite)  # fmt: skip
        if c.empty or not (c["severity"] > 0).any():
            continue
        hf = rb.heatmap_frame(c)
        b.table(hf, f"heatmap_{metric}")
        lo, hi = HEATMAP_RANGE[metric]
        b.figure(
            fig.robustness_heatmap(hf, b.fdir / f"heatmap_{metric}", label=label,
                                   vrange=(lo, hi)),
            f"{label} per shift and severity (shift, no adapt.), {b.over} and categories: "
            "cell = value, below it the change from clean (both in %); one fixed colour "
            f"scale, {100 * lo:g}-{100 * hi:g}%, for every model and run (values outside "
            "take the end colour).",
            "Robustness", f"{label} heat map",
        )  # fmt: skip
