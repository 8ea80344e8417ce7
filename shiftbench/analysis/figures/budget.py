"""The budget figure of a study with adaptation strategies: a metric against the number of
verified-normal target images k (log axis), one line per strategy, one panel per model;
bands over seeds; ``shift-noadapt`` and the full ``refit`` as horizontal references;
transductive strategies (and strategies that take no k) drawn dashed."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from shiftbench.analysis.figures import palette  # noqa: E402
from shiftbench.analysis.figures.style import (  # noqa: E402
    ONE_COLUMN,
    TWO_COLUMN,
    boxed_legend,
    paper_style,
    save_figure,
)

__all__ = ["budget_figure"]

_REFERENCE = {
    "none": {"color": "0.45", "linestyle": "-", "linewidth": 1.0, "label": "no adapt."},
    "refit": {"color": "0.0", "linestyle": "-.", "linewidth": 1.0, "label": "refit"},
}


def budget_figure(
    frame: pd.DataFrame,
    stem: Path,
    *,
    ylabel: str = "Image AUROC",
    transductive: frozenset[str] = frozenset(),
) -> list[Path] | None:
    """Draw :func:`shiftbench.analysis.stats.recovery.budget_frame` output; None when no
    strategy uses target images (nothing to plot against k)."""
    budgets = frame[(frame["k"] > 0) & ~frame["adaptation"].isin(["none", "refit"])]
    if budgets.empty:
        return None
    panels = (
        list(dict.fromkeys(zip(frame["model"], frame["panel"], strict=True)))
        if "panel" in frame.columns
        else [(m, None) for m in sorted(frame["model"].unique())]
    )
    ks = sorted(int(k) for k in budgets["k"].unique())
    strategies = sorted(set(frame["adaptation"]) - {"none", "refit"})
    colours = {s: palette.model_style(s).color for s in strategies}
    ncol = min(len(panels), 3)
    nrow = int(np.ceil(len(panels) / ncol))
    width = ONE_COLUMN if ncol == 1 else TWO_COLUMN
    with paper_style():
        fig, axes = plt.subplots(
            nrow, ncol, figsize=(width, 2.3 * nrow + 0.7), squeeze=False, sharey=True,
            layout="constrained",
        )  # fmt: skip
        for ax in axes.flat[len(panels) :]:
            ax.set_visible(False)
        for ax, (model, panel) in zip(axes.flat, panels, strict=False):
            d = frame[frame["model"] == model]
            if panel is not None:
                d = d[d["panel"] == panel]
            for ref, style in _REFERENCE.items():
                r = d[d["adaptation"] == ref]
                if len(r):
                    ax.axhline(float(r["value"].iloc[0]), **style)
            for s in strategies:
                rows = d[d["adaptation"] == s].sort_values("k")
                if rows.empty:
                    continue
                dashed = s in transductive or (rows["k"] == 0).all()
                label = f"{s} (transd.)" if s in transductive else s
                if (rows["k"] == 0).all():  # no budget axis: a level across the panel
                    ax.axhline(float(rows["value"].iloc[0]), color=colours[s], linestyle="--",
                               linewidth=1.0, label=label)  # fmt: skip
                    continue
                ax.fill_between(rows["k"], rows["low"], rows["high"], color=colours[s],
                                alpha=0.18, linewidth=0)  # fmt: skip
                ax.plot(rows["k"], rows["value"], marker="o", color=colours[s],
                        linestyle="--" if dashed else "-", label=label)  # fmt: skip
            ax.set_xscale("log", base=2)
            ax.set_xticks(ks, [str(k) for k in ks])
            ax.minorticks_off()
            ax.set_xlim(ks[0] / 1.5, ks[-1] * 1.5)
            ax.set_title(model if panel is None else f"{model}: {panel}")
            ax.set_xlabel("target normal images k (log scale)")
            ax.grid(axis="y", linewidth=0.3, color="0.85")
        for row in axes:
            row[0].set_ylabel(ylabel)  # what it averages over: the caption says
        handles, labels = {}, []
        for ax in axes.flat:
            for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
                if lab not in handles:
                    handles[lab] = h
                    labels.append(lab)
        n_seeds = int(frame["n_seeds"].max())
        title = f"shaded: min-max over {n_seeds} seeds" if n_seeds > 1 else "one seed"
        boxed_legend(fig, [handles[lab] for lab in labels], labels,
                     ncol=min(len(labels), 2 if ncol == 1 else 3), title=title)  # fmt: skip
        return save_figure(fig, stem)
