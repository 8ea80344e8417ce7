"""Build ``tables/``, ``figures/``, ``report.html`` and ``summary.json`` from one run
directory, or from several runs that share dataset, splits and seeds (:func:`combine_runs`).

Reads runs through :func:`shiftbench.results.load_run` (the format is
:mod:`shiftbench.results.schema`) and writes:

* ``tables/<metric>.{csv,tex,md}`` for image AUROC, AUPRC and F1 (protocol comparison with
  bootstrap intervals and Holm-corrected tests), pixel metrics, ``efficiency``,
  ``threshold_transfer``, ``severity_<metric>`` (every level of a sweep as a column),
  ``defects_<category>`` (recall per defect type), ``robustness`` (AUSC, relative
  robustness, worst level, mCE: :mod:`shiftbench.analysis.stats.robustness`),
  ``corruption_error`` (with a baseline), ``robustness_ranks``, ``rank_tests.csv`` and,
  with a real target domain, ``syn2real`` (:mod:`shiftbench.analysis.stats.syn2real`);
* ``figures/*.{pdf,png}``: degradation bars, ROC/PR curves per category, score
  distributions, severity curves with bootstrap bands (and per category), robustness heat
  maps, critical-difference diagrams (only with enough blocks), qualitative grids;
* with adaptation strategies (``--adapt``): ``recovery`` (gap closed per strategy and k)
  and the budget figures (:mod:`.adaptation`);
* ``report.html``: contents, the configuration as a table, every table and figure with
  its caption and links to the files; ``summary.json``: the headline numbers.

Every LaTeX table compiles in a standard article with ``booktabs`` and ``threeparttable``.

This module is the orchestration; the steps live by concept in :mod:`.runs`
(combining runs), :mod:`.tables` (which tables), :mod:`.robustness` (the
robustness tables, heat maps and ranking), :mod:`.figures` (which figures) and
:mod:`.html` (``report.html`` and ``summary.json``); :mod:`.context` holds
what they share.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

from shiftbench.analysis.report.adaptation import adaptation_report, standard_view
from shiftbench.analysis.report.context import (
    Build,
    Report,
    over_seeds,
    table_context,
    table_level,
    table_scores,
)
from shiftbench.analysis.report.figures import curve_figures, qualitative_figures, rank_tests
from shiftbench.analysis.report.html import headline, write_html, write_summary
from shiftbench.analysis.report.robustness import robustness_tables
from shiftbench.analysis.report.runs import combine_runs
from shiftbench.analysis.report.syn2real import syn2real_tables
from shiftbench.analysis.report.tables import (
    TABLE_METRICS,
    defect_tables,
    image_tables,
    other_tables,
    sweep_tables,
)
from shiftbench.errors import ShiftbenchError
from shiftbench.results import Run, load_run, schema

__all__ = [
    "FIGURE_KINDS",
    "FORMATS",
    "TABLE_METRICS",
    "Report",
    "Run",
    "build_report",
    "combine_runs",
    "load_run",
]

FORMATS = ("latex", "markdown", "html")
FIGURE_KINDS = (
    "degradation",
    "roc_pr",
    "scores",
    "severity",
    "heatmap",
    "cd",
    "qualitative",
    "budget",
    "syn2real",
)


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


def build_report(
    run_dir: str | Path | Sequence[str | Path],
    formats: str | tuple[str, ...] | list[str] = FORMATS,
    *,
    n_resamples: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
    figures: bool | Collection[str] = True,
    baseline: str | None = None,
    out: str | Path | None = None,
) -> Report:
    """Write tables, figures, ``summary.json`` and (with ``"html"`` in ``formats``)
    ``report.html``. CSV tables and PDF/PNG figures are always written.

    Args:
        run_dir: a finished run directory, or several (combined by :func:`combine_runs`).
        formats: any of ``latex``, ``markdown``, ``html`` (list or comma-separated string).
        n_resamples: bootstrap resamples per (category, seed).
        alpha: CIs are ``1 - alpha``; tests are marked at ``alpha``.
        seed: base seed of the bootstrap, so a report is reproducible.
        figures: False for tables only, or a subset of :data:`FIGURE_KINDS` to draw.
        baseline: the model that normalises the corruption errors (mCE).
        out: where to write; default the run directory (required for several runs).
    """
    fmts, kinds = _check_options(formats, n_resamples, alpha, figures)
    full, out_dir = _open_runs(run_dir, out)
    run = standard_view(full)  # protocol tables: shift-adapt = the refit (see .adaptation)
    out_dir.mkdir(parents=True, exist_ok=True)
    tdir, fdir = out_dir / schema.TABLES, out_dir / schema.FIGURES
    tdir.mkdir(exist_ok=True)
    fdir.mkdir(exist_ok=True)
    level = table_level(run)
    b = Build(
        run=run,
        out=Report(),
        fmts=fmts,
        kinds=kinds,
        alpha=alpha,
        level=level,
        scores=table_scores(run, level),
        tdir=tdir,
        fdir=fdir,
        context=table_context(run, level),
        over=over_seeds(run),
        baseline=baseline,
    )
    comparisons = image_tables(b, n_resamples, seed)
    headline(b, comparisons)
    other_tables(b)
    sweep_tables(b)
    defect_tables(b)
    robustness_tables(b)
    adaptation_report(b, full, n_resamples, seed)
    syn2real_tables(b, n_resamples, seed)
    if not kinds:
        b.out.skipped.append("figures: not requested")
    curve_figures(b, comparisons["image_auroc"], n_resamples, seed)
    rank_tests(b, comparisons["image_auroc"])
    if "qualitative" in kinds:
        qualitative_figures(b)
    b.out.summary = write_summary(b, out_dir, n_resamples)
    if "html" in fmts:
        b.out.html = write_html(run, out_dir, b.entries, b.out.skipped, b.out.summary)
    return b.out


def _open_runs(
    run_dir: str | Path | Sequence[str | Path], out: str | Path | None
) -> tuple[Run, Path]:
    """The run to report on (several are combined) and where the report goes."""
    dirs = [run_dir] if isinstance(run_dir, (str, Path)) else list(run_dir)
    if not dirs:
        raise ShiftbenchError("report: name at least one run directory")
    runs = [load_run(d) for d in dirs]
    if len(runs) == 1:
        run = runs[0]
        out_dir = Path(out) if out is not None else run.path
    else:
        if out is None:
            raise ShiftbenchError(
                f"report: {len(runs)} runs are combined into one report; say where with --out DIR"
            )
        out_dir = Path(out)
        run = combine_runs(runs, out_dir)
    return run, out_dir
