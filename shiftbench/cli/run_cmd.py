"""``shiftbench run``: a whole study from one command."""

from __future__ import annotations

from pathlib import Path

import typer


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
                f"--model-option {item!r}: expected MODEL.KEY=VALUE, e.g. ae.epochs=5"
            )
        out.setdefault(name, {})[key] = yaml.safe_load(value)
    return out


def run(
    protocol: str | None = typer.Option(
        None,
        help="clean, shift-noadapt, shift-adapt, all, or a comma list. [default: shift-noadapt]",
    ),
    config: Path | None = typer.Option(
        None, "--config", help="YAML study file; command-line options override it."
    ),
    dataset: str | None = typer.Option(
        None, help="mvtec, visa, btad, mvtec2, folder or synthetic. [default: synthetic]"
    ),
    root: str | None = typer.Option(None, help="Dataset root (not needed for synthetic)."),
    categories: str | None = typer.Option(None, help="Comma-separated categories. [default: all]"),
    models: str | None = typer.Option(
        None, help="Comma-separated model names (shiftbench list models). [default: patchcore]"
    ),
    backbone: str | None = typer.Option(
        None, help="Backbone for models that take one. [default: efficientnet_lite0]"
    ),
    weights: str | None = typer.Option(
        None, help="imagenet, random, or a local weights file. [default: imagenet]"
    ),
    seeds: str | None = typer.Option(None, help="Comma-separated seeds. [default: 0]"),
    suite: str | None = typer.Option(
        None, help="Shift suite name or YAML file. [default: mvtec-shift]"
    ),
    severity: str | None = typer.Option(
        None, help="Shift severity 0-5, or a comma list (1,3,5) to sweep levels. [default: 3]"
    ),
    image_size: int | None = typer.Option(None, help="Square image side in px. [default: 128]"),
    global_model: bool | None = typer.Option(
        None, "--global-model/--per-category", help="Pool all categories into one model."
    ),
    train_subsample: float | None = typer.Option(
        None, help="Keep a seeded fraction of Train-clean."
    ),
    model_option: list[str] | None = typer.Option(
        None, help="MODEL.KEY=VALUE model option (repeatable)."
    ),
    workers: int | None = typer.Option(
        None,
        help="Parallel shifting: processes for large batches, threads for small ones. [default: 2]",
    ),
    image_cache: bool | None = typer.Option(
        None,
        "--image-cache/--no-image-cache",
        help="Reuse decoded images and shifted twins from $SHIFTBENCH_CACHE/arrays. [default: on]",
    ),
    out: Path | None = typer.Option(None, help="Run folder. [default: results/<name from config>]"),
    resume: bool = typer.Option(False, help="Continue an interrupted run: only missing fits run."),
    save_maps: bool | None = typer.Option(
        None, "--save-maps", help="Store test anomaly maps (float16, compressed)."
    ),
    dry_run: bool = typer.Option(False, help="Print the grid of fits and stop."),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """Run a study: splits, shifted twins, fits, thresholds on validation, metrics."""
    import sys

    from shiftbench.protocols.config import load_config
    from shiftbench.protocols.runner import StudyRunner, summary_table

    cfg = load_config(
        config,
        dict(
            protocol=protocol,
            dataset=dataset,
            root=root,
            categories=categories,
            models=models,
            backbone=backbone,
            weights=weights,
            seeds=seeds,
            suite=suite,
            severity=severity,
            image_size=image_size,
            global_model=global_model,
            train_subsample=train_subsample,
            model_options=_model_options(model_option),
            workers=workers,
            image_cache=image_cache,
            save_maps=save_maps,
        ),
    )
    runner = StudyRunner(
        cfg,
        out,
        resume=resume,
        command=["shiftbench", *sys.argv[1:]],
        progress=progress,
        echo=typer.echo,
    )
    runner.prepare()
    if dry_run:
        typer.echo(runner.describe())
        return
    path = runner.run()
    import pandas as pd

    with pd.option_context("display.width", 160, "display.float_format", "{:.3f}".format):
        for metric in ("image_auroc", "pixel_aupro"):
            if metric in set(runner.metrics["metric"]):
                typer.echo(f"\n{metric} (mean over seeds)")
                typer.echo(summary_table(runner.metrics, metric).to_string())
    typer.echo(f"\nresults: {path}")


def register(app: typer.Typer) -> None:
    app.command("run")(run)
