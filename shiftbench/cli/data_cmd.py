"""``shiftbench data synth`` and ``shiftbench splits``."""

from __future__ import annotations

from pathlib import Path

import typer

data_app = typer.Typer(help="Datasets: generate the synthetic dataset.", no_args_is_help=True)


@data_app.command("synth")
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
        raise ShiftbenchError(f"--size {size}: too small; use at least 32 px")
    make_synthetic(
        out,
        seed=seed,
        size=size,
        n_train=n_train,
        n_test_good=n_test_good,
        n_per_defect=n_per_defect,
    )
    typer.echo(f"synthetic dataset written to {out}")


def splits(
    dataset: str = typer.Option(
        "synthetic", help="mvtec, visa, btad, mvtec2, folder or synthetic."
    ),
    root: Path | None = typer.Option(None, help="Dataset root (not needed for synthetic)."),
    category: list[str] | None = typer.Option(
        None, "--category", "-c", help="Category (repeat or comma-separate); default all."
    ),
    seed: int = typer.Option(0, help="Split seed."),
    val_normal_frac: float = typer.Option(
        0.2, help="Fraction of train/good that goes to Val-clean."
    ),
    val_anomalous_frac: float = typer.Option(
        0.3, help="Fraction of anomalous test images that goes to Val-clean."
    ),
    train_subsample: float | None = typer.Option(
        None, help="Keep a seeded fraction of Train-clean."
    ),
    out: Path | None = typer.Option(None, help="Write the per-image split table to this CSV."),
) -> None:
    """Make the seeded Train/Val/Test-clean split; print counts per split and defect type."""
    from shiftbench.data import load_dataset, make_splits, split_counts

    cats = [c for item in (category or []) for c in item.split(",") if c] or None
    samples = load_dataset(dataset, root, cats)
    table = make_splits(
        samples,
        seed,
        val_normal_frac=val_normal_frac,
        val_anomalous_frac=val_anomalous_frac,
        train_subsample=train_subsample,
    )
    counts = split_counts(table)
    wide = counts.pivot_table(
        index=["category", "defect_type"], columns="split", values="n", aggfunc="sum", fill_value=0
    ).astype(int)
    typer.echo(wide.to_string())
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        table.assign(seed=seed).to_csv(out, index=False)
        typer.echo(f"split table written to {out}")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
    app.command("splits")(splits)
