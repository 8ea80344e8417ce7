"""``shiftbench run``: a whole study from one command."""

from __future__ import annotations

from pathlib import Path

import typer

from shiftbench.cli.options import cli_fields, command_line, with_study_options


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


#: The exit status of a run stopped with Ctrl-C (128 + SIGINT, as shells report it).
INTERRUPTED = 130


def resume_command(command: list[str], path: Path) -> list[str]:
    """``command`` (``["shiftbench", "run", ...]``) made to continue the run in ``path``:
    ``--resume`` added, and ``--out path`` unless an ``--out`` is given (without it,
    ``--resume`` looks in ``results/<name>``, not in a ``-2`` folder)."""
    args = [a for a in command if a != "--resume"]
    if not any(a == "--out" or a.startswith("--out=") for a in args):
        args += ["--out", str(path)]
    return [*args, "--resume"]


def interrupted_message(runner, command: list[str]) -> str:
    """What a run stopped with Ctrl-C says: the fits finished and kept, where, and the
    exact command that continues it."""
    import shlex

    from shiftbench.results import RunDir

    if runner is None or runner.path is None:
        return "interrupted before the run folder was made; nothing was written"
    done = len(RunDir(runner.path, None).done_units())
    total = len(runner.units)
    return (
        f"interrupted: {done} of {total} fits finished and kept in {runner.path}\n"
        f"continue with: {shlex.join(resume_command(command, runner.path))}"
    )


def _show_finished_twin(runner) -> bool:
    """When ``results/`` holds a finished run of the same study: print its summary and
    return True (nothing is computed), or, when this run asks for models it lacks, point
    ``runner`` at it to fit only those units again (and return False)."""
    import pandas as pd

    from shiftbench.analysis.report.summary import summary_text
    from shiftbench.protocols.reuse import finished_twin, missing_models
    from shiftbench.results import schema

    twin = finished_twin(runner)
    if twin is None:
        return False
    path, manifest = twin
    missing = missing_models(path, runner) if runner.config.save_models else []
    if missing:
        typer.echo(
            f"{path} holds this study, finished, without the models of {len(missing)} of "
            f"{len(runner.units)} fits: adding them there (--fresh runs a new study instead)"
        )
        runner.out, runner.resume = path, True
        return False
    typer.echo(
        f"{path} holds this study, finished {manifest.get('finished_at', '')}: its summary "
        "below, nothing computed again (--fresh runs it again)\n"
    )
    metrics = pd.read_parquet(path / schema.METRICS)
    typer.echo(summary_text(metrics, len(runner.config.seeds)))
    typer.echo(f"\nresults: {path}")
    return True


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
    fresh: bool = typer.Option(
        False,
        "--fresh",
        help="Compute the study even if results/ holds a finished run of it (without --out, "
        "an identical finished study is shown, not computed again).",
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
    defaults and command-line options override the file. Ctrl-C keeps every finished fit
    and prints the command that continues the run."""
    from shiftbench.protocols.config import load_config
    from shiftbench.protocols.runner import StudyRunner

    study = dict(study, model_options=_model_options(study.get("model_options")))
    cfg = load_config(config, study)
    check_names(cfg)
    runner = None
    try:
        runner = StudyRunner(
            cfg, out, resume=resume, command=command_line(), progress=progress, echo=typer.echo
        )
        if dry_run:
            typer.echo(runner.describe())
            return
        if out is None and not resume and not fresh and _show_finished_twin(runner):
            return
        result = runner.run()
    except KeyboardInterrupt:
        typer.echo("\n" + interrupted_message(runner, command_line()), err=True)
        raise typer.Exit(INTERRUPTED) from None
    from shiftbench.analysis.report.summary import summary_text

    typer.echo(summary_text(result.metrics, len(cfg.seeds)))
    typer.echo(f"\nresults: {result.path}")


def register(app: typer.Typer) -> None:
    app.command("run", short_help="Run a study: splits, twins, fits, metrics.")(run)
