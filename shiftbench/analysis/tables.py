"""Paper tables from a run's per-image scores: protocol comparison with bootstrap CIs and
Holm-corrected tests, efficiency, threshold transfer. Rendered as LaTeX (booktabs),
Markdown, CSV and HTML.

How the numbers are made (also printed in every table caption):

* A cell is the metric on the test images, averaged over seeds; ``±`` is half the width of
  the 95% percentile bootstrap interval (exact bounds are in the CSV). Resampling is
  stratified by label and *paired*: for one (category, seed) the same resamples of the
  test images serve every protocol and model, since Test-clean and Test-shift hold the
  same images. The seed average and the macro average (``mean`` row) average the
  replicates index-wise, so their intervals come from the same bootstrap.
* Marks on the two Δ columns: for a category, one test per seed (DeLong for AUROC,
  McNemar on the decisions for F1, paired bootstrap for AUPRC), Holm-corrected over every
  test of the table; a mark needs every seed to pass (the largest adjusted p counts).
  For the ``mean`` row, a Wilcoxon signed-rank test over the (category, seed) pairs,
  Holm-corrected over the mean-row family. ``*`` p < 0.05, ``**`` p < 0.01, ``***`` p < 0.001.
"""

from __future__ import annotations

import hashlib
import html
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from shiftbench.analysis import stats

__all__ = [
    "COLUMNS",
    "METRICS",
    "ProtocolComparison",
    "efficiency_table",
    "PIXEL_METRICS",
    "pixel_table",
    "render_pixel",
    "protocol_comparison",
    "render_comparison",
    "render_efficiency",
    "render_transfer",
]

PROTOCOLS = ("clean", "shift-noadapt", "shift-adapt")
DELTAS = (
    ("d_noadapt_clean", "shift-noadapt", "clean"),
    ("d_adapt_noadapt", "shift-adapt", "shift-noadapt"),
)
COLUMNS = (*PROTOCOLS, *(d[0] for d in DELTAS))
HEADERS = {
    "clean": ("Clean", "Clean"),
    "shift-noadapt": ("Shift (no adapt.)", "Shift (no adapt.)"),
    "shift-adapt": ("Shift (adapt.)", "Shift (adapt.)"),
    "d_noadapt_clean": ("Δ(noadapt−clean)", r"$\Delta$(no adapt.$-$clean)"),
    "d_adapt_noadapt": ("Δ(adapt−noadapt)", r"$\Delta$(adapt.$-$no adapt.)"),
}


@dataclass(frozen=True)
class _MetricSpec:
    label: str
    metric: stats.VectorisedMetric
    column: str  # which scores.parquet column feeds the metric
    test: str  # "delong" | "mcnemar" | "bootstrap"


METRICS = {
    "image_auroc": _MetricSpec("Image AUROC", stats.auroc, "score", "delong"),
    "image_auprc": _MetricSpec("Image AUPRC", stats.average_precision, "score", "bootstrap"),
    "image_f1": _MetricSpec(
        "Image F1 at the Val threshold", stats.f1_decisions, "decision", "mcnemar"
    ),
}


@dataclass
class ProtocolComparison:
    """One metric over categories x models x protocols, with intervals and tests.

    ``table``: one row per (category, model) — categories then ``mean`` — with, for each
    of :data:`COLUMNS`, ``<col>``, ``<col>_low``, ``<col>_high`` (fractions) and for the
    two Δ columns ``<col>_p`` (Holm-adjusted) and ``<col>_test``. ``per_seed``: point
    estimates per (category, model, seed, protocol). ``replicates``: bootstrap replicates
    per (category, model, column), for figures.
    """

    metric: str
    label: str
    alpha: float
    n_resamples: int
    table: pd.DataFrame
    per_seed: pd.DataFrame
    replicates: dict[tuple[str, str, str], np.ndarray] = field(repr=False)


