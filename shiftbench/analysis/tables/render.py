"""Laying out the tables of :mod:`.tables` as LaTeX (booktabs), Markdown and HTML.

A table is first a :class:`~shiftbench.analysis.tables.grid.Grid` (header, blocks of rows
of cells: :mod:`.grid`, which also writes each format), laid out here per kind of
table. Values are shown in % unless a cell says otherwise; the best model per block and
column is bold; marks on the Δ columns come from Holm-adjusted p values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from shiftbench.analysis.tables.comparison import COLUMNS, PIXEL_METRICS, ProtocolComparison
from shiftbench.analysis.tables.grid import (
    COLUMN_PT,
    LATEX_PREAMBLE,
    Cell,
    Grid,
    TextCell,
    bold_best,
    latex_escape,
    p_marks,
    plain_caption,
)
from shiftbench.results import schema

__all__ = [
    "COLUMN_PT",
    "HEADERS",
    "LATEX_PREAMBLE",
    "describe_seeds",
    "latex_escape",
    "plain_caption",
    "render_comparison",
    "render_efficiency",
    "render_frame",
    "render_pixel",
    "render_transfer",
]

#: the former private name, still imported by callers
_plain_caption = plain_caption

HEADERS = {
    "clean": ("Clean", "Clean"),
    "shift-noadapt": ("Shift (no adapt.)", "Shift\n(no adapt.)"),
    "shift-adapt": ("Shift (adapt.)", "Shift\n(adapt.)"),
    "d_noadapt_clean": ("Δ(noadapt−clean)", "$\\Delta$ no adapt.\n$-$clean"),
    "d_adapt_noadapt": ("Δ(adapt−noadapt)", "$\\Delta$ adapt.\n$-$no adapt."),
}
assert set(HEADERS) == set(COLUMNS)

#: efficiency metric -> (header, higher is better, digits, scale)
EFFICIENCY_FORMAT = {
    "fit_seconds": ("Fit (s)", False, 1, 1.0),
    "ms_per_image": ("ms/image", False, 1, 1.0),
    "images_per_second": ("images/s", True, 1, 1.0),
    "model_size_mb": ("Size (MB)", False, 1, 1.0),
    "peak_memory_mb": ("Peak mem. (MB)", False, 0, 1.0),
    "n_parameters": ("Params (M)", False, 2, 1e-6),
}


def describe_seeds(n_seeds: int, seeds: list | None = None) -> str:
    """'mean over 3 seeds' or 'seed 0' (one seed: there is no mean)."""
    if n_seeds <= 1:
        return f"seed {seeds[0]}" if seeds else "one seed"
    return f"mean over {n_seeds} seeds"


BOLD_RULE = (
    "Bold: best model per category in each protocol column; $\\Delta$ columns are not bolded."
)


_TESTS = {"image_auroc": "DeLong", "image_f1": "McNemar", "image_auprc": "paired bootstrap"}


def _marks_note() -> str:
    return "$^{*}$ $p<0.05$, $^{**}$ $p<0.01$, $^{***}$ $p<0.001$."


def render_comparison(comp: ProtocolComparison, context: str = "", over: str = "") -> Grid:
    """Lay out a :class:`ProtocolComparison`: one block per category (``mean`` last), one
    row per model. Bold: in each block, the best *score* per protocol column (highest); the
    Δ columns are never bolded (a smaller loss is not a better model when the interval
    spans zero). Values in %. ``context`` (suite and severity) and ``over`` (how seeds are
    combined) go into the caption."""
    level = round(100 * (1 - comp.alpha))
    over = over or "mean over seeds"
    caption = f"{comp.label} (\\%) on the test images, {over}"
    caption += f"; {context}." if context else "."
    test = "paired cluster-bootstrap" if comp.clustered else _TESTS.get(comp.metric, "paired")
    n_tests = int(np.isfinite(comp.table[[f"{d}_p" for d in schema.DELTA_COLUMNS]]).sum().sum())
    drawn = (
        " over images, each drawn with its twins under every shift, as they are not independent"
        if comp.clustered
        else ""
    )
    pm_rule = (
        f"$\\pm$: half-width of the {level}\\% paired, label-stratified percentile bootstrap "
        f"interval{drawn} ({comp.n_resamples} resamples per category and seed) of the value "
        "shown."
    )
    notes = [
        f"Marks on $\\Delta$: {test} test per category and seed, Holm-corrected over every "
        "test of the table; a mark needs every seed to pass. Mean row: Wilcoxon signed-rank "
        "test over categories $\\times$ seeds, Holm-corrected over the mean rows. " + _marks_note(),
        "Interval and mark answer different questions: the interval is that of the "
        f"seed-averaged $\\Delta$ at {level}\\% with no correction for the "
        f"{max(n_tests, 1)} comparisons; the mark is the corrected test. An interval that "
        "excludes 0 without a mark is significant only before the correction.",
    ]
    n_pairs = len(comp.per_seed[["category", "seed"]].drop_duplicates())
    if n_pairs and 2.0 / 2**n_pairs >= comp.alpha:
        notes.append(
            f"The Wilcoxon test of the mean row has {n_pairs} pairs and cannot reach "
            f"$p<{comp.alpha:g}$ (smallest two-sided $p = 2/2^{{{n_pairs}}}$): no mark there "
            "is not evidence of no change."
        )
    header = [("Category", "Category"), ("Model", "Model")] + [HEADERS[c] for c in COLUMNS]
    grid = Grid(
        caption=caption, label=f"tab:{comp.metric}", header=header, n_text=2, notes=notes,
        group=True, pm_rule=pm_rule,
        bold_rule="Bold: best per category and protocol; $\\Delta$ columns are not bolded.",
    )  # fmt: skip
    t = comp.table
    for cat in t["category"].drop_duplicates():
        sub = t[t["category"] == cat]
        block = []
        for _, r in sub.iterrows():
            cells = []
            for col in COLUMNS:
                half = (r[f"{col}_high"] - r[f"{col}_low"]) / 2
                marks = p_marks(r.get(f"{col}_p", np.nan)) if col.startswith("d_") else ""
                cells.append(Cell(r[col], half, marks, signed=col.startswith("d_")))
            block.append([cat, r["model"], *cells])
        for j, col in enumerate(COLUMNS):
            if not col.startswith("d_"):
                bold_best([row[2 + j] for row in block])
        grid.blocks.append(block)
    return grid


def render_pixel(table: pd.DataFrame, metric: str, context: str = "", over: str = "") -> Grid:
    """Lay out a :func:`pixel_table` like the image tables (values in %, best score in
    bold, Δ columns never bold)."""
    over = over or "mean over seeds"
    caption = f"{PIXEL_METRICS[metric]} (\\%), {over}"
    caption += f"; {context}." if context else "."
    notes = [
        "Pixel metrics are computed on whole anomaly maps, so no per-image bootstrap interval "
        "or test is given."
    ]
    header = [("Category", "Category"), ("Model", "Model")] + [HEADERS[c] for c in COLUMNS]
    grid = Grid(
        caption=caption, label=f"tab:{metric}", header=header, n_text=2, notes=notes, group=True,
        pm_rule="$\\pm$: standard deviation over seeds.", bold_rule=BOLD_RULE,
    )  # fmt: skip
    for cat in table["category"].drop_duplicates():
        block = []
        for _, r in table[table["category"] == cat].iterrows():
            cells = [Cell(r[c], r[f"{c}_sd"], signed=c.startswith("d_")) for c in COLUMNS]
            block.append([cat, r["model"], *cells])
        for j, col in enumerate(COLUMNS):
            if not col.startswith("d_"):
                bold_best([row[2 + j] for row in block])
        grid.blocks.append(block)
    return grid


def render_efficiency(eff: pd.DataFrame) -> Grid:
    """Efficiency table, one row per model; the best model per column in bold."""
    cols = [(n, *EFFICIENCY_FORMAT[n]) for n in eff.columns if n in EFFICIENCY_FORMAT]
    header = [("Model", "Model")] + [(e[1], latex_escape(e[1]).replace("\\_", "_")) for e in cols]
    caption = "Efficiency per model (hardware as run)."
    notes = [
        "Fit time, latency, size and memory: mean over categories, seeds and protocols. "
        "images/s is $1000/$(ms/image) of that mean latency, so the two columns agree."
    ]
    grid = Grid(
        caption=caption, label="tab:efficiency", header=header, n_text=1, notes=notes,
        bold_rule="Bold: best per column.",
    )  # fmt: skip
    block = []
    for _, r in eff.iterrows():
        block.append([r["model"], *[Cell(r[e[0]], scale=e[4], digits=e[3]) for e in cols]])
    for j, e in enumerate(cols):
        bold_best([row[1 + j] for row in block], higher_is_better=e[2])
    grid.blocks.append(block)
    return grid


def render_transfer(transfer: pd.DataFrame, context: str = "", over: str = "") -> Grid:
    """Threshold transfer per (category, model), mean over seeds; rates and F1 in %."""
    header = [
        ("Category", "Category"),
        ("Model", "Model"),
        ("FPR clean", "FPR\nclean"),
        ("FPR shift", "FPR\nshift"),
        ("TPR clean", "TPR\nclean"),
        ("TPR shift", "TPR\nshift"),
        ("F1 shift", "F1\nshift"),
        ("F1 all-anom.", "F1\nall-anom."),
        ("Median shift", "Median\nshift"),
        ("KS D", "KS $D$"),
        ("Degenerate", "Degen."),
    ]
    over = over or "mean over seeds"
    caption = (
        "Threshold transfer: the Val-clean threshold on Test-clean and Test-shift, "
        f"{over}" + (f"; {context}." if context else ".")
    )
    notes = [
        "Rates and F1 in \\%. F1 all-anom.\\ is $2p/(1+p)$, the F1 of calling every image "
        "anomalous ($p$: share of anomalous test images). Median shift: of the normal scores, in "
        "units of their clean interquartile range. KS $D$: Kolmogorov--Smirnov distance between "
        "clean and shifted normal scores. Degen.: seeds whose transferred rule calls every image "
        "anomalous (all-anom.) or none (all-norm.)."
    ]
    grid = Grid(
        caption=caption, label="tab:threshold_transfer", header=header, n_text=2, notes=notes,
        group=True,
    )  # fmt: skip
    if transfer.empty:
        return grid
    short = {"all-anomalous": "all-anom.", "all-normal": "all-norm."}
    for cat, sub in transfer.groupby("category", sort=True):
        block = []
        for model, g in sub.groupby("model", sort=True):
            n_deg = int((g["degenerate"] != "").sum())
            kinds = ",".join(short.get(k, k) for k in sorted(set(g["degenerate"]) - {""}))
            cells = [
                Cell(g[c].mean())
                for c in (
                    "fpr_clean",
                    "fpr_shift",
                    "tpr_clean",
                    "tpr_shift",
                    "f1_shift",
                    "f1_all_anomalous",
                )
            ]
            cells += [Cell(g["median_shift_iqr"].mean(), scale=1, digits=2, signed=True)]
            cells += [Cell(g["ks_statistic"].mean(), scale=1, digits=2)]
            block.append(
                [
                    cat,
                    model,
                    *cells,
                    TextCell(f"{n_deg}/{len(g)}" + (f" {kinds}" if kinds else "")),
                ]
            )
        grid.blocks.append(block)
    return grid


def render_frame(
    frame: pd.DataFrame,
    *,
    caption: str,
    label: str,
    text_columns: list[tuple[str, str, str]],
    value_columns: list[tuple[str, str, str]],
    notes: list[str] = (),
    group: bool = False,
    bold: dict[str, bool] | None = None,
    formats: dict[str, dict] | None = None,
    half_columns: dict[str, str] | None = None,
    pm_rule: str = "",
    bold_rule: str = "",
) -> Grid:
    """A generic table: ``text_columns`` and ``value_columns`` are (frame column, plain
    header, LaTeX header); rows are grouped into blocks by the first text column. ``bold``:
    value column -> higher is better (bold the best per block); ``formats``: column ->
    :class:`Cell` options (``scale``, ``digits``, ``signed``); ``half_columns``: value
    column -> the column holding its ± value; ``pm_rule`` and ``bold_rule``: what ± and
    bold mean, said only where a cell shows one (:class:`Grid`)."""
    bold, formats, half_columns = bold or {}, formats or {}, half_columns or {}
    header = [(h, t) for _, h, t in text_columns] + [(h, t) for _, h, t in value_columns]
    grid = Grid(
        caption=caption, label=label, header=header, n_text=len(text_columns),
        notes=list(notes), group=group and len(text_columns) > 1, pm_rule=pm_rule,
        bold_rule=bold_rule,
    )  # fmt: skip
    key = text_columns[0][0]
    groups = frame.groupby(key, sort=False) if group else [(None, frame)]
    for _, sub in groups:
        block = []
        for _, r in sub.iterrows():
            text = [str(r[c]) for c, _, _ in text_columns]
            cells = []
            for c, _, _ in value_columns:
                v = r[c]
                if isinstance(v, str):
                    cells.append(TextCell(v))
                    continue
                half = r[half_columns[c]] if c in half_columns else float("nan")
                cells.append(
                    Cell(float(v) if v is not None else np.nan, float(half), **formats.get(c, {}))
                )
            block.append([*text, *cells])
        for j, (c, _, _) in enumerate(value_columns):
            if c in bold:
                bold_best([row[len(text_columns) + j] for row in block], bold[c])
        grid.blocks.append(block)
    return grid


assert set(EFFICIENCY_FORMAT) == set(schema.EFFICIENCY_METRICS)
