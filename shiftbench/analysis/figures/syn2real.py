"""The synthetic-to-real scatter: per synthetic condition, its AUROC drop against the real
target's drop, one point per model x category, with the identity line (a synthetic shift
that predicts the real one puts its points on it; one that ranks them right but not by how
much puts them on another rising line). The numbers are
:func:`shiftbench.analysis.stats.syn2real.syn2real_table`'s."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from shiftbench.analysis.figures.style import (
    MAX_HEIGHT,
    TWO_COLUMN,
    boxed_legend,
    model_style,
    paper_style,
    save_figure,
)

__all__ = ["syn2real_scatter"]

#: panels per row
_COLUMNS = 4


def _title(shift: str, severity: float) -> str:
    return shift if not np.isfinite(severity) else f"{shift}, sev. {severity:g}"


def syn2real_scatter(points: pd.DataFrame, table: pd.DataFrame, stem: Path) -> list[Path]:
    """One panel per (target, synthetic shift, severity) of ``points`` (synthetic drop on
    x, real drop on y, both in AUROC points x 100), Kendall's tau of ``table`` in the title;
    a model keeps its colour and marker of every figure. Returns the PDF and PNG paths,
    or ``[]`` without points."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    if points.empty:
        return []
    panels = list(points.groupby(["target", "shift", "severity"], sort=True, dropna=False))
    ncols = min(_COLUMNS, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    lo = 100 * min(points["synthetic_drop"].min(), points["real_drop"].min(), 0.0)
    hi = 100 * max(points["synthetic_drop"].max(), points["real_drop"].max(), 0.0)
    pad = 0.05 * (hi - lo or 1.0)
    lim = (lo - pad, hi + pad)
    tau = {
        (r.target, r.shift, r.severity if np.isfinite(r.severity) else None): r.kendall_tau
        for r in table.itertuples()
    }
    models = sorted(points["model"].unique())
    width = TWO_COLUMN if ncols > 1 else TWO_COLUMN / 2
    height = min(MAX_HEIGHT, 0.6 + 1.75 * nrows)
    with paper_style():
        fig, axes = plt.subplots(
            nrows, ncols, figsize=(width, height), squeeze=False, sharex=True, sharey=True,
            layout="constrained",
        )  # fmt: skip
        for ax, ((target, shift, severity), p) in zip(axes.flat, panels, strict=False):
            ax.plot(lim, lim, color="0.6", linewidth=0.6, linestyle="--", zorder=0)
            ax.axhline(0, color="0.85", linewidth=0.5, zorder=0)
            ax.axvline(0, color="0.85", linewidth=0.5, zorder=0)
            for model, g in p.groupby("model", sort=True):
                style = model_style(model)
                ax.scatter(
                    100 * g["synthetic_drop"], 100 * g["real_drop"], s=12,
                    color=style["color"], marker=style["marker"], linewidths=0,
                )  # fmt: skip
            t = tau.get((target, shift, severity if np.isfinite(severity) else None), np.nan)
            title = _title(shift, severity)
            ax.set_title(f"{title}\n$\\tau$ = {t:.2f}" if np.isfinite(t) else title)
            ax.set_xlim(lim)
            ax.set_ylim(lim)
        for ax in axes.flat[len(panels) :]:
            ax.set_visible(False)
        targets = ", ".join(sorted(points["target"].unique()))
        fig.supxlabel("Synthetic drop (clean $-$ shift, AUROC points)")
        fig.supylabel(f"Real drop ({targets})")
        handles = [
            Line2D([], [], markersize=4, **{**model_style(m), "linestyle": ""}) for m in models
        ]
        boxed_legend(fig, handles, models, ncol=min(len(models), 4))
        return save_figure(fig, stem)
