"""``shiftbench shift``: write the shifted twin of a dataset in its own layout."""

from __future__ import annotations

from pathlib import Path

import typer


def shift(
    dataset: str = typer.Option(
        "mvtec", "--dataset", help="Dataset layout: mvtec, visa, btad, mvtec2, folder, synthetic."
    ),
    root: Path | None = typer.Option(
        None, "--root", help="Dataset top folder (optional for synthetic)."
    ),
    categories: str | None = typer.Option(
        None, "--categories", help="Comma-separated categories (default: all)."
    ),
    suite: str = typer.Option("mvtec-shift", "--suite", help="Shipped suite name or a YAML file."),
    severity: int | None = typer.Option(
        None, "--severity", help="Level 0-5 for every member (default: the suite's, 3)."
    ),
    seed: int = typer.Option(
        0, "--seed", help="Seed of the shift; with the image id it fixes every image's params."
    ),
    out: Path = typer.Option(
        ..., "--out", help="New folder for the shifted dataset (same layout as --root)."
    ),
    workers: int | None = typer.Option(
        None, "--workers", min=1, help="Worker processes (default: all CPUs)."
    ),
) -> None:
    """Shift every image (and mask) of a dataset with a suite; write them under --out in the
    dataset's own layout, plus shift_params.parquet/.csv (one row of params per image)."""
    from tqdm import tqdm

    from shiftbench.data import load_dataset
    from shiftbench.transforms import load_suite
    from shiftbench.transforms.twins import default_workers, shift_dataset

    the_suite = load_suite(suite, severity=severity)
    cats = [c.strip() for c in categories.split(",") if c.strip()] if categories else None
    samples = load_dataset(dataset, root, cats)
    if dataset == "synthetic" and root is None:
        from shiftbench.data.synthetic import default_synthetic_root

        root = default_synthetic_root()
    n_workers = workers or default_workers()
    with tqdm(total=len(samples), unit="img", desc=f"shift {the_suite.name}") as bar:
        table = shift_dataset(
            samples,
            the_suite,
            seed=seed,
            root=root,
            out=out,
            workers=n_workers,
            progress=bar.update,
        )
    n_masks = int(table["mask_path"].notna().sum())
    typer.echo(
        f"wrote {len(table)} images and {n_masks} masks to {out} "
        f"(suite {the_suite.name}, severity {the_suite.severity}, seed {seed}, hash {the_suite.hash[:12]})"
    )


def register(app: typer.Typer) -> None:
    """Add ``shift`` to ``app``."""
    app.command("shift")(shift)
