"""``shiftbench report RUN_DIR``: tables, figures and report.html for a finished run."""

from __future__ import annotations

from pathlib import Path

import typer


def report(
    run_dir: Path = typer.Argument(..., help="Run directory written by `shiftbench run`."),
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
) -> None:
    """Write tables/ (LaTeX, Markdown, CSV), figures/ (PDF, PNG) and report.html into RUN_DIR."""
    from shiftbench.analysis.report import build_report

    out = build_report(
        run_dir, format, n_resamples=n_resamples, alpha=alpha, seed=seed, figures=figures
    )
    typer.echo(f"tables:  {len(out.tables)} files in {Path(run_dir) / 'tables'}")
    typer.echo(f"figures: {len(out.figures)} files in {Path(run_dir) / 'figures'}")
    if out.html is not None:
        typer.echo(f"report:  {out.html}")
    for reason in out.skipped:
        typer.echo(f"skipped: {reason}")


def register(app: typer.Typer) -> None:
    """Add ``shiftbench report`` to ``app``."""
    app.command("report")(report)
