"""The one style of the paper figures (vector PDF and PNG), readable in greyscale.

* Sizes: every figure is :data:`ONE_COLUMN` (3.5 in) or :data:`TWO_COLUMN` (7 in) wide and
  saved at :data:`DPI` (300), so a PNG is exactly ``width * DPI`` by ``height * DPI``
  pixels; text is 8 pt (titles 9 pt), the size of a caption in a two-column paper.
* PDFs embed their fonts as TrueType (``pdf.fonttype`` 42): editable, searchable and
  accepted by publishers' checks.
* Models look the same in every figure of every run: colour, marker and line style come
  from :mod:`shiftbench.analysis.figures.palette`, by model *name*. Protocols are named as in the
  tables (``clean``, ``shift, no adapt.``, ``shift, adapt.``) and told apart by grey level
  *and* hatch, so nothing depends on colour alone.

Uses matplotlib's Agg backend. The figures themselves: :mod:`.curves` (bars and
curves) and :mod:`.grids` (heat maps, critical-difference diagram, qualitative grid).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from shiftbench.analysis.figures import palette  # noqa: E402

__all__ = [
    "DPI",
    "MAX_HEIGHT",
    "ONE_COLUMN",
    "PROTOCOL_STYLE",
    "TWO_COLUMN",
    "boxed_legend",
    "model_style",
    "paper_style",
    "save_figure",
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


def save_figure(fig: plt.Figure, stem: Path) -> list[Path]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".pdf"), stem.with_suffix(".png")]
    for p in paths:
        fig.savefig(p, dpi=DPI)  # no bbox="tight": keeps the pixel size predictable
    plt.close(fig)
    return paths


def boxed_legend(fig, handles, labels, ncol: int | None = None, title: str | None = None):
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
