"""Fit one model of a finished run again and save it with :func:`save_fitted`: for runs
made without ``--save-models`` (and for tests). Same config, split and seed as the study;
the clean fit only."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shiftbench.errors import ShiftbenchError


def refit_clean(run_dir: str | Path, category: str, model: str, seed: int = 0) -> Path:
    """Fit ``model`` on the run's clean training split of ``category`` (seed ``seed``),
    calibrate thresholds and the colour scale on its clean validation split, save it under
    ``models/``; returns the ``.pt`` path."""
    from shiftbench.data.cache import read_batch
    from shiftbench.metrics import f1_optimal_threshold, pixel_f1_optimal_threshold
    from shiftbench.models import create_model
    from shiftbench.results import load_run
    from shiftbench.results.models import map_range, save_fitted

    run = load_run(run_dir)
    cfg = run.manifest.get("config") or {}
    if run.splits is None:
        raise ShiftbenchError(f"{run.path}: no splits.csv; cannot refit")
    rows = run.splits[(run.splits["category"] == category) & (run.splits["seed"] == seed)]
    if rows.empty:
        raise ShiftbenchError(f"{run.path}: no images of {category!r} with seed {seed}")
    size = int(cfg.get("image_size") or 128)
    crop = cfg.get("crop")
    kwargs = dict(weights=cfg.get("weights", "imagenet"), image_size=size, seed=seed)
    kwargs.update((cfg.get("model_options") or {}).get(model, {}))
    fitted = create_model(model, **kwargs)
    train = rows[rows["split"] == "train"]
    val = rows[rows["split"] == "val"]
    fitted.fit(read_batch(train["image_path"], size, kind="image", crop=crop))
    scores, maps = fitted.score(read_batch(val["image_path"], size, kind="image", crop=crop))
    masks = read_batch(val["mask_path"], size, kind="mask", crop=crop)
    threshold, _ = f1_optimal_threshold(val["label"].to_numpy(), scores)
    pixel = pixel_f1_optimal_threshold(maps, masks)[0] if (masks > 0).any() else np.nan
    key = f"{category}__{model}__seed{seed}__clean"
    meta = {
        "unit": key,
        "model": model,
        "seed": int(seed),
        "fit": "clean",
        "categories": {
            category: {
                "image_threshold": float(threshold),
                "pixel_threshold": float(pixel),
                "map_range": map_range(maps),
            }
        },
        "input": {"image_size": size, "crop": crop},
        "suite": None,
    }
    return save_fitted(run.path, key, fitted, meta)


def tiny_run(
    out: str | Path,
    dataset_root: str | Path | None = None,
    *,
    image_size: int = 64,
    models: tuple[str, ...] = ("patchcore", "ae"),
    category: str = "brick",
    weights: str = "random",
) -> Path:
    """A tiny finished study with saved models (tests, demos, benchmarks): one category,
    random weights, ``shiftbench run --save-models``; models the runner did not save are
    fitted again here (:func:`refit_clean`). Reused when ``out`` already holds one."""
    from shiftbench.cli.main import app
    from shiftbench.results.models import list_fitted

    out = Path(out)
    if (out / "manifest.json").is_file() and len(list_fitted(out)) >= len(models):
        return out
    args = [
        "run",
        "--dataset",
        "synthetic",
        "--categories",
        category,
        "--models",
        ",".join(models),
        "--weights",
        weights,
        "--image-size",
        str(image_size),
        "--protocol",
        "clean",
        "--save-models",
        "--no-progress",
        "--out",
        str(out),
    ]
    if dataset_root is not None:
        args += ["--root", str(dataset_root)]
    if "ae" in models:  # a demo, not a benchmark: a few epochs are enough
        args += ["--model-option", "ae.epochs=3"]
    code = app(args=args, standalone_mode=False)
    if code not in (None, 0):
        raise ShiftbenchError(f"tiny_run: `shiftbench {' '.join(args)}` exited with {code}")
    saved = set(list_fitted(out)["model"])
    for model in models:
        if model not in saved:
            refit_clean(out, category, model, 0)
    return out
