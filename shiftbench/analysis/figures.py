"""Paper figures (vector PDF and PNG) in one style, readable in greyscale.

* Sizes: every figure is :data:`ONE_COLUMN` (3.5 in) or :data:`TWO_COLUMN` (7 in) wide and
  saved at :data:`DPI` (300), so a PNG is exactly ``width * DPI`` by ``height * DPI``
  pixels; text is 8 pt (titles 9 pt), the size of a caption in a two-column paper.
* PDFs embed their fonts as TrueType (``pdf.fonttype`` 42): editable, searchable and
  accepted by publishers' checks.
* Models look the same in every figure of every run: colour, marker and line style come
  from :mod:`shiftbench.analysis.palette`, by model *name*. Protocols are named as in the
  tables (``clean``, ``shift, no adapt.``, ``shift, adapt.``) and told apart by grey level
  *and* hatch, so nothing depends on colour alone.

Uses matplotlib's Agg backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from shiftbench.analysis import palette, stats  # noqa: E402

__all__ = [
    "DPI",
    "ONE_COLUMN",
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
]

DPI = 300
ONE_COLUMN = 3.5  # inches: one column of a two-column paper
TWO_COLUMN = 7.0  # inches: the text width of a two-column paper
MAX_HEIGHT = 8.5  # inches: no figure is taller than a page's text
PROTOCOL_STYLE = {
    "clean": {"facecolor": "0.25", "hatch": "", "label": palette.protocol_label("clean")},
    "shift-noadapt": {
        "facecolor": "0.65",
        "hatch": "///",
        "label": palette.protocol_label("shift-noadapt"),
    },
    "shift-adapt": {
        "facecolor": "0.95",
        "hatch": "xx",
        "label": palette.protocol_label("shift-adapt"),
    },
}

_RC = {
    "font.family": "serif",
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "legend.fontsize": 8,
    "legend.title_fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "figure.titlesize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.linewidth": 0.6,
    "lines.linewidth": 1.1,
    "lines.markersize": 3.5,
    "hatch.linewidth": 0.5,
    "legend.frameon": False,
    "legend.framealpha": 1.0,
    "legend.edgecolor": "0.6",
    "legend.fancybox": False,
    "pdf.fonttype": 42,  # embed TrueType: text stays editable/searchable in the PDF
    "ps.fonttype": 42,
    "savefig.dpi": DPI,
    "figure.dpi": DPI,
}


@contextmanager
def paper_style():
    """Temporarily apply the shared paper style (rcParams)."""
    with matplotlib.rc_context(_RC):
        yield


def model_style(model: str) -> dict:
    """``Axes.plot`` keywords of a model, fixed by its name (:func:`palette.model_style`)."""
    return palette.model_style(model).line()


def _save(fig: plt.Figure, stem: Path) -> list[Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".pdf"), stem.with_suffix(".png")]
    for p in paths:
        fig.savefig(p, dpi=DPI)  # no bbox="tight": keeps the pixel size predictable
    plt.close(fig)
    return paths


def _boxed_legend(fig, handles, labels, ncol: int | None = None, title: str | None = None):
    """A framed legend above the panels, outside every curve."""
    return fig.legend(
        handles,
        labels,
        loc="outside upper center",
        ncol=ncol or len(labels),
        frameon=True,
        title=title,
        handlelength=2.2,
        columnspacing=1.2,
    )


# --------------------------------------------------------------------------------------
# Degradation bars
# --------------------------------------------------------------------------------------


def degradation_bars(comparison, stem: Path, subtitle: str = "") -> list[Path]:
    """Bars of a metric per category (and ``mean``) x protocol, one panel per model, with
    the bootstrap intervals of :func:`shiftbench.analysis.tables.protocol_comparison`.
    ``subtitle`` (suite, severity) goes into the figure title."""
    t = comparison.table
    models = list(dict.fromkeys(t["model"]))
    cats = list(dict.fromkeys(t["category"]))
    protocols = [p for p in PROTOCOL_STYLE if p in t.columns and t[p].notna().any()]
    width_in = ONE_COLUMN if len(models) * len(cats) <= 3 else TWO_COLUMN
    with paper_style():
        fig, axes = plt.subplots(
            1, len(models), figsize=(width_in, 2.6), sharey=True, squeeze=False,
            layout="constrained",
        )  # fmt: skip
        width = 0.8 / max(1, len(protocols))
        for ax, model in zip(axes[0], models, strict=False):
            sub = t[t["model"] == model].set_index("category").reindex(cats)
            x = np.arange(len(cats))
            for j, p in enumerate(protocols):
                st = PROTOCOL_STYLE[p]
                v = sub[p].to_numpy()
                err = np.vstack([v - sub[f"{p}_low"].to_numpy(), sub[f"{p}_high"].to_numpy() - v])
                ax.bar(
                    x + (j - (len(protocols) - 1) / 2) * width,
                    v,
                    width,
                    yerr=np.clip(err, 0, None),
                    facecolor=st["facecolor"],
                    hatch=st["hatch"],
                    edgecolor="black",
                    linewidth=0.5,
                    error_kw={"elinewidth": 0.6, "capsize": 1.5},
                    label=st["label"],
                )
            ax.set_xticks(x, cats, rotation=30, ha="right")
            ax.set_title(model)
            lo = np.nanmin(t[[f"{p}_low" for p in protocols]].to_numpy())
            ax.set_ylim(max(0.0, min(0.5, np.floor(lo * 10) / 10)), 1.0)
            ax.grid(axis="y", linewidth=0.3, color="0.8")
            ax.set_axisbelow(True)
        level = round(100 * (1 - comparison.alpha))
        axes[0][0].set_ylabel(f"{comparison.label}\n(whiskers: {level}% bootstrap CI)")
        handles, labels = axes[0][0].get_legend_handles_labels()
        _boxed_legend(fig, handles, labels, title=subtitle or None)
        return _save(fig, stem)


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
    """ROC (top) and precision-recall (bottom) curves per protocol (columns) for one
    category: every seed as a thin line and the mean over seeds as a thick one (vertical
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
    with paper_style():
        fig, axes = plt.subplots(
            2,
            len(protocols),
            figsize=(TWO_COLUMN, 2.6 + 0.17 * len(models) * 2 + 2.3),
            squeeze=False,
            layout="constrained",
        )
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
            ax_roc.set_xlabel("false-positive rate")
            ax_roc.set_ylabel("true-positive rate")
            ax_pr.set_xlabel("recall")
            ax_pr.set_ylabel("precision")
            for ax, name in ((ax_roc, "model (AUROC)"), (ax_pr, "model (AUPRC)")):
                ax.set_xlim(-0.01, 1.01)
                ax.set_ylim(-0.01, 1.03)
                ax.set_aspect("equal")
                ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), frameon=True,
                          title=name, handlelength=2.0, borderaxespad=0.0)  # fmt: skip
        over = (
            f"thin: each of {len(seeds)} seeds, thick: mean"
            if len(seeds) > 1
            else f"seed {seeds[0]}"
        )
        fig.suptitle(f"{category}{', ' + subtitle if subtitle else ''} ({over})")
        return _save(fig, stem)


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
        _boxed_legend(fig, list(handles.values()), list(handles.keys()), title=title)
        return _save(fig, stem)


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
    -> :func:`shiftbench.analysis.robustness.severity_bands` frame), one line per model
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
        axes[0][0].set_ylabel(f"{ylabel}\n(mean over {over})")
        handles, labels = axes[0][0].get_legend_handles_labels()
        _boxed_legend(fig, handles, labels, ncol=min(len(labels), 4),
                      title=title or f"shaded: {level}% bootstrap band")  # fmt: skip
        return _save(fig, stem)


