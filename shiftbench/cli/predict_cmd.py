"""``shiftbench predict``: images through one model saved in a run -> composites + JSON/CSV."""

from __future__ import annotations

from pathlib import Path

import typer

#: ``--device`` of ``predict`` and ``app`` (the spellings of :mod:`shiftbench.models.device`)
DEVICE_HELP = (
    "Where the model runs: auto (a GPU when torch sees one), cpu, cuda, cuda:N or mps. "
    "Scores agree across devices within docs/devices.md's tolerances."
)


def predict(
    run_dir: Path = typer.Argument(..., help="A run folder written with --save-models."),
    images: list[Path] = typer.Argument(
        ..., help="Image files (PNG, JPEG, TIFF, BMP; any size/mode)."
    ),
    category: str = typer.Option(..., "--category", help="Category whose model scores the images."),
    model: str = typer.Option(..., "--model", help="Model name as in the run (e.g. patchcore)."),
    seed: int | None = typer.Option(
        None, "--seed", help="Seed of the fit. [default: smallest saved]"
    ),
    fit: str = typer.Option("clean", "--fit", help="Training domain: clean or shift-sev<L>."),
    mask: list[Path] | None = typer.Option(
        None,
        "--mask",
        help="Ground-truth mask, one per image in the same order (repeat the option).",
    ),
    perturb: str | None = typer.Option(
        None,
        "--perturb",
        help="Shift the images first: a perturbation or suite name, or a suite YAML.",
    ),
    severity: int = typer.Option(3, "--severity", min=0, max=5, help="Level of --perturb (0-5)."),
    shift_seed: int = typer.Option(0, "--shift-seed", min=0, help="Seed of --perturb."),
    out: Path = typer.Option(
        ..., "--out", help="Folder for the composites, predictions.json/.csv."
    ),
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
) -> None:
    """Score images with a model saved in a run (composites + predictions.json/.csv).

    Per image: a composite PNG (image | heat-map on the model's fixed validation colour
    scale | predicted region | ground truth) and a row of predictions.json/.csv (score,
    threshold, decision, pixel IoU/F1, timing).
    """
    import os

    # idle OpenMP threads sleep instead of spinning: one image at a time on a busy machine
    # is otherwise many times slower (only effective before torch is first imported)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import json

    import pandas as pd

    from shiftbench.errors import ShiftbenchError
    from shiftbench.inference import Predictor

    masks = list(mask or [])
    if masks and len(masks) != len(images):
        raise ShiftbenchError(
            f"--mask: {len(masks)} masks for {len(images)} images; give one per image, in order"
        )
    predictor = Predictor.from_run(run_dir, category, model, seed=seed, fit=fit, device=device)
    out.mkdir(parents=True, exist_ok=True)
    records, used = [], set()
    for i, image in enumerate(images):
        records.append(
            _predict_one(
                predictor,
                i,
                image,
                masks[i] if masks else None,
                used,
                out=out,
                model=model,
                perturb=perturb,
                severity=severity,
                shift_seed=shift_seed,
            )
        )
    (out / "predictions.json").write_text(json.dumps(records, indent=2, default=str))
    flat = [_flat_row(r, perturb, severity, shift_seed) for r in records]
    pd.DataFrame(flat).to_csv(out / "predictions.csv", index=False)
    typer.echo(f"wrote {len(records)} composites, predictions.json and predictions.csv to {out}")


def _predict_one(
    predictor,
    i: int,
    image: Path,
    mask: Path | None,
    used: set,
    *,
    out: Path,
    model: str,
    perturb: str | None,
    severity: int,
    shift_seed: int,
) -> dict:
    """Score one image, write its composite and echo a line; its predictions.json record."""
    pred = predictor.predict(
        image,
        mask,
        perturb=perturb,
        severity=severity,
        shift_seed=shift_seed,
        image_id=image.stem,
    )
    stem = image.stem
    name = stem if stem not in used else f"{stem}-{i}"
    used.add(name)
    png = out / f"{name}_{model}.png"
    predictor.composite(pred, png)
    rec = {"image": str(image), "mask": str(mask) if mask is not None else None, **pred.to_dict()}
    rec["composite"] = str(png)
    rec["seed"] = predictor.seed
    rec["fit"] = predictor.fit
    rec["device"] = predictor.device
    for warning in pred.warnings:
        typer.echo(f"warning: {image.name}: {warning}", err=True)
    verdict = "ANOMALOUS" if pred.decision else "normal"
    typer.echo(
        f"{image.name}: score {pred.score:.4g} (threshold {pred.threshold:.4g}) {verdict}"
        + ("" if pred.iou is None else f", pixel IoU {pred.iou:.3f}")
        + f" -> {png}"
    )
    return rec


def _flat_row(r: dict, perturb: str | None, severity: int, shift_seed: int) -> dict:
    """One predictions.csv row from a predictions.json record."""
    row = {k: v for k, v in r.items() if k not in ("perturbation", "timing_ms", "map_range")}
    row["map_lo"], row["map_hi"] = r["map_range"]
    row["perturb"] = perturb
    row["severity"] = severity if perturb else None
    row["shift_seed"] = shift_seed if perturb else None
    row["ms_total"] = r["timing_ms"].get("total")
    row["ms_score"] = r["timing_ms"].get("score")
    return row


def register(app: typer.Typer) -> None:
    """Add ``predict`` to ``app``."""
    app.command("predict")(predict)
