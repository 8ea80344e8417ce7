"""``shiftbench report RUN_DIR [RUN_DIR ...]``: tables, figures, report.html and
summary.json for one finished run, or one report for several runs of the same design."""

from __future__ import annotations

from pathlib import Path

import typer


def report(
    run_dirs: list[Path] = typer.Argument(
        ...,
        help="Run directories written by `shiftbench run`; several are combined into one "
        "report when they share dataset, splits and seeds (needs --out).",
    ),
    format: str = typer.Option(
        "latex,markdown,html",
        "--format",
        "-f",
        help="Comma-separated: latex, markdown, html (CSV always).",
    ),
    n_resamples: int = typer.Option(
        2000, "--n-resamples", help="Bootstrap resamples per category and seed."
    ),
    alpha: float = typer.Option(
        0.05, "--alpha", help="Intervals are 1-alpha; tests are marked at alpha."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap resampling."),
    figures: bool = typer.Option(
        True, "--figures/--no-figures", help="Draw figures (PDF, PNG) or tables only."
    ),
    baseline: str | None = typer.Option(
        None,
        "--baseline",
        help="Model that normalises the corruption error (mCE, relative mCE = 100 for it).",
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Folder for the report (default: the run directory; required for several runs).",
    ),
) -> None:
    """Write tables/ (LaTeX, Markdown, CSV), figures/ (PDF, PNG), report.html and
    summary.json into RUN_DIR (or --out)."""
    from shiftbench.analysis.report.build import build_report

    result = build_report(
        run_dirs if len(run_dirs) > 1 else run_dirs[0],
        format,
        n_resamples=n_resamples,
        alpha=alpha,
        seed=seed,
        figures=figures,
        baseline=baseline,
        out=out,
    )
    where = out if out is not None else run_dirs[0]
    typer.echo(f"tables:  {len(result.tables)} files in {Path(where) / 'tables'}")
    typer.echo(f"figures: {len(result.figures)} files in {Path(where) / 'figures'}")
    if result.summary is not None:
        typer.echo(f"summary: {result.summary}")
    if result.html is not None:
        typer.echo(f"report:  {result.html}")
    for reason in result.skipped:
        typer.echo(f"skipped: {reason}")
    for warning in result.warnings:
        typer.echo(f"warning: {warning}")


def register(app: typer.Typer) -> None:
    """Add ``shiftbench report`` to ``app``."""
    app.command("report", short_help="Tables, figures and report.html of runs.")(report)
