"""Paper figures (PDF and PNG) in one style, readable in greyscale.

Protocols are told apart by grey level *and* hatch, models by line style *and* marker, so
nothing depends on colour alone. Figures have fixed sizes in inches (a two-column paper's
``\\textwidth`` is ~6.9 in) and are saved at :data:`DPI`, so a PNG is exactly
``width * DPI`` by ``height * DPI`` pixels. Uses matplotlib's Agg backend.
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

from shiftbench.analysis import stats  # noqa: E402

__all__ = [
    "DPI",
    "critical_difference_diagram",
    "degradation_bars",
    "paper_style",
    "qualitative_grid",
    "roc_pr_curves",
    "score_distributions",
    "severity_curves",
]

DPI = 200
PROTOCOL_STYLE = {
    "clean": {"facecolor": "0.25", "hatch": "", "label": "clean"},
    "shift-noadapt": {"facecolor": "0.65", "hatch": "///", "label": "shift, no adapt."},
    "shift-adapt": {"facecolor": "0.95", "hatch": "xx", "label": "shift, adapt."},
}
_MODEL_LINES = ("-", "--", "-.", ":")
_MODEL_MARKERS = ("o", "s", "^", "D", "v", "P", "X")
# Okabe-Ito: colour-blind safe; greyscale relies on the line styles and markers above.
_MODEL_COLOURS = ("#000000", "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")

_RC = {
    "font.family": "serif",
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.linewidth": 0.6,
    "lines.linewidth": 1.1,
    "lines.markersize": 3.5,
    "hatch.linewidth": 0.5,
    "legend.frameon": False,
    "pdf.fonttype": 42,  # embed TrueType: text stays editable/searchable in the PDF
    "savefig.dpi": DPI,
    "figure.dpi": DPI,
}


@contextmanager
def paper_style():
    """Temporarily apply the shared paper style (rcParams)."""
    with matplotlib.rc_context(_RC):
        yield


def model_style(i: int) -> dict:
    """Line style, marker and colour of the ``i``-th model (stable across figures)."""
    return {
        "linestyle": _MODEL_LINES[i % len(_MODEL_LINES)],
        "marker": _MODEL_MARKERS[i % len(_MODEL_MARKERS)],
        "color": _MODEL_COLOURS[i % len(_MODEL_COLOURS)],
    }


def _save(fig: plt.Figure, stem: Path) -> list[Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".pdf"), stem.with_suffix(".png")]
    for p in paths:
        fig.savefig(p, dpi=DPI)  # no bbox="tight": keeps the pixel size predictable
    plt.close(fig)
    return paths


def degradation_bars(comparison, stem: Path) -> list[Path]:
    """Bars of a metric per category (and ``mean``) x protocol, one panel per model, with
    the bootstrap intervals of :func:`shiftbench.analysis.tables.protocol_comparison`."""
    t = comparison.table
    models = list(dict.fromkeys(t["model"]))
    cats = list(dict.fromkeys(t["category"]))
    protocols = [p for p in PROTOCOL_STYLE if p in t.columns and t[p].notna().any()]
    with paper_style():
        fig, axes = plt.subplots(
            1, len(models), figsize=(6.9, 2.4), sharey=True, squeeze=False, layout="constrained"
        )
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
        axes[0][0].set_ylabel(comparison.label)
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside upper center", ncol=len(labels), fontsize=6.5)
        return _save(fig, stem)


def roc_pr_curves(test: pd.DataFrame, category: str, seed: int, stem: Path) -> list[Path]:
    """ROC (top) and precision-recall (bottom) curves per protocol (columns), one line per
    model, for one category and seed. ``test``: the test rows of ``scores.parquet``."""
    from sklearn.metrics import auc, precision_recall_curve, roc_curve

    sub = test[(test["category"] == category) & (test["seed"] == seed)]
    models = sorted(sub["model"].unique())
    protocols = [p for p in PROTOCOL_STYLE if p in set(sub["protocol"])]
    with paper_style():
        fig, axes = plt.subplots(
            2,
            len(protocols),
            figsize=(6.9, 4.4),
            squeeze=False,
            sharex="row",
            sharey="row",
            layout="constrained",
        )
        for j, p in enumerate(protocols):
            ax_roc, ax_pr = axes[0][j], axes[1][j]
            for i, model in enumerate(models):
                g = sub[(sub["model"] == model) & (sub["protocol"] == p)]
                y, s = g["label"].to_numpy(), g["score"].to_numpy()
                if y.min() == y.max():
                    continue
                st = model_style(i)
                fpr, tpr, _ = roc_curve(y, s)
                prec, rec, _ = precision_recall_curve(y, s)
                every = max(1, len(fpr) // 8)
                ax_roc.plot(fpr, tpr, markevery=every, label=f"{model} ({auc(fpr, tpr):.3f})", **st)
                ax_pr.plot(
                    rec,
                    prec,
                    markevery=max(1, len(rec) // 8),
                    drawstyle="steps-post",
                    label=model,
                    **st,
                )
            ax_roc.plot([0, 1], [0, 1], color="0.7", linewidth=0.5, linestyle="-")
            prevalence = sub[sub["protocol"] == p]["label"].mean()
            ax_pr.axhline(prevalence, color="0.7", linewidth=0.5)
            levels = (
                sub.loc[sub["protocol"] == p, "severity"].dropna().unique()
                if "severity" in sub.columns
                else []
            )
            level = f", sev. {levels[0]:g}" if len(levels) == 1 else ""
            ax_roc.set_title(f"{category}, {PROTOCOL_STYLE[p]['label']}{level} (seed {seed})")
            ax_roc.set_xlabel("false-positive rate")
            ax_pr.set_xlabel("recall")
            ax_roc.legend(loc="lower right", fontsize=6, title="model (AUROC)", title_fontsize=6)
            for ax in (ax_roc, ax_pr):
                ax.set_xlim(-0.01, 1.01)
                ax.set_ylim(-0.01, 1.01)
                ax.set_aspect("equal")
        axes[0][0].set_ylabel("true-positive rate")
        axes[1][0].set_ylabel("precision")
        return _save(fig, stem)


def score_distributions(
    scores: pd.DataFrame, category: str, model: str, seed: int, stem: Path
) -> list[Path]:
    """Test-score histograms (normal filled, anomalous hatched) per protocol with the clean
    threshold (solid) and the adapted threshold (dashed). In the shift-noadapt panel the
    clean threshold is the *transferred* one; the clean normals are outlined for reference."""
    sub = scores[
        (scores["category"] == category) & (scores["model"] == model) & (scores["seed"] == seed)
    ]
    test = sub[sub["split"] == "test"]
    protocols = [p for p in PROTOCOL_STYLE if p in set(test["protocol"])]
    thr = {p: float(test[test["protocol"] == p]["threshold"].iloc[0]) for p in protocols}
    clean_normals = test[(test["protocol"] == "clean") & (test["label"] == 0)]["score"].to_numpy()
    with paper_style():
        fig, axes = plt.subplots(
            1, len(protocols), figsize=(6.9, 2.2), squeeze=False, layout="constrained"
        )
        for ax, p in zip(axes[0], protocols, strict=False):
            g = test[test["protocol"] == p]
            s = g["score"].to_numpy()
            # the panel's own threshold must fall inside its range, else the line is off-axis
            shown = thr[p] if p == "shift-adapt" else thr.get("clean", thr[p])
            extra = clean_normals if p == "shift-noadapt" else []
            bins = np.histogram_bin_edges(np.r_[s, shown, extra], bins=30)
            # stepfilled: one polygon per histogram instead of one hatched patch per bar (fast PDF)
            ax.hist(
                g[g["label"] == 0]["score"],
                bins=bins,
                histtype="stepfilled",
                color="0.65",
                label="normal",
            )
            ax.hist(
                g[g["label"] == 1]["score"],
                bins=bins,
                histtype="stepfilled",
                facecolor="none",
                edgecolor="black",
                hatch="////",
                linewidth=0.6,
                label="anomalous",
            )
            if p == "shift-noadapt" and clean_normals.size:
                ax.hist(
                    clean_normals,
                    bins=bins,
                    histtype="step",
                    color="black",
                    linestyle=":",
                    linewidth=0.9,
                    label="normal, clean test",
                )
            if p in ("clean", "shift-noadapt"):
                ax.axvline(
                    thr.get("clean", thr[p]),
                    color="black",
                    linestyle="-",
                    linewidth=1.0,
                    label="clean threshold",
                )
            if p == "shift-adapt":
                ax.axvline(
                    thr[p], color="black", linestyle="--", linewidth=1.0, label="adapted threshold"
                )
            ax.set_title(f"{PROTOCOL_STYLE[p]['label']}")
            ax.set_xlabel("anomaly score")
        axes[0][0].set_ylabel("test images")
        handles = {}
        for ax in axes[0]:
            for h, lab in zip(*ax.get_legend_handles_labels(), strict=False):
                handles.setdefault(lab, h)
        fig.legend(
            handles.values(),
            handles.keys(),
            loc="outside upper center",
            ncol=len(handles),
            fontsize=6.5,
            title=f"{category} / {model} (seed {seed})",
            title_fontsize=8,
        )
        return _save(fig, stem)


def severity_curves(
    scores: pd.DataFrame,
    stem: Path,
    *,
    metric: stats.VectorisedMetric = stats.auroc,
    ylabel: str = "Image AUROC",
) -> list[Path] | None:
    """Metric against shift severity (mean over categories and seeds), one line per model,
    one panel per shifted protocol, with the clean value as a thin reference line. Needs a ``severity`` column with at least
    two levels; returns None (and draws nothing) otherwise."""
    if "severity" not in scores.columns or scores["severity"].dropna().nunique() < 2:
        return None
    test = scores[scores["split"] == "test"]
    # clean rows carry no severity (a runner's) or every level (identical copies): one each
    clean = (
        test[test["protocol"] == "clean"]
        .drop_duplicates(["category", "model", "seed", "sample_id"])
        .assign(severity=-1.0)
    )
    test = pd.concat([test[test["protocol"] != "clean"].dropna(subset=["severity"]), clean])
    rows = []
    for (sev, model, proto, _cat, _seed), g in test.groupby(
        ["severity", "model", "protocol", "category", "seed"]
    ):
        rows.append(
            {
                "severity": sev,
                "model": model,
                "protocol": proto,
                "value": metric(g["label"], g["score"]),
            }
        )
    df = (
        pd.DataFrame(rows)
        .groupby(["severity", "model", "protocol"], as_index=False)["value"]
        .mean()
    )
    models = sorted(df["model"].unique())
    shifted = [p for p in ("shift-noadapt", "shift-adapt") if p in set(df["protocol"])]
    levels = sorted(df.loc[df["protocol"] != "clean", "severity"].unique())
    with paper_style():
        fig, axes = plt.subplots(
            1,
            max(1, len(shifted)),
            figsize=(6.9, 2.3),
            squeeze=False,
            sharey=True,
            layout="constrained",
        )
        for ax, p in zip(axes[0], shifted, strict=False):
            for i, model in enumerate(models):
                d = df[(df["model"] == model) & (df["protocol"] == p)].sort_values("severity")
                ax.plot(d["severity"], d["value"], label=model, **model_style(i))
                c = df[(df["model"] == model) & (df["protocol"] == "clean")]
                if len(c):
                    ax.axhline(
                        c["value"].mean(),
                        linewidth=0.5,
                        **{k: v for k, v in model_style(i).items() if k != "marker"},
                    )
            ax.set_title(PROTOCOL_STYLE[p]["label"])
            ax.set_xlabel("severity")
            ax.set_xticks(levels)
        axes[0][0].set_ylabel(f"{ylabel} (mean)")
        from matplotlib.lines import Line2D

        handles, labels = axes[0][-1].get_legend_handles_labels()
        handles.append(Line2D([], [], color="0.3", linewidth=0.5))
        labels.append("clean (thin line)")
        axes[0][-1].legend(handles, labels, fontsize=6)
        return _save(fig, stem)


def critical_difference_diagram(
    result: stats.FriedmanNemenyiResult, stem: Path, title: str = ""
) -> list[Path]:
    """Demšar (2006) critical-difference diagram: models on an average-rank axis (1 = best,
    left), the CD as a scale bar, and thick bars joining models whose rank difference is
    below the CD (not significantly different by Nemenyi)."""
    ranks = result.average_ranks.sort_values()
    names, values = list(ranks.index), ranks.to_numpy()
    k, cd = len(names), result.critical_difference
    # Maximal groups of consecutive models within CD of each other.
    cliques = []
    for i in range(k):
        j = i
        while j + 1 < k and values[j + 1] - values[i] < cd:
            j += 1
        if j > i and not any(a <= i and j <= b for a, b in cliques):
            cliques.append((i, j))
    half = (k + 1) // 2
    height = 0.9 + 0.2 * max(half, k - half) + 0.1 * len(cliques)
    with paper_style():
        fig, ax = plt.subplots(figsize=(3.4, height), layout="constrained")
        # The rank axis takes the middle of the figure; names hang off both ends.
        pad = 0.65 * max(1, k - 1)
        ax.set_xlim(1 - pad, k + pad)
        top = 0.0
        lowest = -(0.3 + 0.22 * (max(half, k - half) - 1) + 0.1 * len(cliques))
        ax.set_ylim(lowest - 0.12, 0.62)
        ax.axis("off")
        ax.hlines(top, 1, k, color="black", linewidth=0.8)
        for r in range(1, k + 1):
            ax.vlines(r, top, top + 0.06, color="black", linewidth=0.8)
            ax.text(r, top + 0.1, str(r), ha="center", va="bottom", fontsize=7)
        ax.hlines(0.42, 1, 1 + cd, color="black", linewidth=1.0)
        ax.vlines([1, 1 + cd], 0.38, 0.46, color="black", linewidth=1.0)
        ax.text(1 + cd / 2, 0.48, f"CD = {cd:.2f}", ha="center", va="bottom", fontsize=7)
        for i, (name, v) in enumerate(zip(names, values, strict=False)):
            left = i < half
            row = i if left else k - 1 - i
            y = -(0.3 + 0.22 * row + 0.1 * len(cliques))
            x_text = 1 - 0.1 * pad if left else k + 0.1 * pad
            ax.plot([v, v, x_text], [top, y, y], color="black", linewidth=0.7)
            ax.text(
                x_text + (-0.02 if left else 0.02),
                y,
                f"{name} ({v:.2f})",
                ha="right" if left else "left",
                va="center",
                fontsize=6.5,
            )
        for c, (i, j) in enumerate(cliques):
            y = -(0.12 + 0.1 * c)
            ax.hlines(y, values[i] - 0.03, values[j] + 0.03, color="black", linewidth=2.5)
        if title:
            ax.set_title(
                f"{title}  (Friedman p = {result.p_value:.3g}, N = {result.n_blocks})", fontsize=7
            )
        return _save(fig, stem)


def qualitative_grid(rows: Sequence[dict], stem: Path, title: str = "") -> list[Path]:
    """Grid of image | shifted image | ground truth | heatmap | predicted mask, one row per
    sample. Each row dict: ``image`` uint8 [H,W,3], ``shifted`` uint8 [H,W,3] or None,
    ``mask`` uint8 [H,W], ``heatmap`` float [H,W], ``pred`` bool [H,W], ``title`` str.
    Heatmaps use a perceptually uniform map (``viridis``) that keeps its order in grey."""
    cols = ("image", "shifted image", "ground truth", "heatmap", "predicted mask")
    n = len(rows)
    with paper_style():
        fig, axes = plt.subplots(
            n, 5, figsize=(6.9, 1.45 * n + 0.3), squeeze=False, layout="constrained"
        )
        for r, row in enumerate(rows):
            panels = (row["image"], row.get("shifted"), row["mask"], row["heatmap"], row["pred"])
            for c, (ax, data) in enumerate(zip(axes[r], panels, strict=False)):
                ax.set_xticks([])
                ax.set_yticks([])
                if data is None:
                    ax.text(
                        0.5,
                        0.5,
                        "unavailable",
                        ha="center",
                        va="center",
                        fontsize=6,
                        transform=ax.transAxes,
                    )
                elif c == 3:
                    ax.imshow(data, cmap="viridis", interpolation="nearest")
                elif c in (2, 4):
                    ax.imshow(
                        np.asarray(data) > 0, cmap="gray", vmin=0, vmax=1, interpolation="nearest"
                    )
                else:
                    ax.imshow(data, interpolation="nearest")
                if r == 0:
                    ax.set_title(cols[c])
            axes[r][0].set_ylabel(row.get("title", ""), fontsize=5.5)
        if title:
            fig.suptitle(title, fontsize=8)
        return _save(fig, stem)
