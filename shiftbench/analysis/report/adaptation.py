"""The adaptation part of a report (studies run with ``--adapt``): the recovery table per
model x shift x severity x strategy x k (image AUROC with its interval, gap closed, the
paired test against ``shift-noadapt``, PRO, cost) and the budget figures (a metric against
the number of target images). The numbers come from
:mod:`shiftbench.analysis.stats.recovery`.

The other tables of the report compare protocols one row each; a study with adaptation has
one ``shift-adapt`` row per strategy and k, so :func:`standard_view` gives those tables the
rows they were built for (``shift-noadapt`` and the ``refit`` upper bound), and this module
reads the full run.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from shiftbench.analysis.report.context import Build, suite_name
from shiftbench.analysis.report.html import records
from shiftbench.results import Run, schema

__all__ = ["adaptation_report", "standard_view", "transductive_strategies"]

_NOTES = [
    "AUROC: image AUROC on the shifted test images in \\%, mean over categories and seeds, "
    "with its 95\\% paired bootstrap interval (images resampled within each label, the same "
    "resamples for every strategy). $\\Delta$: change from shift, no adapt.\\ (points). "
    "Gap closed: (adapted $-$ no adapt.) / (refit $-$ no adapt.); 1 = as good as a full "
    "refit; undefined (--) where the refit gains less than one point. Definitions: "
    "docs/robustness.md.",
    "Marks: * $p < {alpha}$ against shift, no adapt.\\ (paired bootstrap, "
    "Holm-corrected over the strategies and budgets of one model, shift and severity).",
]
_TRANSDUCTIVE_NOTE = (
    "(transd.): transductive (adapts on the unlabelled test images themselves); not comparable "
    "with strategies that see only verified-normal target images."
)


def transductive_strategies(run: Run) -> frozenset[str]:
    """Strategies the run's manifest records as transductive."""
    info = run.manifest.get("adaptation") or {}
    return frozenset(
        name for name, d in info.items() if isinstance(d, dict) and d.get("transductive")
    )


def standard_view(run: Run) -> Run:
    """The run as the protocol tables expect it: without the adaptation axis, keeping
    ``clean``, ``shift-noadapt`` and the ``refit`` rows of ``shift-adapt`` (``refit`` is
    today's ``shift-adapt``). A run without adaptation columns is returned as it is."""
    from shiftbench.analysis.stats.recovery import without_adaptation

    if schema.ADAPTATION_COLUMN not in run.scores.columns:
        return run
    return dataclasses.replace(
        run, scores=without_adaptation(run.scores), metrics=without_adaptation(run.metrics)
    )


def adaptation_report(b: Build, run: Run, n_resamples: int, seed: int) -> None:
    """Recovery table and budget figures of a run with adaptation strategies."""
    from shiftbench.analysis.stats import recovery

    if not recovery.has_adaptation(run.scores):
        return
    shift = suite_name(run)
    table = recovery.recovery_table(
        run.scores, run.metrics, shift_name=shift, n_resamples=n_resamples,
        alpha=b.alpha, seed=seed,
    )  # fmt: skip
    if table.empty:
        b.out.skipped.append("recovery table: no shift-noadapt and shift-adapt rows to compare")
        return
    transductive = transductive_strategies(run)
    table["transductive"] = table["adaptation"].isin(transductive)
    csv = b.table(table, "recovery")
    b.grid(_grid(b, table, transductive), "recovery", "Adaptation",
           "Recovery per strategy and budget", csv)  # fmt: skip
    b.summary["recovery"] = records(
        table[["model", "shift", "severity", "adaptation", "k", "auroc", "gap_closed", "p_holm"]]
    )
    if "budget" in b.kinds:
        _budget_figures(b, run, shift, transductive)


def _interval(v: float, lo: float, hi: float, *, scale: float, digits: int, signed=False) -> str:
    if not np.isfinite(v):
        return "–"
    f = f"{{:{'+' if signed else ''}.{digits}f}}"
    text = f.format(scale * v)
    if np.isfinite(lo) and np.isfinite(hi):
        text += f" [{scale * lo:.{digits}f}, {scale * hi:.{digits}f}]"
    return text


