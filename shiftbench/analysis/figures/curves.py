"""Paper figures of bars and curves: degradation bars, ROC/PR curves, score
distributions and severity curves (overall and per category).

Every figure has the one style of :mod:`.style` (sizes, fonts, model and protocol
styles: see there); heat maps, the critical-difference diagram and the qualitative grid
are in :mod:`.grids`. Both are importable from here. Uses matplotlib's Agg backend.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from shiftbench.analysis.figures import palette  # noqa: E402
from shiftbench.analysis.figures.grids import (  # noqa: E402
    critical_difference_diagram,
    qualitative_grid,
    robustness_heatmap,
)
from shiftbench.analysis.figures.style import (  # noqa: E402
    DPI,
    MAX_HEIGHT,
    ONE_COLUMN,
    PROTOCOL_STYLE,
    TWO_COLUMN,
    boxed_legend,
    model_style,
    paper_style,
    save_figure,
)

__all__ = [
    "DPI",
    "PROTOCOL_POINT",
    "MAX_HEIGHT",
    "ONE_COLUMN",
    "PROTOCOL_STYLE",
    "TWO_COLUMN",
    "critical_difference_diagram",
    "degradation_bars",
    "model_style",
    "paper_style",
    "qualitative_grid",
    "robustness_heatmap",
    "roc_pr_curves",
    "score_distributions",
    "severity_curves",
    "severity_small_multiples",
]


# --------------------------------------------------------------------------------------
# Degradation bars
# --------------------------------------------------------------------------------------


#: how a protocol's point looks in :func:`degradation_bars`: told apart by marker and fill
#: as well as grey level, so nothing depends on colour
PROTOCOL_POINT = {
    "clean": {"marker": "o", "color": "black", "markerfacecolor": "black"},
    "shift-noadapt": {"marker": "s", "color": "0.35", "markerfacecolor": "0.65"},
    "shift-adapt": {"marker": "^", "color": "0.35", "markerfacecolor": "white"},
}


def degradation_bars(comparison, stem: Path, subtitle: str = "") -> list[Path]:
    """A metric per category (and ``mean``) x protocol, one panel per model: a point per
    protocol with its bootstrap interval (from
    :func:`shiftbench.analysis.tables.comparison.protocol_comparison`), side by side per
    category. Points, not bars: the axis starts near the lowest interval, not at zero, and
    a bar's length would then mean nothing. AUROC panels mark chance (0.5). ``subtitle``
    (suite, severity) goes into the legend title."""
    t = comparison.table
    models = list(dict.fromkeys(t["model"]))
    cats = list(dict.fromkeys(t["category"]))
    protocols = [p for p in PROTOCOL_STYLE if p in t.columns and t[p].notna().any()]
    width_in = ONE_COLUMN if len(models) * len(cats) <= 3 else TWO_COLUMN
    lows = t[[f"{p}_low" for p in protocols]].to_numpy(dtype=float)
    lo = float(np.nanmin(lows)) if np.isfinite(lows).any() else 0.5
    with paper_style():
        fig, axes = plt.subplots(
            1, len(models), figsize=(width_in, 2.6), sharey=True, squeeze=False,
            layout="constrained",
        )  # fmt: skip
        step = 0.5 / max(1, len(protocols))
        for ax, model in zip(axes[0], models, strict=False):
            sub = t[t["model"] == model].set_index("category").reindex(cats)
            x = np.arange(len(cats))
            for j, p in enumerate(protocols):
                v = sub[p].to_numpy()
                err = np.vstack([v - sub[f"{p}_low"].to_numpy(), sub[f"{p}_high"].to_numpy() - v])
                ax.errorbar(
                    x + (j - (len(protocols) - 1) / 2) * step, v, yerr=np.clip(err, 0, None),
                    linestyle="none", markersize=4, markeredgecolor="black",
                    markeredgewidth=0.5, elinewidth=0.8, capsize=1.5,
                    label=PROTOCOL_STYLE[p]["label"], **PROTOCOL_POINT[p],
                )  # fmt: skip
            if comparison.metric == "image_auroc":
                ax.axhline(0.5, color="0.5", linewidth=0.6, linestyle=":", zorder=0)
            ax.set_xticks(x, cats, rotation=30, ha="right")
            ax.set_xlim(-0.5, len(cats) - 0.5)
            ax.set_title(model)
            ax.set_ylim(max(0.0, min(0.45, np.floor(lo * 10) / 10)), 1.0)
            ax.grid(axis="y", linewidth=0.3, color="0.85")
            ax.set_axisbelow(True)
        level = round(100 * (1 - comparison.alpha))
        axes[0][0].set_ylabel(f"{comparison.label}\n(whiskers: {level}% bootstrap CI)")
        handles, labels = axes[0][0].get_legend_handles_labels()
        boxed_legend(fig, handles, labels, title=subtitle or None)
        return save_figure(fig, stem)


# --------------------------------------------------------------------------------------
# ROC and PR curves
# --------------------------------------------------------------------------------------

_GRID = np.linspace(0.0, 1.0, 201)


def _mean_roc(curves: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Vertical average of ROC curves on a common FPR grid."""
    return np.mean([np.interp(_GRID, f, t) for f, t in curves], axis=0)


