"""``shiftbench run``: a whole study from one command."""

from __future__ import annotations

from pathlib import Path

import typer

from shiftbench.cli.options import cli_fields, with_study_options


def _model_options(items: list[str] | None) -> dict | None:
    """``NAME.KEY=VALUE`` (repeatable) -> {NAME: {KEY: VALUE}}; values parsed as YAML."""
    if not items:
        return None
    import yaml

    from shiftbench.errors import ShiftbenchError

    out: dict[str, dict] = {}
    for item in items:
        name_key, sep, value = item.partition("=")
        name, dot, key = name_key.partition(".")
        if not sep or not dot or not name or not key:
            raise ShiftbenchError(
                f"model_options {item!r}: expected MODEL.KEY=VALUE, e.g. ae.epochs=5",
                param="model_options",
            )
        out.setdefault(name, {})[key] = yaml.safe_load(value)
    return out


def check_names(cfg) -> None:
    """Look up the models and the suite now (cheap lookups), so an unknown name is an
    error naming its option (``--models: unknown model 'padim'; did you mean
    'anomalib-padim'?``, ``--suite: unknown suite ...``) before any data is read."""
    from shiftbench.errors import about
    from shiftbench.models.registry import MODELS

    with about("models"):
        for name in cfg.models:
            MODELS.entry(name)
    shifting = any("shift" in (p.fit_on, p.evaluate_on) for p in cfg.protocols)
    if shifting and cfg.suite != "none":  # suite none: a real target (--target-root) alone
        from shiftbench.transforms import load_suite

        with about("suite"):
            load_suite(cfg.suite)


@with_study_options(cli_fields())
def run(
    study: dict,
    config: Path | None = typer.Option(
        None, "--config", help="YAML study file (option: value); command-line options override it."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Run folder.", show_default="results/<name from config>"
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue an interrupted run: only missing fits run."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the grid of fits and stop."),
    progress: bool = typer.Option(
        True,
        "--progress/--no-progress",
        help="Show progress (bars on a terminal, plain lines otherwise).",
    ),
) -> None:
    """Run a study: splits, shifted twins, fits, thresholds on validation, metrics.
    Every option defaults to the demo study (shown below); a --config file overrides the
    defaults and command-line options override the file."""
    import sys

    from shiftbench.protocols.config import load_config
    from shiftbench.protocols.runner import StudyRunner

    study = dict(study, model_options=_model_options(study.get("model_options")))
    cfg = load_config(config, study)
    check_names(cfg)
    runner = StudyRunner(
        cfg,
        out,
        resume=resume,
        command=["shiftbench", *sys.argv[1:]],
        progress=progress,
        echo=typer.echo,
    )
    if dry_run:
        typer.echo(runner.describe())
        return
    result = runner.run()
    from shiftbench.analysis.report.summary import summary_text

    typer.echo(summary_text(result.metrics, len(cfg.seeds)))
    typer.echo(f"\nresults: {result.path}")


def register(app: typer.Typer) -> None:
    app.command("run")(run)
