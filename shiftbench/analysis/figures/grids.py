"""Paper figures of grids and ranks: robustness heat maps (shift x severity per model),
the critical-difference diagram of average ranks, and the qualitative grid of images and
anomaly maps. Style: :mod:`.style`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from shiftbench.analysis import stats  # noqa: E402
from shiftbench.analysis.figures.style import (  # noqa: E402
    MAX_HEIGHT,
    ONE_COLUMN,
    TWO_COLUMN,
    paper_style,
    save_figure,
)

__all__ = [
    "HEATMAP_RANGE",
    "critical_difference_diagram",
    "qualitative_grid",
    "robustness_heatmap",
]


# --------------------------------------------------------------------------------------
# Robustness heat maps
# --------------------------------------------------------------------------------------

#: the fixed colour range of a metric's heat map, the same in every run so that a colour
#: always means the same value: AUROC from chance (0.5) to perfect, PRO over its full range
HEATMAP_RANGE = {"image_auroc": (0.5, 1.0), "pixel_aupro": (0.0, 1.0)}
_CELL_W, _CELL_H = 0.38, 0.34  # inches: room for "−18.6" over "55.3" at 7 pt
_CHAR_W = 0.056  # inches per character of an 8 pt tick label (serif), an upper estimate


def _heatmap_columns(n_models: int, n_levels: int, label_chars: int) -> tuple[float, int]:
    """(figure width, panels per row): one column wide when one panel fits there, else
    as many panels per row of a two-column figure as keep every cell _CELL_W wide."""
    labels = label_chars * _CHAR_W + 0.15  # the shift names, left of the first panel only
    panel, bar = n_levels * _CELL_W + 0.12, 0.75  # a panel and its gap; the colour bar
    if n_models == 1 and labels + panel + bar <= ONE_COLUMN:
        return ONE_COLUMN, 1
    fit = int((TWO_COLUMN - labels - bar) // panel)
    return TWO_COLUMN, max(1, min(n_models, fit))


def robustness_heatmap(
    frame: pd.DataFrame,
    stem: Path,
    *,
    label: str = "Image AUROC",
    vrange: tuple[float, float] = HEATMAP_RANGE["image_auroc"],
    title: str = "",
) -> list[Path]:
    """One panel per model: rows = shifts, columns = severity (clean first), cell colour =
    the metric on the fixed range ``vrange`` (the same for every model and every run;
    values outside take the end colour, the bar's arrow says so), text = value and below
    it the change from clean, in % like the colour bar. Shift names label the first panel
    of each row only. ``frame``: :func:`shiftbench.analysis.stats.robustness.heatmap_frame`."""
    from matplotlib.ticker import FuncFormatter

    models = sorted(frame["model"].unique())
    shifts = sorted(frame["shift"].unique())
    levels = sorted(frame["severity"].unique())
    vmin, vmax = vrange
    width, ncol = _heatmap_columns(len(models), len(levels), max(len(s) for s in shifts))
    nrow = int(np.ceil(len(models) / ncol))
    extend = {
        (False, False): "neither", (True, False): "min", (False, True): "max", (True, True): "both"
    }[(bool((frame["value"] < vmin).any()), bool((frame["value"] > vmax).any()))]  # fmt: skip
    with paper_style():
        fig, axes = plt.subplots(
            nrow, ncol, figsize=(width, nrow * (0.75 + _CELL_H * len(shifts)) + 0.3),
            squeeze=False, layout="constrained",
        )  # fmt: skip
        fig.get_layout_engine().set(w_pad=0.04, wspace=0.02)
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
                    ax.text(j, i, txt.replace("-", "−"), ha="center", va="center", fontsize=7,
                            color="black" if lum > 0.5 else "white", linespacing=1.1,
                            gid="cell")  # fmt: skip
            ax.set_xticks(range(len(levels)), ["clean" if v == 0 else f"{v:g}" for v in levels])
            ax.set_yticks(range(len(shifts)), shifts if k % ncol == 0 else [])
            ax.set_xlabel("severity")
            ax.set_title(model)
            for side in ("top", "right", "left", "bottom"):
                ax.spines[side].set_visible(False)
            ax.tick_params(length=0)
            ax.tick_params(axis="y", pad=5)  # the names clear of the first cell
        for k in range(len(models), nrow * ncol):
            axes[k // ncol][k % ncol].axis("off")
        if im is not None:
            cb = fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.9, pad=0.02, extend=extend,
                              aspect=max(10, 6 * len(shifts) * nrow))  # fmt: skip
            cb.set_label(f"{label} (%)")
            cb.ax.yaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{100 * x:.0f}"))
        if title:
            fig.suptitle(title)
        return save_figure(fig, stem)


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
        return save_figure(fig, stem)


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
        return save_figure(fig, stem)
