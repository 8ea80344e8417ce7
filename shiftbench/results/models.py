"""Fitted models kept in a run directory: ``models/<unit_key>.pt`` + ``models/<unit_key>.json``.

The runner writes them with :func:`save_fitted` when a study runs with ``--save-models``;
:func:`list_fitted` and :func:`find_fitted` read their side files; loading the model itself is
:func:`shiftbench.inference.saved.load_fitted` (this bottom layer never imports the models).

``<unit_key>.pt`` is :meth:`AnomalyModel.save`'s file; ``<unit_key>.json`` holds the
runner's meta (:data:`META_KEYS`: unit, model, seed, fit, categories with their
thresholds and fixed colour scale ``map_range``, input, suite) plus ``format`` /
``format_version`` and ``file_bytes`` (the ``.pt`` file's size).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from shiftbench.errors import ShiftbenchError
from shiftbench.results import schema

#: the version of the ``.json`` side file; bump when a reader of today could misread one
MODELS_FORMAT = "shiftbench-fitted-model"
MODELS_FORMAT_VERSION = 1
META_KEYS = ("unit", "model", "seed", "fit", "categories", "input", "suite")
CATEGORY_KEYS = ("image_threshold", "pixel_threshold", "map_range")
LIST_COLUMNS = (
    "category",
    "model",
    "seed",
    "fit",
    "unit",
    "image_threshold",
    "pixel_threshold",
    "map_lo",
    "map_hi",
    "image_size",
    "crop",
    "file_bytes",
    "path",
)
_RERUN = "re-run `shiftbench run ... --save-models` to keep fitted models"


def _json_safe(value: Any) -> Any:
    """NaN/inf -> None (JSON null), recursively; numpy scalars -> Python numbers."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _atomic_bytes_target(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def save_fitted(run_path: str | Path, unit_key: str, model, meta: dict) -> Path:
    """Write ``models/<unit_key>.pt`` (via ``model.save``) and ``models/<unit_key>.json``
    (``meta`` + file size + format version), each atomically; returns the ``.pt`` path."""
    if not unit_key or "/" in unit_key or "\\" in unit_key or unit_key.startswith("."):
        raise ShiftbenchError(f"save_fitted: unit key {unit_key!r} is not a plain file name")
    folder = Path(run_path) / schema.MODELS
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{unit_key}{schema.MODEL_SUFFIX}"
    tmp = _atomic_bytes_target(target)
    try:
        model.save(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    side = dict(_json_safe(meta))
    side.setdefault("unit", unit_key)
    side["format"] = MODELS_FORMAT
    side["format_version"] = MODELS_FORMAT_VERSION
    side["file"] = target.name
    side["file_bytes"] = target.stat().st_size
    json_path = folder / f"{unit_key}{schema.MODEL_META_SUFFIX}"
    json_tmp = _atomic_bytes_target(json_path)
    try:
        json_tmp.write_text(json.dumps(side, indent=2, allow_nan=False))
        os.replace(json_tmp, json_path)
    finally:
        json_tmp.unlink(missing_ok=True)
    return target


def _read_meta(path: Path) -> dict:
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ShiftbenchError(
            f"{path}: unreadable ({exc.__class__.__name__}); damaged? delete it and {_RERUN}"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != MODELS_FORMAT:
        raise ShiftbenchError(f"{path}: not a shiftbench fitted-model file; {_RERUN}")
    version = meta.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ShiftbenchError(f"{path}: format_version {version!r} is invalid; {_RERUN}")
    if version > MODELS_FORMAT_VERSION:
        raise ShiftbenchError(
            f"{path}: fitted-model format {version} is newer than this shiftbench reads "
            f"(up to {MODELS_FORMAT_VERSION}); upgrade shiftbench"
        )
    missing = [k for k in META_KEYS if k not in meta]
    if missing or not isinstance(meta.get("categories"), dict):
        raise ShiftbenchError(
            f"{path}: missing keys {', '.join(missing) or 'categories'}; {_RERUN}"
        )
    return meta


def list_fitted(run_path: str | Path) -> pd.DataFrame:
    """One row per (category, fitted model) saved in the run (:data:`LIST_COLUMNS`);
    an empty table when the run kept none."""
    folder = Path(run_path) / schema.MODELS
    rows = []
    if folder.is_dir():
        for side in sorted(folder.glob(f"*{schema.MODEL_META_SUFFIX}")):
            meta = _read_meta(side)
            inp = meta.get("input") or {}
            for cat, info in sorted(meta["categories"].items()):
                lo, hi = (info.get("map_range") or [None, None])[:2]
                pixel = info.get("pixel_threshold")
                rows.append(
                    {
                        "category": cat,
                        "model": meta["model"],
                        "seed": int(meta["seed"]),
                        "fit": meta["fit"],
                        "unit": meta["unit"],
                        "image_threshold": float(info["image_threshold"]),
                        "pixel_threshold": float("nan") if pixel is None else float(pixel),
                        "map_lo": float("nan") if lo is None else float(lo),
                        "map_hi": float("nan") if hi is None else float(hi),
                        "image_size": inp.get("image_size"),
                        "crop": inp.get("crop"),
                        "file_bytes": meta.get("file_bytes"),
                        "path": str(
                            side.with_name(meta.get("file") or side.stem + schema.MODEL_SUFFIX)
                        ),
                    }
                )
    return pd.DataFrame(rows, columns=list(LIST_COLUMNS))


def _choices(values) -> str:
    return ", ".join(sorted({str(v) for v in values})) or "(none)"


def find_fitted(
    run_path: str | Path, category: str, model: str, seed: int | None = None, fit: str = "clean"
) -> pd.Series:
    """The :func:`list_fitted` row of one fitted model; one clear error line otherwise."""
    run_path = Path(run_path)
    table = list_fitted(run_path)
    if table.empty:
        raise ShiftbenchError(f"{run_path}: no saved models in this run; {_RERUN}")
    sel = table[table["category"] == category]
    if sel.empty:
        raise ShiftbenchError(
            f"{run_path}: no saved model for category {category!r}; saved categories: "
            f"{_choices(table['category'])}"
        )
    by_model = sel[sel["model"] == model]
    if by_model.empty:
        raise ShiftbenchError(
            f"{run_path}: no saved model {model!r} for {category!r}; saved models: "
            f"{_choices(sel['model'])}"
        )
    by_fit = by_model[by_model["fit"] == fit]
    if by_fit.empty:
        raise ShiftbenchError(
            f"{run_path}: no {model!r} fitted on {fit!r} for {category!r}; saved fits: "
            f"{_choices(by_model['fit'])}"
        )
    if seed is None:
        seed = int(by_fit["seed"].min())
    by_seed = by_fit[by_fit["seed"] == int(seed)]
    if by_seed.empty:
        raise ShiftbenchError(
            f"{run_path}: no {model!r} ({fit}) with seed {seed} for {category!r}; saved seeds: "
            f"{_choices(by_fit['seed'])}"
        )
    return by_seed.iloc[0]


#: the percentiles of the fit domain's validation maps that fix a model's colour scale
MAP_RANGE_PERCENTILES = (0.1, 99.9)


def map_range(maps) -> list[float]:
    """``[lo, hi]``: the 0.1 and 99.9 percentiles of anomaly maps (the fixed colour scale
    of a model's heat-maps; pass the fit domain's validation maps). ``hi > lo`` always."""
    import numpy as np

    values = np.asarray(maps, np.float32).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        return [0.0, 1.0]
    lo, hi = (float(v) for v in np.percentile(values, MAP_RANGE_PERCENTILES))
    if not hi > lo:
        hi = lo + max(abs(lo) * 1e-6, 1e-6)
    return [lo, hi]


def saved_model_sizes(run_path: str | Path) -> dict[str, float]:
    """``{unit key: MB on disk}`` of the models saved in a run (the manifest records it)."""
    folder = Path(run_path) / schema.MODELS
    if not folder.is_dir():
        return {}
    return {p.stem: round(p.stat().st_size / 2**20, 3) for p in sorted(folder.glob("*.pt"))}