def _mean_pr(curves: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Average precision-recall curve on a common recall grid (the precision of each curve at
    a recall ``r`` is its best precision at recall >= r, i.e. the interpolated precision)."""
    out = []
    for rec, prec in curves:
        order = np.argsort(rec)
        r, p = rec[order], prec[order]
        interp = np.maximum.accumulate(p[::-1])[::-1]  # best precision at recall >= r
        idx = np.clip(np.searchsorted(r, _GRID, side="left"), 0, r.size - 1)
        out.append(interp[idx])
    return np.mean(out, axis=0)


def roc_pr_curves(test: pd.DataFrame, category: str, stem: Path, subtitle: str = "") -> list[Path]:
    """ROC and precision-recall curves per protocol for one category (up to two
    protocols: one row, ROCs then PRs; three: ROCs over PRs, a column per protocol): every seed as a thin line and the mean over seeds as a thick one (vertical
    average of the ROC curves; mean interpolated precision for PR). Legends (boxed, below
    each panel) give the mean over seeds of AUROC and of AUPRC, as in the tables; the PR
    panels mark the prevalence (the precision of a random ranking). ``test``: the test rows
    of ``scores.parquet`` at one severity."""
    from sklearn.metrics import (
        average_precision_score,
        precision_recall_curve,
        roc_auc_score,
        roc_curve,
    )

    sub = test[test["category"] == category]
    models = sorted(sub["model"].unique())
    seeds = sorted(sub["seed"].unique())
    protocols = [p for p in PROTOCOL_STYLE if p in set(sub["protocol"])]
    # square panels that fill the width: one row (ROCs, then PRs) for up to two
    # protocols, else ROCs over PRs; the height follows from the panels' side
    one_row = len(protocols) <= 2
    ncol = 2 * len(protocols) if one_row else len(protocols)
    side = (TWO_COLUMN - 0.6 * ncol) / ncol
    row_h = side + 0.9 + 0.14 * len(models)  # panel, title, tick labels, legend
    with paper_style():
        fig, axes = plt.subplots(
            1 if one_row else 2, ncol, figsize=(TWO_COLUMN, (1 if one_row else 2) * row_h + 0.25),
            squeeze=False, layout="constrained",
        )  # fmt: skip
        if one_row:
            axes = np.reshape(axes, (2, len(protocols)))
        for j, p in enumerate(protocols):
            ax_roc, ax_pr = axes[0][j], axes[1][j]
            prevalence = []
            for model in models:
                st = model_style(model)
                rocs, prs, aucs, aps = [], [], [], []
                for s in seeds:
                    g = sub[(sub["model"] == model) & (sub["protocol"] == p) & (sub["seed"] == s)]
                    y, sc = g["label"].to_numpy(), g["score"].to_numpy()
                    if y.size == 0 or y.min() == y.max():
                        continue
                    prevalence.append(y.mean())
                    fpr, tpr, _ = roc_curve(y, sc)
                    prec, rec, _ = precision_recall_curve(y, sc)
                    rocs.append((fpr, tpr))
                    prs.append((rec, prec))
                    aucs.append(roc_auc_score(y, sc))
                    aps.append(average_precision_score(y, sc))
                    if len(seeds) > 1:
                        thin = {"color": st["color"], "linewidth": 0.4, "alpha": 0.45}
                        ax_roc.plot(fpr, tpr, **thin)
                        ax_pr.plot(rec, prec, drawstyle="steps-post", **thin)
                if not rocs:
                    continue
                mark = {"markevery": 25, **st}
                ax_roc.plot(_GRID, _mean_roc(rocs), label=f"{model} ({np.mean(aucs):.3f})", **mark)
                ax_pr.plot(_GRID, _mean_pr(prs), label=f"{model} ({np.mean(aps):.3f})", **mark)
            ax_roc.plot([0, 1], [0, 1], color="0.6", linewidth=0.5, linestyle=":")
            if prevalence:
                pv = float(np.mean(prevalence))
                ax_pr.axhline(pv, color="0.5", linewidth=0.6, linestyle=":")
                ax_pr.text(0.98, pv - 0.03, f"prevalence {pv:.2f}", fontsize=8, color="0.3",
                           va="top", ha="right")  # fmt: skip
            ax_roc.set_title(PROTOCOL_STYLE[p]["label"])
            if one_row:
                ax_pr.set_title(PROTOCOL_STYLE[p]["label"])
            ax_roc.set_xlabel("false-positive rate")
            ax_roc.set_ylabel("true-positive rate")
            ax_pr.set_xlabel("recall")
            ax_pr.set_ylabel("precision")
            for ax, name in ((ax_roc, "model (AUROC)"), (ax_pr, "model (AUPRC)")):
                ax.set_xlim(-0.01, 1.01)
                ax.set_ylim(-0.01, 1.03)
                ax.set_box_aspect(1)
                # below the axis label (about 0.4 in under the axes), whatever the side
                ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.42 / side), frameon=True,
                          title=name, handlelength=2.0, borderaxespad=0.0)  # fmt: skip
        over = (
            f"thin: each of {len(seeds)} seeds, thick: mean"
            if len(seeds) > 1
            else f"seed {seeds[0]}"
        )
        fig.suptitle(f"{category}{', ' + subtitle if subtitle else ''} ({over})")
        return save_figure(fig, stem)


# --------------------------------------------------------------------------------------
# Score distributions
# --------------------------------------------------------------------------------------


def score_distributions(
    scores: pd.DataFrame, category: str, model: str, seed: int, stem: Path, subtitle: str = ""
) -> list[Path]:
    """Test-score histograms (normal filled, anomalous hatched) per protocol with the clean
    threshold (solid) and the adapted threshold (dashed), on shared bins and one x range
    across panels (so a moved distribution is seen moving), integer count ticks. In the
    shift-noadapt panel the clean threshold is the *transferred* one; the clean normals are
    outlined for reference. ``subtitle`` names the suite and severity."""
    sub = scores[
        (scores["category"] == category) & (scores["model"] == model) & (scores["seed"] == seed)
    ]
    test = sub[sub["split"] == "test"]
    protocols = [p for p in PROTOCOL_STYLE if p in set(test["protocol"])]
    thr = {p: float(test[test["protocol"] == p]["threshold"].iloc[0]) for p in protocols}
    clean_normals = test[(test["protocol"] == "clean") & (test["label"] == 0)]["score"].to_numpy()
    every = np.r_[test["score"].to_numpy(np.float64), list(thr.values())]
    every = every[np.isfinite(every)]
    bins = np.histogram_bin_edges(every, bins=30)
    with paper_style():
        fig, axes = plt.subplots(
            1, len(protocols), figsize=(TWO_COLUMN, 2.4), squeeze=False, sharex=True,
            sharey=True, layout="constrained",
        )  # fmt: skip
        for ax, p in zip(axes[0], protocols, strict=False):
            g = test[test["protocol"] == p]
            ax.hist(g[g["label"] == 0]["score"], bins=bins, histtype="stepfilled", color="0.7",
                    label="normal")  # fmt: skip
            ax.hist(g[g["label"] == 1]["score"], bins=bins, histtype="stepfilled",
                    facecolor="none", edgecolor="black", hatch="////", linewidth=0.6,
                    label="anomalous")  # fmt: skip
            if p == "shift-noadapt" and clean_normals.size:
                ax.hist(clean_normals, bins=bins, histtype="step", color="black", linestyle=":",
                        linewidth=0.9, label="normal, clean test")  # fmt: skip
            if p in ("clean", "shift-noadapt"):
                ax.axvline(thr.get("clean", thr[p]), color="black", linestyle="-", linewidth=1.0,
                           label="clean threshold")  # fmt: skip
            if p == "shift-adapt":
                ax.axvline(thr[p], color="black", linestyle="--", linewidth=1.0,
                           label="adapted threshold")  # fmt: skip
            ax.set_title(PROTOCOL_STYLE[p]["label"])
            ax.set_xlabel("anomaly score")
            ax.set_xlim(bins[0], bins[-1])
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes[0][0].set_ylabel("test images")
        handles = {}
        for ax in axes[0]:
            for h, lab in zip(*ax.get_legend_handles_labels(), strict=False):
                handles.setdefault(lab, h)
        title = f"{category} / {model}, seed {seed}" + (f", {subtitle}" if subtitle else "")
        boxed_legend(fig, list(handles.values()), list(handles.keys()), title=title)
        return save_figure(fig, stem)


# --------------------------------------------------------------------------------------
# Severity curves
# --------------------------------------------------------------------------------------


def severity_curves(
    bands: dict[str, pd.DataFrame],
    stem: Path,
    *,
    ylabel: str = "Image AUROC",
    over: str = "categories and seeds",
    level: int = 95,
    title: str = "",
) -> list[Path] | None:
    """Metric against shift severity, one panel per shifted protocol (``bands``: protocol
    -> :func:`shiftbench.analysis.stats.robustness.severity_bands` frame), one line per model
    with its bootstrap band. Severity 0 is the clean result, the first point of every
    curve. Returns None (draws nothing) without at least one shifted level."""
    panels = [(p, b) for p, b in bands.items() if len(b) and (b["severity"] > 0).any()]
    if not panels:
        return None
    levels = sorted({float(v) for _, b in panels for v in b["severity"]})
    with paper_style():
        fig, axes = plt.subplots(
            1, len(panels), figsize=(ONE_COLUMN if len(panels) == 1 else TWO_COLUMN, 2.6),
            squeeze=False, sharey=True, layout="constrained",
        )  # fmt: skip
        for ax, (p, b) in zip(axes[0], panels, strict=False):
            for model in sorted(b["model"].unique()):
                d = (
                    b[b["model"] == model]
                    .groupby("severity", as_index=False)[["value", "low", "high"]]
                    .mean()
                    .sort_values("severity")
                )
                st = model_style(model)
                ax.fill_between(d["severity"], d["low"], d["high"], color=st["color"],
                                alpha=0.18, linewidth=0)  # fmt: skip
                ax.plot(d["severity"], d["value"], label=model, **st)
            ax.set_title(PROTOCOL_STYLE.get(p, {"label": p})["label"])
            ax.set_xlabel("severity (0 = clean)")
            ax.set_xticks(levels, ["clean" if v == 0 else f"{v:g}" for v in levels])
            ax.grid(axis="y", linewidth=0.3, color="0.85")
        axes[0][0].set_ylabel(ylabel)  # one line: a long label would pass the axes' ends
        handles, labels = axes[0][0].get_legend_handles_labels()
        head = title or f"shaded: {level}% bootstrap band"
        boxed_legend(fig, handles, labels, ncol=min(len(labels), 4),
                     title=f"{head}\nmean over {over}")  # fmt: skip
        return save_figure(fig, stem)


def severity_small_multiples(
    bands: pd.DataFrame, stem: Path, *, ylabel: str = "Image AUROC", protocol: str = "",
    over: str = "mean over seeds",
) -> list[Path] | None:  # fmt: skip
    """Severity curves per category (one small panel each, shared y), for one protocol;
    ``bands`` from ``severity_bands(..., by_category=True)``; ``over`` (how seeds are
    combined: "mean over 3 seeds", "seed 0") goes into the legend title."""
    if bands.empty or "category" not in bands:
        return None
    cats = sorted(bands["category"].unique())
    ncol = min(4, len(cats))
    nrow = int(np.ceil(len(cats) / ncol))
    levels = sorted(bands["severity"].unique())
    with paper_style():
        fig, axes = plt.subplots(
            nrow, ncol, figsize=(TWO_COLUMN if ncol > 2 else ONE_COLUMN * ncol / 2 + 1.7,
                                 1.9 * nrow + 0.6),
            squeeze=False, sharex=True, sharey=True, layout="constrained",
        )  # fmt: skip
        for k, cat in enumerate(cats):
            ax = axes[k // ncol][k % ncol]
            for model in sorted(bands["model"].unique()):
                d = bands[(bands["category"] == cat) & (bands["model"] == model)]
                d = d.groupby("severity", as_index=False)[["value", "low", "high"]].mean()
                st = model_style(model)
                ax.fill_between(d["severity"], d["low"], d["high"], color=st["color"],
                                alpha=0.18, linewidth=0)  # fmt: skip
                ax.plot(d["severity"], d["value"], label=model, **st)
            ax.set_title(cat)
            ax.set_xticks(levels, ["clean" if v == 0 else f"{v:g}" for v in levels])
            ax.grid(axis="y", linewidth=0.3, color="0.85")
        for k in range(len(cats), nrow * ncol):
            axes[k // ncol][k % ncol].axis("off")
        for c in range(ncol):
            axes[nrow - 1][c].set_xlabel("severity")
        for r in range(nrow):
            axes[r][0].set_ylabel(ylabel)
        handles, labels = axes[0][0].get_legend_handles_labels()
        head = f"{palette.protocol_label(protocol)}; " if protocol else ""
        boxed_legend(fig, handles, labels, ncol=min(len(labels), 4),
                     title=f"{head}{over}")  # fmt: skip
        return save_figure(fig, stem)