def _stable_seed(*parts: object) -> int:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _aligned(
    test: pd.DataFrame,
) -> dict[tuple[str, int], tuple[np.ndarray, dict[tuple[str, str], pd.DataFrame]]]:
    """Per (category, seed): labels and each (model, protocol)'s test rows in one order."""
    out = {}
    for (cat, seed), g in test.groupby(["category", "seed"], sort=True):
        groups = {
            k: v.set_index("sample_id") for k, v in g.groupby(["model", "protocol"], sort=True)
        }
        common = None
        for v in groups.values():
            common = v.index if common is None else common.intersection(v.index)
        common = common.sort_values()
        dropped = max(len(v) for v in groups.values()) - len(common)
        if dropped:
            warnings.warn(
                f"{cat} seed {seed}: {dropped} test images are missing from some model/protocol; "
                "comparing on the images all of them share",
                RuntimeWarning,
                stacklevel=3,
            )
        groups = {k: v.loc[common] for k, v in groups.items()}
        labels = next(iter(groups.values()))["label"].to_numpy().astype(np.int64)
        out[(cat, seed)] = (labels, groups)
    return out


def _pair_test(
    spec: _MetricSpec, labels: np.ndarray, a: pd.DataFrame, b: pd.DataFrame, d_reps: np.ndarray
) -> float:
    if spec.test == "delong":
        if labels.min() == labels.max():
            return float("nan")
        return stats.delong(labels, a["score"].to_numpy(), b["score"].to_numpy()).p_value
    if spec.test == "mcnemar":
        return stats.mcnemar(a["decision"].to_numpy(), b["decision"].to_numpy(), labels).p_value
    return stats.bootstrap_p_value(d_reps)


