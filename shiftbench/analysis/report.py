"""Build ``tables/``, ``figures/`` and ``report.html`` from a run directory.

Reads a run directory through :func:`shiftbench.results.load_run` (the format is
:mod:`shiftbench.results.schema`) and writes:

* ``tables/<metric>.{csv,tex,md}`` for image AUROC, AUPRC and F1 (protocol comparison with
  bootstrap intervals and Holm-corrected tests), ``tables/efficiency.*``,
  ``tables/threshold_transfer.*`` and ``tables/rank_tests.csv`` (Friedman/Nemenyi);
* ``figures/*.{pdf,png}``: degradation bars, ROC/PR curves per category, score
  distributions with thresholds, severity curves (if the run swept severities),
  critical-difference diagrams (>= 3 models), qualitative grids (if maps were saved; the
  shifted twins are replayed from the run's ``shift_params.parquet``, never drawn anew);
* ``report.html``: one self-contained page (PNG figures embedded as base64).
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from shiftbench.errors import ShiftbenchError
from shiftbench.results import Run, load_run, schema

__all__ = [
    "FIGURE_KINDS",
    "FORMATS",
    "Report",
    "Run",
    "build_report",
    "load_run",
]

FORMATS = ("latex", "markdown", "html")
FIGURE_KINDS = ("degradation", "roc_pr", "scores", "severity", "cd", "qualitative")
TABLE_METRICS = ("image_auroc", "image_auprc", "image_f1")


@dataclass
class Report:
    """What :func:`build_report` wrote."""

    tables: list[Path] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    html: Path | None = None
    skipped: list[str] = field(default_factory=list)  # figures not drawn, and why


def _parse_formats(formats: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    items = [
        f.strip().lower()
        for f in (formats.split(",") if isinstance(formats, str) else formats)
        if f.strip()
    ]
    aliases = {"tex": "latex", "md": "markdown"}
    items = [aliases.get(f, f) for f in items]
    bad = [f for f in items if f not in FORMATS]
    if bad:
        raise ShiftbenchError(
            f"--format: unknown format {bad[0]!r}; choose from {', '.join(FORMATS)} (comma-separated)"
        )
    return tuple(dict.fromkeys(items))


def _table_level(run: Run) -> float | None:
    """The severity the tables show: the run's level, or for a sweep the one configured
    (when it is a single level) or else the middle level of the sweep."""
    s = run.scores
    if "severity" not in s.columns or s["severity"].dropna().nunique() == 0:
        return None
    levels = sorted(s["severity"].dropna().unique())
    wanted = run.manifest.get("config", {}).get("severity")  # a list for a sweep
    if isinstance(wanted, (int, float)) and wanted in levels:
        return wanted
    return levels[len(levels) // 2]


def _table_scores(run: Run, level: float | None) -> pd.DataFrame:
    """Scores at one severity ``level`` (:func:`_table_level`): a severity sweep puts
    several levels in one file."""
    s = run.scores
    if "severity" in s.columns and s["severity"].dropna().nunique() > 1:
        s = s[(s["severity"] == level) | s["severity"].isna()]
        s = s.drop_duplicates(["category", "model", "seed", "protocol", "split", "sample_id"])
    return s


def _write_grid(grid, stem: Path, formats: tuple[str, ...], out: Report) -> None:
    if "latex" in formats:
        stem.with_suffix(".tex").write_text(grid.latex())
        out.tables.append(stem.with_suffix(".tex"))
    if "markdown" in formats:
        stem.with_suffix(".md").write_text(grid.markdown())
        out.tables.append(stem.with_suffix(".md"))


# -- building the report -----------------------------------------------------------------


@dataclass
class _Build:
    """What the steps of :func:`build_report` share."""

    run: Run
    out: Report
    fmts: tuple[str, ...]
    kinds: set[str]
    alpha: float
    level: float | None
    scores: pd.DataFrame  # at the tables' severity
    tdir: Path
    fdir: Path
    sweep_note: str = ""
    html_parts: list[tuple[str, str]] = field(default_factory=list)  # (section title, html)
    fig_entries: list[tuple[str, Path]] = field(default_factory=list)  # (caption, png)

    @property
    def test(self) -> pd.DataFrame:
        return self.scores[self.scores["split"] == "test"]

    def table(self, table: pd.DataFrame, name: str) -> None:
        table.to_csv(self.tdir / f"{name}.csv", index=False)
        self.out.tables.append(self.tdir / f"{name}.csv")

    def grid(self, grid, name: str, title: str, note: bool = True) -> None:
        if note:
            grid.caption += self.sweep_note
        _write_grid(grid, self.tdir / name, self.fmts, self.out)
        self.html_parts.append((title, grid.html()))

    def figure(self, paths: list[Path] | None, caption: str) -> None:
        if paths:
            self.out.figures.extend(paths)
            self.fig_entries.append((caption, next(p for p in paths if p.suffix == ".png")))


def _check_options(formats, n_resamples: int, alpha: float, figures) -> tuple[tuple, set]:
    kinds = set(FIGURE_KINDS) if figures is True else set() if figures is False else set(figures)
    if kinds - set(FIGURE_KINDS):
        raise ShiftbenchError(
            f"figures: unknown kind(s) {sorted(kinds - set(FIGURE_KINDS))}; choose from {FIGURE_KINDS}"
        )
    fmts = _parse_formats(formats)
    if n_resamples < 100:
        raise ShiftbenchError(
            f"--n-resamples {n_resamples}: too few for a 95% interval; use at least 1000"
        )
    if not 0 < alpha < 0.5:
        raise ShiftbenchError(f"--alpha {alpha}: must be in (0, 0.5), e.g. 0.05")
    return fmts, kinds


def _sweep_note(run: Run, level: float | None) -> str:
    if "severity" in run.scores.columns and run.scores["severity"].dropna().nunique() > 1:
        levels = ", ".join(f"{v:g}" for v in sorted(run.scores["severity"].dropna().unique()))
        return (
            f" Shifted columns at severity {level:g} of the sweep ({levels}); "
            "the severity curves show every level."
        )
    return ""


def _image_tables(b: _Build, n_resamples: int, seed: int) -> dict:
    """Protocol comparison tables; returns them by metric."""
    from shiftbench.analysis import render, tables

    comparisons = {}
    for metric in TABLE_METRICS:
        comp = tables.protocol_comparison(
            b.scores, metric, n_resamples=n_resamples, alpha=b.alpha, seed=seed
        )
        comparisons[metric] = comp
        b.table(comp.table, metric)
        b.grid(render.render_comparison(comp), metric, comp.label)
    return comparisons


def _other_tables(b: _Build) -> None:
    """Pixel metrics (whole-map values from metrics.parquet, at the tables' severity),
    threshold transfer and efficiency."""
    from shiftbench.analysis import render, tables, transfer

    metrics = b.run.metrics
    if metrics is not None:
        for metric in tables.PIXEL_METRICS:
            if metric not in set(metrics["metric"]):
                continue
            table = tables.pixel_table(metrics, metric, b.level)
            b.table(table, metric)
            b.grid(render.render_pixel(table, metric), metric, tables.PIXEL_METRICS[metric])
    tt = transfer.transfer_table(b.scores)
    b.table(tt, "threshold_transfer")
    if len(tt):
        b.grid(render.render_transfer(tt), "threshold_transfer", "Threshold transfer")
    if metrics is None:
        b.out.skipped.append("efficiency table: no metrics.parquet")
        return
    eff = tables.efficiency_table(metrics)
    if len(eff):
        b.table(eff, "efficiency")
        b.grid(render.render_efficiency(eff), "efficiency", "Efficiency", note=False)


def _curve_figures(b: _Build, auroc) -> None:
    """Degradation bars, ROC/PR curves, score distributions, severity curves."""
    from shiftbench.analysis import figures as fig

    kinds, test, fdir = b.kinds, b.test, b.fdir
    if "degradation" in kinds:
        b.figure(
            fig.degradation_bars(auroc, fdir / "degradation_image_auroc"),
            f"Image AUROC per protocol with {round(100 * (1 - b.alpha))}% bootstrap intervals.",
        )
    for cat in sorted(test["category"].unique()):
        s0 = min(test[test["category"] == cat]["seed"])
        if "roc_pr" in kinds:
            b.figure(
                fig.roc_pr_curves(test, cat, s0, fdir / f"roc_pr_{cat}"),
                f"ROC and PR curves, {cat}, seed {s0}.",
            )
        for model in (
            sorted(test[test["category"] == cat]["model"].unique()) if "scores" in kinds else ()
        ):
            b.figure(
                fig.score_distributions(b.scores, cat, model, s0, fdir / f"scores_{cat}_{model}"),
                f"Test-score distributions and thresholds, {cat} / {model}, seed {s0}.",
            )
    if "severity" in kinds:
        sev = fig.severity_curves(b.run.scores, fdir / "severity_image_auroc")
        if sev:
            b.figure(sev, "Image AUROC against shift severity (mean over categories and seeds).")
        else:
            b.out.skipped.append("severity curves: the run did not sweep severities")


def _rank_tests(b: _Build, auroc) -> None:
    """Friedman / Nemenyi over (category, seed) blocks, per protocol, and CD diagrams."""
    from shiftbench.analysis import figures as fig
    from shiftbench.analysis import stats

    if b.test["model"].nunique() < 3:
        b.out.skipped.append("critical-difference diagram: needs at least 3 models")
        return
    rank_rows = []
    ps = auroc.per_seed
    for protocol in schema.PROTOCOLS:
        wide = ps[ps["protocol"] == protocol].pivot_table(
            index=["category", "seed"], columns="model", values="value"
        )
        if wide.shape[1] < 3 or len(wide.dropna()) < 2:
            continue
        try:
            fn = stats.friedman_nemenyi(wide, alpha=b.alpha)
        except ValueError as exc:
            b.out.skipped.append(f"critical-difference diagram ({protocol}): {exc}")
            continue
        for m, r in fn.average_ranks.items():
            rank_rows.append(
                {
                    "protocol": protocol,
                    "model": m,
                    "average_rank": r,
                    "friedman_chi2": fn.statistic,
                    "friedman_p": fn.p_value,
                    "critical_difference": fn.critical_difference,
                    "n_blocks": fn.n_blocks,
                }
            )
        if "cd" in b.kinds:
            b.figure(
                fig.critical_difference_diagram(
                    fn, b.fdir / f"cd_{protocol}", title=f"Image AUROC, {protocol}"
                ),
                f"Critical-difference diagram (Nemenyi, alpha={b.alpha}), {protocol}; blocks = categories x seeds.",
            )
    if rank_rows:
        b.table(pd.DataFrame(rank_rows), "rank_tests")


def _qualitative_figures(b: _Build) -> None:
    """One qualitative grid per (category, model), from the first seed with saved maps."""
    from shiftbench.analysis import figures as fig
    from shiftbench.analysis.qualitative import qualitative_rows

    if not (b.run.path / schema.MAPS).is_dir():
        b.out.skipped.append("qualitative grids: the run saved no maps/")
        return
    test = b.test
    for cat in sorted(test["category"].unique()):
        for model in sorted(test["model"].unique()):
            for s in sorted(test["seed"].unique()):
                if not b.run.map_names(cat, model, s):
                    continue
                try:
                    got = qualitative_rows(b.run, b.scores, b.level, cat, model, s)
                except ShiftbenchError as exc:
                    b.out.skipped.append(f"qualitative grid {cat} / {model}: {exc}")
                    got = None
                if got:
                    rows, protocol = got
                    b.figure(
                        fig.qualitative_grid(
                            rows,
                            b.fdir / f"qualitative_{cat}_{model}",
                            title=f"{cat} / {model}, seed {s}, {protocol}",
                        ),
                        f"Qualitative results, {cat} / {model}, seed {s} ({protocol}).",
                    )
                break  # one seed per (category, model) is enough for a picture


def build_report(
    run_dir: str | Path,
    formats: str | tuple[str, ...] | list[str] = FORMATS,
    *,
    n_resamples: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
    figures: bool | Collection[str] = True,
) -> Report:
    """Write tables, figures and (with ``"html"`` in ``formats``) ``report.html`` into
    ``run_dir``. CSV tables and PDF/PNG figures are always written.

    Args:
        run_dir: a finished run directory (read by :func:`shiftbench.results.load_run`).
        formats: any of ``latex``, ``markdown``, ``html`` (list or comma-separated string).
        n_resamples: bootstrap resamples per (category, seed).
        alpha: CIs are ``1 - alpha``; tests are marked at ``alpha``.
        seed: base seed of the bootstrap, so a report is reproducible.
        figures: False for tables only, or a subset of :data:`FIGURE_KINDS` to draw.
    """
    fmts, kinds = _check_options(formats, n_resamples, alpha, figures)
    run = load_run(run_dir)
    tdir, fdir = run.path / schema.TABLES, run.path / schema.FIGURES
    tdir.mkdir(exist_ok=True)
    fdir.mkdir(exist_ok=True)
    level = _table_level(run)
    b = _Build(
        run=run,
        out=Report(),
        fmts=fmts,
        kinds=kinds,
        alpha=alpha,
        level=level,
        scores=_table_scores(run, level),
        tdir=tdir,
        fdir=fdir,
        sweep_note=_sweep_note(run, level),
    )
    comparisons = _image_tables(b, n_resamples, seed)
    _other_tables(b)
    if not kinds:
        b.out.skipped.append("figures: not requested")
    _curve_figures(b, comparisons["image_auroc"])
    _rank_tests(b, comparisons["image_auroc"])
    if "qualitative" in kinds:
        _qualitative_figures(b)
    if "html" in fmts:
        b.out.html = _write_html(run, b.html_parts, b.fig_entries, b.out.skipped)
    return b.out


_CSS = """
body{font-family:Georgia,serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#111}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:1em 0;font-size:0.85em}
caption{caption-side:top;text-align:left;padding-bottom:.4em;font-size:.9em;color:#333}
th,td{padding:.25em .6em;text-align:center}th{border-top:2px solid #000;border-bottom:1px solid #000}
tbody tr:last-child td{border-bottom:2px solid #000}tr.block td{border-top:1px solid #bbb}
td:first-child,td:nth-child(2){text-align:left}
figure{margin:1.5em 0}figure img{max-width:100%}figcaption{font-size:.85em;color:#333}
pre{background:#f6f6f6;padding:.6em;overflow-x:auto;font-size:.8em}
"""


def _write_html(
    run: Run, tables_html: list[tuple[str, str]], figs: list[tuple[str, Path]], skipped: list[str]
) -> Path:
    name = html.escape(run.path.name)
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>shiftbench report: {name}</title>",
        f"<style>{_CSS}</style></head><body><h1>shiftbench report: {name}</h1>",
    ]
    m = run.manifest
    info = {k: m[k] for k in schema.REPORT_MANIFEST_KEYS if k in m}
    if info:
        parts.append(
            f"<h2>Run</h2><pre>{html.escape(json.dumps(info, indent=2, default=str))}</pre>"
        )
    parts.append("<h2>Tables</h2>")
    for title, body in tables_html:
        parts.append(f"<h3>{html.escape(title)}</h3>{body}")
    parts.append("<h2>Figures</h2>")
    for caption, png in figs:
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        parts.append(
            f"<figure><img alt='{html.escape(png.stem)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    if skipped:
        parts.append(
            "<h2>Not drawn</h2><ul>"
            + "".join(f"<li>{html.escape(s)}</li>" for s in skipped)
            + "</ul>"
        )
    parts.append("</body></html>")
    path = run.path / schema.REPORT_HTML
    path.write_text("".join(parts), encoding="utf-8")
    return path
