"""``shiftbench data synth`` and ``shiftbench splits``."""

from __future__ import annotations

from pathlib import Path

import typer

from shiftbench.cli.options import with_study_options

data_app = typer.Typer(
    help="Datasets: generate the synthetic dataset.",
    no_args_is_help=True,
    rich_markup_mode=None,  # plain help, as the root app (shiftbench.cli.main)
)


@data_app.command("synth", short_help="Write the synthetic dataset (MVTec layout).")
def synth(
    out: Path = typer.Option(..., "--out", help="Folder to write the dataset to (MVTec layout)."),
    seed: int = typer.Option(0, help="Seed; the same seed gives identical files."),
    size: int = typer.Option(128, help="Image side in pixels."),
    n_train: int = typer.Option(40, help="Normal training images per category."),
    n_test_good: int = typer.Option(16, help="Normal test images per category."),
    n_per_defect: int = typer.Option(5, help="Anomalous test images per defect type."),
) -> None:
    """Write the synthetic dataset (textures from scikit-image photos + a rendered part)."""
    from shiftbench.data.synthetic import make_synthetic
    from shiftbench.errors import ShiftbenchError

    if size < 32:
        raise ShiftbenchError(f"size {size}: too small; use at least 32 px", param="size")
    make_synthetic(
        out,
        seed=seed,
        size=size,
        n_train=n_train,
        n_test_good=n_test_good,
        n_per_defect=n_per_defect,
    )
    typer.echo(f"synthetic dataset written to {out}")


#: The study options ``splits`` takes (same flags, parsing and defaults as ``run``).
SPLIT_OPTIONS = (
    "dataset",
    "root",
    "categories",
    "views",
    "seeds",
    "train_subsample",
    "val_normal_frac",
    "val_anomalous_frac",
)


@with_study_options(SPLIT_OPTIONS)
def splits(
    study: dict,
    out: Path | None = typer.Option(
        None, "--out", help="Write the per-image split table (with a seed column) to this CSV."
    ),
) -> None:
    """Make the seeded Train/Val/Test-clean split (as `shiftbench run` does); print counts
    per split and defect type, per seed when several are given."""
    import pandas as pd

    from shiftbench.data import load_dataset, make_splits, split_counts
    from shiftbench.protocols.config import load_config

    cfg = load_config(None, study)
    samples = load_dataset(cfg.dataset, cfg.root, cfg.categories, **cfg.dataset_options)
    tables = []
    for seed in cfg.seeds:
        table = make_splits(samples, seed, **cfg.split_options)
        counts = split_counts(table)
        wide = counts.pivot_table(
            index=["category", "defect_type"],
            columns="split",
            values="n",
            aggfunc="sum",
            fill_value=0,
        ).astype(int)
        if len(cfg.seeds) > 1:
            typer.echo(f"seed {seed}")
        typer.echo(wide.to_string())
        tables.append(table.assign(seed=seed))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        pd.concat(tables, ignore_index=True).to_csv(out, index=False)
        typer.echo(f"split table written to {out}")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
    app.command("splits", short_help="Print the seeded Train/Val/Test-clean split.")(splits)
