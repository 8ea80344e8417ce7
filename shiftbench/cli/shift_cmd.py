"""``shiftbench shift``: write the shifted twin of a dataset in its own layout."""

from __future__ import annotations

from pathlib import Path

import typer

from shiftbench.cli.options import with_study_options

#: The study options ``shift`` takes (same flags, parsing and defaults as ``run``).
SHIFT_OPTIONS = ("dataset", "root", "categories", "views", "seeds", "suite", "severity", "workers")


@with_study_options(
    SHIFT_OPTIONS,
    helps={"workers": "Worker processes.", "severity": "Shift level 0-5, or a comma list."},
    shows={"workers": "all CPUs", "severity": "the suite's own; 3 for shipped suites"},
)
def shift(
    study: dict,
    out: Path = typer.Option(
        ...,
        "--out",
        help="New folder for the shifted dataset (same layout as --root); with several "
        "seeds or levels, one subfolder seed<S>-sev<L> each.",
    ),
) -> None:
    """Shift every image (and mask) of a dataset with a suite; write them under --out in the
    dataset's own layout, plus shift_params.parquet/.csv (one row of params per image)."""
    from shiftbench._progress import bar
    from shiftbench.data import load_dataset
    from shiftbench.errors import about
    from shiftbench.protocols.config import load_config
    from shiftbench.transforms import load_suite
    from shiftbench.transforms.twins import default_workers, shift_dataset

    given = {k: v for k, v in study.items() if k not in ("severity", "workers")}
    cfg = load_config(None, {**given, "workers": study["workers"]})
    levels: list[int | None] = [None]  # the suite's own level
    if study["severity"] is not None:
        levels = load_config(None, {"severity": study["severity"]}).severities
    with about("suite"):
        suites = [load_suite(cfg.suite, severity=level) for level in levels]
    samples = load_dataset(cfg.dataset, cfg.root, cfg.categories, **cfg.dataset_options)
    root = cfg.root
    if cfg.dataset == "synthetic" and root is None:
        from shiftbench.data.synthetic import default_synthetic_root

        root = default_synthetic_root()
    n_workers = study["workers"] and cfg.workers or default_workers()
    several = len(suites) * len(cfg.seeds) > 1
    for the_suite in suites:
        for seed in cfg.seeds:
            target = out / f"seed{seed}-sev{the_suite.severity}" if several else out
            with bar(len(samples), f"shift {the_suite.name}", "img") as progress:
                table = shift_dataset(
                    samples,
                    the_suite,
                    seed=seed,
                    root=root,
                    out=target,
                    workers=n_workers,
                    progress=progress.update,
                )
            n_masks = int(table["mask_path"].notna().sum())
            typer.echo(
                f"wrote {len(table)} images and {n_masks} masks to {target} "
                f"(suite {the_suite.name}, severity {the_suite.severity}, seed {seed}, "
                f"hash {the_suite.hash[:12]})"
            )


def register(app: typer.Typer) -> None:
    """Add ``shift`` to ``app``."""
    app.command("shift")(shift)