def severity_small_multiples(
    bands: pd.DataFrame, stem: Path, *, ylabel: str = "Image AUROC", protocol: str = "",
    over: str = "seeds",
) -> list[Path] | None:  # fmt: skip
    """Severity curves per category (one small panel each, shared y), for one protocol;
    ``bands`` from ``severity_bands(..., by_category=True)``."""
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
            axes[r][0].set_ylabel(f"{ylabel}\n(mean over {over})")
        handles, labels = axes[0][0].get_legend_handles_labels()
        _boxed_legend(fig, handles, labels, ncol=min(len(labels), 4),
                      title=palette.protocol_label(protocol) if protocol else None)  # fmt: skip
        return _save(fig, stem)


# --------------------------------------------------------------------------------------
# Robustness heat maps
# --------------------------------------------------------------------------------------


def robustness_heatmap(
    frame: pd.DataFrame, stem: Path, *, label: str = "Image AUROC", title: str = ""
) -> list[Path]:
    """One panel per model: rows = shifts, columns = severity (clean first), cell colour =
    the metric (one colour scale for every model), text = value and drop from clean (both
    in %). ``frame``: :func:`shiftbench.analysis.robustness.heatmap_frame`."""
    models = sorted(frame["model"].unique())
    shifts = sorted(frame["shift"].unique())
    levels = sorted(frame["severity"].unique())
    vmin = float(np.floor(frame["value"].min() * 20) / 20)
    vmax = float(np.ceil(frame["value"].max() * 20) / 20)
    if vmax - vmin < 0.1:
        vmin = max(0.0, vmax - 0.1)
    ncol = min(3, len(models))
    nrow = int(np.ceil(len(models) / ncol))
    cell_h = 0.32
    with paper_style():
        fig, axes = plt.subplots(
            nrow, ncol,
            figsize=(TWO_COLUMN if ncol > 1 else ONE_COLUMN,
                     nrow * (0.75 + cell_h * len(shifts)) + 0.5),
            squeeze=False, layout="constrained",
        )  # fmt: skip
        im = None
        for k, model in enumerate(models):
            ax = axes[k // ncol][k % ncol]
            d = frame[frame["model"] == model]
            grid = d.pivot_table(index="shift", columns="severity", values="value").reindex(
                index=shifts, columns=levels
            )
            drop = d.pivot_table(index="shift", columns="severity", values="drop").reindex(
                index=shifts, columns=levels
            )
            im = ax.imshow(grid.to_numpy(), cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto")
            for i in range(len(shifts)):
                for j in range(len(levels)):
                    v, dv = grid.iat[i, j], drop.iat[i, j]
                    if not np.isfinite(v):
                        continue
                    txt = f"{100 * v:.1f}" if levels[j] == 0 else f"{100 * v:.1f}\n{100 * dv:+.1f}"
                    rgba = im.cmap(im.norm(v))
                    lum = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2]
                    ax.text(j, i, txt.replace("-", "−"), ha="center", va="center", fontsize=8,
                            color="black" if lum > 0.5 else "white", linespacing=0.95)  # fmt: skip
            ax.set_xticks(range(len(levels)), ["clean" if v == 0 else f"{v:g}" for v in levels])
            ax.set_yticks(range(len(shifts)), shifts)
            ax.set_xlabel("severity")
            ax.set_title(model)
            for side in ("top", "right", "left", "bottom"):
                ax.spines[side].set_visible(False)
            ax.tick_params(length=0)
        for k in range(len(models), nrow * ncol):
            axes[k // ncol][k % ncol].axis("off")
        if im is not None:
            cb = fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.9, pad=0.01)
            cb.set_label(label)
        if title:
            fig.suptitle(title)
        return _save(fig, stem)


# --------------------------------------------------------------------------------------
# Critical-difference diagram
# --------------------------------------------------------------------------------------


def critical_difference_diagram(
    result: stats.FriedmanNemenyiResult, stem: Path, title: str = ""
) -> list[Path]:
    """Demšar (2006) critical-difference diagram: models on an average-rank axis (1 = best,
    left), the CD as a scale bar inside the axes, and thick bars joining models whose rank
    difference is below the CD (not significantly different by Nemenyi)."""
    ranks = result.average_ranks.sort_values()
    names, values = list(ranks.index), ranks.to_numpy()
    k, cd = len(names), result.critical_difference
    cliques = []
    for i in range(k):
        j = i
        while j + 1 < k and values[j + 1] - values[i] < cd:
            j += 1
        if j > i and not any(a <= i and j <= b for a, b in cliques):
            cliques.append((i, j))
    half = (k + 1) // 2
    rows = max(half, k - half)
    height = 1.25 + 0.2 * rows + 0.1 * len(cliques)
    with paper_style():
        fig, ax = plt.subplots(figsize=(ONE_COLUMN, height), layout="constrained")
        lo_x, hi_x = 1.0, float(k)
        span = hi_x - lo_x
        ax.set_xlim(lo_x - 0.75 * span, hi_x + 0.75 * span)
        lowest = -(0.3 + 0.22 * (rows - 1) + 0.1 * len(cliques))
        ax.set_ylim(lowest - 0.15, 0.75)
        ax.axis("off")
        ax.hlines(0, lo_x, hi_x, color="black", linewidth=0.8)
        for r in range(1, k + 1):
            ax.vlines(r, 0, 0.06, color="black", linewidth=0.8)
            ax.text(r, 0.1, str(r), ha="center", va="bottom")
        # the CD ruler: inside the axes, over the rank axis, starting at rank 1
        cd_end = min(lo_x + cd, hi_x + 0.7 * span)
        ax.hlines(0.5, lo_x, cd_end, color="black", linewidth=1.0)
        ax.vlines([lo_x, cd_end], 0.46, 0.54, color="black", linewidth=1.0)
        ax.text((lo_x + cd_end) / 2, 0.57, f"CD = {cd:.2f}", ha="center", va="bottom")
        for i, (name, v) in enumerate(zip(names, values, strict=False)):
            left = i < half
            row = i if left else k - 1 - i
            y = -(0.3 + 0.22 * row + 0.1 * len(cliques))
            x_text = lo_x - 0.12 * span if left else hi_x + 0.12 * span
            ax.plot([v, v, x_text], [0, y, y], color="black", linewidth=0.7)
            ax.text(x_text + (-0.03 if left else 0.03) * span, y, f"{name} ({v:.2f})",
                    ha="right" if left else "left", va="center")  # fmt: skip
        for c, (i, j) in enumerate(cliques):
            y = -(0.12 + 0.1 * c)
            ax.hlines(y, values[i] - 0.03, values[j] + 0.03, color="black", linewidth=2.5)
        if title:
            ax.set_title(
                f"{title}\nFriedman p = {result.p_value:.3g}, N = {result.n_blocks} blocks"
            )
        return _save(fig, stem)


# --------------------------------------------------------------------------------------
# Qualitative grid
# --------------------------------------------------------------------------------------


def qualitative_grid(
    rows: Sequence[dict],
    stem: Path,
    title: str = "",
    *,
    vmin: float | None = None,
    vmax: float | None = None,
    threshold: float | None = None,
) -> list[Path]:
    """Grid of image | shifted image | ground truth | anomaly map | predicted mask, one row
    per sample. Each row dict: ``image`` uint8 [H,W,3], ``shifted`` uint8 [H,W,3] or None,
    ``mask`` uint8 [H,W], ``heatmap`` float [H,W], ``pred`` bool [H,W] or None, ``title``.
    Every anomaly map uses one colour scale (``vmin``..``vmax``, fixed by the caller from
    the validation threshold) shown on a colour bar, with the pixel ``threshold`` drawn on
    the bar and as a contour on each map. ``viridis`` keeps its order in grey."""
    cols = ("image", "shifted image", "ground truth", "anomaly map", "prediction")
    n = len(rows)
    if vmin is None or vmax is None:
        every = np.concatenate([np.ravel(r["heatmap"]) for r in rows])
        vmin, vmax = float(np.min(every)), float(np.max(every))
    row_h = min(1.25, (MAX_HEIGHT - 0.55) / max(n, 1))  # the grid fits on one page
    with paper_style():
        fig, axes = plt.subplots(
            n, 5, figsize=(TWO_COLUMN, row_h * n + 0.55), squeeze=False, layout="constrained"
        )
        im = None
        for r, row in enumerate(rows):
            panels = (row["image"], row.get("shifted"), row["mask"], row["heatmap"], row["pred"])
            for c, (ax, data) in enumerate(zip(axes[r], panels, strict=False)):
                ax.set_xticks([])
                ax.set_yticks([])
                if data is None:
                    ax.text(0.5, 0.5, "n/a", ha="center", va="center", transform=ax.transAxes)
                elif c == 3:
                    im = ax.imshow(data, cmap="viridis", vmin=vmin, vmax=vmax,
                                   interpolation="nearest")  # fmt: skip
                    if threshold is not None and np.nanmax(data) >= threshold:
                        ax.contour(data, levels=[threshold], colors="white", linewidths=0.6)
                elif c in (2, 4):
                    ax.imshow(np.asarray(data) > 0, cmap="gray", vmin=0, vmax=1,
                              interpolation="nearest")  # fmt: skip
                else:
                    ax.imshow(data, interpolation="nearest")
                if r == 0:
                    ax.set_title(cols[c])
            axes[r][0].set_ylabel(row.get("title", ""), rotation=0, ha="right", va="center",
                                  labelpad=4)  # fmt: skip
        if im is not None:
            cb = fig.colorbar(im, ax=axes.ravel().tolist(), location="right", shrink=0.8,
                              pad=0.01, aspect=35)  # fmt: skip
            cb.set_label("anomaly score (fixed scale)")
            if threshold is not None:
                cb.ax.axhline(threshold, color="#D55E00", linewidth=1.6)
                cb.ax.text(-0.3, threshold, "threshold", rotation=90, ha="right", va="center",
                           color="#D55E00", transform=cb.ax.get_yaxis_transform())  # fmt: skip
        if title:
            fig.suptitle(title)
        return _save(fig, stem)