def _grid(b: Build, t: pd.DataFrame, transductive: frozenset[str]):
    from shiftbench.analysis.tables import render

    t = t.copy()
    t["strategy"] = [
        f"{a}{' (transd.)' if a in transductive else ''}" + (f", k={k}" if k else "")
        for a, k in zip(t["adaptation"], t["k"], strict=True)
    ]
    many_shifts = t["shift"].nunique() > 1 or t["severity"].nunique() > 1
    t["where"] = [
        f"{s} @{v:g}" if v else str(s) for s, v in zip(t["shift"], t["severity"], strict=True)
    ]
    t["auroc_text"] = [
        _interval(v, lo, hi, scale=100, digits=1)
        for v, lo, hi in zip(t["auroc"], t["auroc_low"], t["auroc_high"], strict=True)
    ]
    t["delta_text"] = [
        _interval(v, np.nan, np.nan, scale=100, digits=1, signed=True)
        + ("*" if np.isfinite(p) and p < b.alpha else "")
        for v, p in zip(t["delta"], t["p_holm"], strict=True)
    ]
    t["gap_text"] = [
        _interval(v, lo, hi, scale=1, digits=2)
        for v, lo, hi in zip(t["gap_closed"], t["gap_low"], t["gap_high"], strict=True)
    ]
    value_columns = [
        ("auroc_text", "AUROC [95% CI]", "AUROC [95\\% CI]"),
        ("delta_text", "Δ", "$\\Delta$"),
        ("gap_text", "Gap closed [95% CI]", "Gap closed [95\\% CI]"),
    ]
    formats = {}
    if "pro" in t.columns and t["pro"].notna().any():
        value_columns.append(("pro", "PRO", "PRO"))
        formats["pro"] = {"scale": 100.0, "digits": 1}
    for col, plain, tex, fmt in (
        ("adapt_seconds", "Adapt s", "Adapt s", {"scale": 1.0, "digits": 2}),
        ("target_images", "Target images", "Target\nimages", {"scale": 1.0, "digits": 0}),
    ):
        if col in t.columns and t[col].notna().any():
            value_columns.append((col, plain, tex))
            formats[col] = fmt
    text_columns = [("model", "Model", "Model")]
    if many_shifts:
        text_columns.append(("where", "Shift", "Shift"))
    text_columns.append(("strategy", "Strategy", "Strategy"))
    notes = [_NOTES[0], _NOTES[1].format(alpha=f"{b.alpha:g}")]
    if t["adaptation"].isin(transductive).any():
        notes.append(_TRANSDUCTIVE_NOTE)
    n_groups = int(t["n_groups"].max())
    return render.render_frame(
        t,
        caption=f"What each adaptation wins back under {render.latex_escape(suite_name(b.run))} "
        f"(shift-adapt with cheap strategies against the full refit), {b.over}; "
        f"{n_groups} category$\\times$seed group{'s' if n_groups > 1 else ''}.",
        label="tab:recovery",
        text_columns=text_columns,
        value_columns=value_columns,
        notes=notes,
        group=True,
        formats=formats,
    )


def _budget_figures(b: Build, run: Run, shift: str, transductive: frozenset[str]) -> None:
    from shiftbench.analysis.figures.budget import budget_figure
    from shiftbench.analysis.stats import recovery

    if run.metrics is None:
        return
    panels = recovery.adaptation_rows(run.metrics, shift)
    by_shift = panels.groupby(["model", "shift", "severity"]).ngroups <= 6  # else averaged
    for metric, label in (("image_auroc", "Image AUROC"), ("image_f1", "Image F1")):
        frame = recovery.budget_frame(run.metrics, metric, shift, by_shift=by_shift)
        if frame.empty:
            continue
        b.table(frame, f"budget_{metric}")
        paths = budget_figure(frame, b.fdir / f"budget_{metric}", ylabel=label,
                              transductive=transductive)  # fmt: skip
        if paths is None:
            b.out.skipped.append(f"budget figure ({metric}): no strategy uses target images")
            continue
        marks = " Dashed: transductive strategies and those without a budget." if transductive else (
            " Dashed: strategies without a budget.")  # fmt: skip
        b.figure(
            paths,
            f"{label} against the number of verified-normal target images (log scale), one "
            + ("panel per model and shift, mean over categories"
               if by_shift else "panel per model, mean over categories, shifts and severities")
            + "; shaded: the range "
            f"over seeds. Horizontal: shift, no adapt. (grey) and the full refit (black, "
            f"dash-dot), the references a cheap fix sits between.{marks}",
            "Adaptation", f"Budget: {label}",
        )  # fmt: skip