def protocol_comparison(
    scores: pd.DataFrame,
    metric: str = "image_auroc",
    *,
    n_resamples: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> ProtocolComparison:
    """Compare protocols for one metric, from ``scores.parquet`` rows.

    Args:
        scores: the run's per-image scores (architecture "run directory" columns).
        metric: a key of :data:`METRICS`.
        n_resamples: bootstrap resamples per (category, seed).
        alpha: interval level ``1 - alpha`` and significance level of the marks.
        seed: base seed of the resampling (each (category, seed) derives its own).
    """
    spec = METRICS[metric]
    test = scores[scores["split"] == "test"]
    reps: dict[tuple[str, str, int, str], np.ndarray] = {}
    est: dict[tuple[str, str, int, str], float] = {}
    tests: list[dict] = []
    for (cat, run_seed), (labels, groups) in _aligned(test).items():
        rng = np.random.default_rng(_stable_seed(seed, cat, run_seed))
        idx = stats.stratified_resample_indices(labels, n_resamples, rng)
        weights = stats.resample_weights(idx, labels.size)
        for (model, protocol), rows in groups.items():
            values = rows[spec.column].to_numpy().astype(np.float64)
            est[(cat, model, run_seed, protocol)] = spec.metric(labels, values)
            reps[(cat, model, run_seed, protocol)] = spec.metric.weighted(labels, values, weights)
        for model in sorted({m for m, _ in groups}):
            for dname, pa, pb in DELTAS:
                if (model, pa) in groups and (model, pb) in groups:
                    d = reps[(cat, model, run_seed, pa)] - reps[(cat, model, run_seed, pb)]
                    p = _pair_test(spec, labels, groups[(model, pa)], groups[(model, pb)], d)
                    tests.append(
                        {"category": cat, "model": model, "seed": run_seed, "column": dname, "p": p}
                    )

    per_seed = (
        pd.Series(est, name="value")
        .rename_axis(["category", "model", "seed", "protocol"])
        .reset_index()
    )
    categories = sorted(per_seed["category"].unique())
    models = sorted(per_seed["model"].unique())

    # Seed average of point estimates and of replicates, per (category, model, column).
    cell_est: dict[tuple[str, str, str], float] = {}
    cell_reps: dict[tuple[str, str, str], np.ndarray] = {}
    for cat in categories:
        for model in models:
            seeds = sorted({s for (c, m, s, _) in est if c == cat and m == model})
            for protocol in PROTOCOLS:
                keys = [
                    (cat, model, s, protocol) for s in seeds if (cat, model, s, protocol) in est
                ]
                if keys and len(keys) == len(seeds):
                    cell_est[(cat, model, protocol)] = float(np.mean([est[k] for k in keys]))
                    cell_reps[(cat, model, protocol)] = np.mean([reps[k] for k in keys], axis=0)
            for dname, pa, pb in DELTAS:
                if (cat, model, pa) in cell_est and (cat, model, pb) in cell_est:
                    cell_est[(cat, model, dname)] = (
                        cell_est[(cat, model, pa)] - cell_est[(cat, model, pb)]
                    )
                    cell_reps[(cat, model, dname)] = (
                        cell_reps[(cat, model, pa)] - cell_reps[(cat, model, pb)]
                    )
    # Macro average over categories.
    for model in models:
        for col in COLUMNS:
            keys = [(c, model, col) for c in categories if (c, model, col) in cell_est]
            if keys and len(keys) == len(categories):
                cell_est[("mean", model, col)] = float(np.mean([cell_est[k] for k in keys]))
                cell_reps[("mean", model, col)] = np.mean([cell_reps[k] for k in keys], axis=0)

    # Significance: per-category tests, Holm over the whole table; mean row: Wilcoxon.
    tests_df = pd.DataFrame(tests, columns=["category", "model", "seed", "column", "p"])
    if len(tests_df):
        tests_df["p_holm"] = stats.holm(tests_df["p"].to_numpy(), alpha)[1]
    mean_tests = []
    for model in models:
        for dname, pa, pb in DELTAS:
            sub = per_seed[(per_seed["model"] == model) & (per_seed["category"].isin(categories))]
            wide = sub.pivot_table(index=["category", "seed"], columns="protocol", values="value")
            if pa in wide and pb in wide:
                pair = wide[[pa, pb]].dropna()
                p = stats.wilcoxon(pair[pa], pair[pb]).p_value if len(pair) else float("nan")
                mean_tests.append({"model": model, "column": dname, "p": p})
    mean_df = pd.DataFrame(mean_tests, columns=["model", "column", "p"])
    if len(mean_df):
        mean_df["p_holm"] = stats.holm(mean_df["p"].to_numpy(), alpha)[1]

    rows = []
    for cat in [*categories, "mean"]:
        for model in models:
            if not any((cat, model, c) in cell_est for c in COLUMNS):
                continue
            row: dict = {"category": cat, "model": model}
            for col in COLUMNS:
                if (cat, model, col) in cell_est:
                    low, high = stats.percentile_interval(cell_reps[(cat, model, col)], alpha)
                    row[col], row[f"{col}_low"], row[f"{col}_high"] = (
                        cell_est[(cat, model, col)],
                        low,
                        high,
                    )
                else:
                    row[col] = row[f"{col}_low"] = row[f"{col}_high"] = np.nan
            for dname, _, _ in DELTAS:
                if cat == "mean":
                    hit = mean_df[(mean_df["model"] == model) & (mean_df["column"] == dname)]
                    test_name = "wilcoxon"
                else:
                    hit = tests_df[
                        (tests_df["category"] == cat)
                        & (tests_df["model"] == model)
                        & (tests_df["column"] == dname)
                    ]
                    test_name = spec.test
                row[f"{dname}_p"] = float(hit["p_holm"].max()) if len(hit) else np.nan
                row[f"{dname}_test"] = test_name if len(hit) else ""
            rows.append(row)
    return ProtocolComparison(
        metric=metric,
        label=spec.label,
        alpha=alpha,
        n_resamples=n_resamples,
        table=pd.DataFrame(rows),
        per_seed=per_seed,
        replicates=cell_reps,
    )


# --------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------


def _marks(p: float) -> str:
    if not np.isfinite(p):
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""


def latex_escape(text: str) -> str:
    """Escape LaTeX special characters in a plain-text name (category, model)."""
    repl = {
        "\\": r"\textbackslash{}",
        "&": r"\&",
        "%": r"\%",
        "$": r"\$",
        "#": r"\#",
        "_": r"\_",
        "{": r"\{",
        "}": r"\}",
        "~": r"\textasciitilde{}",
        "^": r"\textasciicircum{}",
    }
    return "".join(repl.get(ch, ch) for ch in str(text))


def _md_escape(text: str) -> str:
    return str(text).replace("|", r"\|").replace("*", r"\*").replace("_", r"\_")


@dataclass
class _Cell:
    value: float
    half: float = float("nan")
    marks: str = ""
    bold: bool = False
    signed: bool = False
    scale: float = 100.0
    digits: int = 1

    def numbers(self, minus: str = "−") -> tuple[str, str]:
        if not np.isfinite(self.value):
            return "", ""
        v = self.value * self.scale
        s = f"{v:+.{self.digits}f}" if self.signed else f"{v:.{self.digits}f}"
        s = s.replace("-", minus)
        h = f"{self.half * self.scale:.{self.digits}f}" if np.isfinite(self.half) else ""
        return s, h

    def latex(self) -> str:
        v, h = self.numbers(minus="-")
        if not v:
            return "--"
        body = f"{v} \\pm {h}" if h else v
        body = rf"\mathbf{{{body}}}" if self.bold else body
        marks = f"^{{{self.marks}}}" if self.marks else ""
        return f"${body}{marks}$"

    def markdown(self) -> str:
        v, h = self.numbers()
        if not v:
            return "–"
        body = f"{v} ± {h}" if h else v
        body = f"**{body}**" if self.bold else body
        return body + self.marks.replace("*", r"\*")

    def html(self) -> str:
        v, h = self.numbers()
        if not v:
            return "–"
        body = f"{v} ± {h}" if h else v
        body = f"<b>{body}</b>" if self.bold else body
        return body + (f"<sup>{self.marks}</sup>" if self.marks else "")


@dataclass
class _Grid:
    """A table before rendering: header, blocks of rows (first cells are plain text)."""

    caption: str
    label: str
    header: list[tuple[str, str]]  # (plain/markdown, latex)
    n_text: int  # leading text columns
    blocks: list[list[list]] = field(default_factory=list)  # rows: text cells then _Cell

    def latex(self) -> str:
        ncol = len(self.header)
        lines = [
            r"\begin{table}[t]",
            r"\centering",
            r"\small",
            rf"\caption{{{self.caption}}}",
            rf"\label{{{self.label}}}",
            rf"\begin{{tabular}}{{{'l' * self.n_text}{'c' * (ncol - self.n_text)}}}",
            r"\toprule",
            " & ".join(h[1] for h in self.header) + r" \\",
            r"\midrule",
        ]
        for b, block in enumerate(self.blocks):
            if b:
                lines.append(r"\midrule")
            for r, row in enumerate(block):
                text = [
                    latex_escape(c) if (r == 0 or i > 0) else ""
                    for i, c in enumerate(row[: self.n_text])
                ]
                lines.append(" & ".join(text + [c.latex() for c in row[self.n_text :]]) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
        return "\n".join(lines)

    def markdown(self) -> str:
        lines = [
            f"**{_md_escape(_plain_caption(self.caption))}**",
            "",
            "| " + " | ".join(h[0] for h in self.header) + " |",
        ]
        lines.append(
            "|" + "|".join([":--"] * self.n_text + [":-:"] * (len(self.header) - self.n_text)) + "|"
        )
        for block in self.blocks:
            for row in block:
                text = [_md_escape(c) for c in row[: self.n_text]]
                lines.append(
                    "| " + " | ".join(text + [c.markdown() for c in row[self.n_text :]]) + " |"
                )
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        out = [f"<table><caption>{html.escape(_plain_caption(self.caption))}</caption><thead><tr>"]
        out += [f"<th>{html.escape(h[0])}</th>" for h in self.header]
        out.append("</tr></thead><tbody>")
        for block in self.blocks:
            for r, row in enumerate(block):
                cls = ' class="block"' if r == 0 else ""
                out.append(f"<tr{cls}>")
                out += [f"<td>{html.escape(str(c))}</td>" for c in row[: self.n_text]]
                out += [f"<td>{c.html()}</td>" for c in row[self.n_text :]]
                out.append("</tr>")
        out.append("</tbody></table>")
        return "".join(out)


def _bold_best(cells: list[_Cell], higher_is_better: bool = True) -> None:
    shown = [float(c.numbers(minus="-")[0]) if c.numbers()[0] else None for c in cells]
    valid = [v for v in shown if v is not None]
    if len(valid) < 2:
        return
    best = max(valid) if higher_is_better else min(valid)
    for c, v in zip(cells, shown, strict=False):
        c.bold = v == best


def render_comparison(comp: ProtocolComparison) -> _Grid:
    """Lay out a :class:`ProtocolComparison`: one block per category (``mean`` last), one
    row per model; in each block and column the best model is bold (highest value; for the
    Δ columns the largest, i.e. the smallest loss and the largest gain). Values in %."""
    level = round(100 * (1 - comp.alpha))
    caption = (
        f"{comp.label} (\\%) on the test images, mean over seeds; $\\pm$ half-width of the {level}\\% "
        f"paired, label-stratified bootstrap interval ({comp.n_resamples} resamples). "
        "Marks on $\\Delta$: Holm-corrected tests per category "
        f"({'DeLong' if comp.metric == 'image_auroc' else 'McNemar' if comp.metric == 'image_f1' else 'paired bootstrap'}), "
        "Wilcoxon signed-rank over categories $\\times$ seeds for the mean; "
        "* $p<0.05$, ** $p<0.01$, *** $p<0.001$. Best model per category and column in bold."
    )
    header = [("Category", "Category"), ("Model", "Model")] + [HEADERS[c] for c in COLUMNS]
    grid = _Grid(caption=caption, label=f"tab:{comp.metric}", header=header, n_text=2)
    t = comp.table
    for cat in t["category"].drop_duplicates():
        sub = t[t["category"] == cat]
        block = []
        for _, r in sub.iterrows():
            cells = []
            for col in COLUMNS:
                half = (r[f"{col}_high"] - r[f"{col}_low"]) / 2
                marks = _marks(r.get(f"{col}_p", np.nan)) if col.startswith("d_") else ""
                cells.append(_Cell(r[col], half, marks, signed=col.startswith("d_")))
            block.append([cat, r["model"], *cells])
        for j in range(len(COLUMNS)):
            _bold_best([row[2 + j] for row in block])
        grid.blocks.append(block)
    return grid


def _plain_caption(caption: str) -> str:
    for a, b in (
        ("\\%", "%"),
        ("$\\pm$", "±"),
        ("$\\Delta$", "Δ"),
        ("$\\times$", "×"),
        ("$p<", "p < "),
        ("$", ""),
    ):
        caption = caption.replace(a, b)
    return caption


# --------------------------------------------------------------------------------------
# Pixel metrics (from metrics.parquet: a run keeps whole-map metrics, not per-pixel data)
# --------------------------------------------------------------------------------------

PIXEL_METRICS = {
    "pixel_auroc": "Pixel AUROC",
    "pixel_aupro": "Pixel PRO (normalised AUPRO up to FPR 0.3)",
    "pixel_f1": "Pixel F1 at the Val threshold",
}


def pixel_table(metrics: pd.DataFrame, metric: str, severity: float | None = None) -> pd.DataFrame:
    """One metric of ``metrics.parquet`` per (category, model), ``mean`` row last.

    For each of :data:`COLUMNS`: ``<col>`` the mean over seeds, ``<col>_sd`` the standard
    deviation over seeds (NaN with one seed); a Δ column is the seed-wise difference of
    two protocols, then averaged. ``severity`` picks one level of a sweep (protocols that
    see no shift have no level). Columns of protocols the run did not use are NaN.
    """
    m = metrics[metrics["metric"] == metric]
    if severity is not None and "severity" in m.columns:
        m = m[(m["severity"] == severity) | m["severity"].isna()]
    wide = m.pivot_table(
        index=["category", "model", "seed"], columns="protocol", values="value", aggfunc="mean"
    )
    for p in PROTOCOLS:
        if p not in wide.columns:
            wide[p] = np.nan
    for name, a, b in DELTAS:
        wide[name] = wide[a] - wide[b]
    g = wide[list(COLUMNS)].groupby(level=["category", "model"])
    mean, sd = g.mean(), g.std(ddof=1)
    out = mean.join(sd.add_suffix("_sd")).reset_index()
    out["_mean_last"] = out["category"] == "mean"
    out = out.sort_values(["_mean_last", "category", "model"]).drop(columns="_mean_last")
    return out.reset_index(drop=True)


def render_pixel(table: pd.DataFrame, metric: str) -> _Grid:
    """Lay out a :func:`pixel_table` like the image tables (values in %, best in bold)."""
    caption = (
        f"{PIXEL_METRICS[metric]} (\\%) on the test images, mean over seeds; $\\pm$ standard "
        "deviation over seeds where there are several. Pixel metrics are computed on whole "
        "anomaly maps, so no per-image bootstrap interval or test is given. Best model per "
        "category and column in bold."
    )
    header = [("Category", "Category"), ("Model", "Model")] + [HEADERS[c] for c in COLUMNS]
    grid = _Grid(caption=caption, label=f"tab:{metric}", header=header, n_text=2)
    for cat in table["category"].drop_duplicates():
        block = []
        for _, r in table[table["category"] == cat].iterrows():
            cells = [_Cell(r[c], r[f"{c}_sd"], signed=c.startswith("d_")) for c in COLUMNS]
            block.append([cat, r["model"], *cells])
        for j in range(len(COLUMNS)):
            _bold_best([row[2 + j] for row in block])
        grid.blocks.append(block)
    return grid


# --------------------------------------------------------------------------------------
# Efficiency and threshold transfer
# --------------------------------------------------------------------------------------

EFFICIENCY = (
    ("fit_seconds", "Fit (s)", False, 1, 1.0),
    ("ms_per_image", "ms/image", False, 1, 1.0),
    ("images_per_second", "images/s", True, 1, 1.0),
    ("model_size_mb", "Size (MB)", False, 1, 1.0),
    ("peak_memory_mb", "Peak mem. (MB)", False, 0, 1.0),
    ("n_parameters", "Params (M)", False, 2, 1e-6),
)


def efficiency_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Efficiency per model from ``metrics.parquet``: mean over categories, seeds and
    protocols of every efficiency metric present (per-category rows; the ``mean`` category
    is used only when no per-category row exists). One row per model."""
    names = [e[0] for e in EFFICIENCY]
    m = metrics[metrics["metric"].isin(names)]
    if m.empty:
        return pd.DataFrame(columns=["model", *names])
    per_cat = m[m["category"] != "mean"]
    m = per_cat if len(per_cat) else m
    out = m.pivot_table(index="model", columns="metric", values="value", aggfunc="mean")
    return out.reindex(columns=[n for n in names if n in out.columns]).reset_index()


def render_efficiency(eff: pd.DataFrame) -> _Grid:
    """Efficiency table; the best model per column in bold."""
    cols = [e for e in EFFICIENCY if e[0] in eff.columns]
    header = [("Model", "Model")] + [(e[1], latex_escape(e[1]).replace("\\_", "_")) for e in cols]
    caption = "Efficiency per model, mean over categories, seeds and protocols (CPU/GPU as run)."
    grid = _Grid(caption=caption, label="tab:efficiency", header=header, n_text=1)
    block = []
    for _, r in eff.iterrows():
        block.append([r["model"], *[_Cell(r[e[0]], scale=e[4], digits=e[3]) for e in cols]])
    for j, e in enumerate(cols):
        _bold_best([row[1 + j] for row in block], higher_is_better=e[2])
    grid.blocks.append(block)
    return grid


def render_transfer(transfer: pd.DataFrame) -> _Grid:
    """Threshold transfer per (category, model), mean over seeds; rates and F1 in %."""
    header = [
        ("Category", "Category"),
        ("Model", "Model"),
        ("FPR clean", "FPR clean"),
        ("FPR shift", "FPR shift"),
        ("TPR clean", "TPR clean"),
        ("TPR shift", "TPR shift"),
        ("F1 shift", "F1 shift"),
        ("F1 all-anom.", "F1 all-anom."),
        ("Median shift (IQR)", "Median shift (IQR)"),
        ("KS D", "KS $D$"),
        ("Degenerate seeds", "Degenerate seeds"),
    ]
    caption = (
        "Threshold transfer: the Val-clean threshold applied to Test-clean and Test-shift "
        "(shift-noadapt), mean over seeds. Rates and F1 in \\%; F1 all-anom. is $2p/(1+p)$, the F1 "
        "of calling every image anomalous; median shift of the normal scores in units of their "
        "clean interquartile range; KS $D$ between clean and shifted normal scores."
    )
    grid = _Grid(caption=caption, label="tab:threshold_transfer", header=header, n_text=2)
    if transfer.empty:
        return grid
    for cat, sub in transfer.groupby("category", sort=True):
        block = []
        for model, g in sub.groupby("model", sort=True):
            n_deg = int((g["degenerate"] != "").sum())
            kinds = ",".join(sorted(set(g["degenerate"]) - {""}))
            cells = [
                _Cell(g[c].mean())
                for c in (
                    "fpr_clean",
                    "fpr_shift",
                    "tpr_clean",
                    "tpr_shift",
                    "f1_shift",
                    "f1_all_anomalous",
                )
            ]
            cells += [_Cell(g["median_shift_iqr"].mean(), scale=1, digits=2, signed=True)]
            cells += [_Cell(g["ks_statistic"].mean(), scale=1, digits=2)]
            block.append(
                [
                    cat,
                    model,
                    *cells,
                    _TextCell(f"{n_deg}/{len(g)}" + (f" ({kinds})" if kinds else "")),
                ]
            )
        grid.blocks.append(block)
    return grid


@dataclass
class _TextCell:
    text: str

    def latex(self) -> str:
        return latex_escape(self.text)

    def markdown(self) -> str:
        return _md_escape(self.text)

    def html(self) -> str:
        return html.escape(self.text)
