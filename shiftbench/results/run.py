"""Reading a finished run directory: :func:`load_run` -> :class:`Run`.

The only reader of the format of :mod:`shiftbench.results.schema`. Every problem with a
file is one :class:`~shiftbench.errors.ShiftbenchError` line naming the file and the fix.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from shiftbench.errors import ShiftbenchError
from shiftbench.results import schema

_RERUN = "re-run `shiftbench run`"


@dataclass
class Run:
    """A finished run directory, loaded. ``metrics``, ``splits`` and ``shift_params`` are
    None when the run has no such file (``shift_params``: no protocol shifted images).
    ``splits`` holds the dataset's own images; a run with a real target domain keeps the
    target's rows (whose sample ids may repeat the source's) in ``target_splits``."""

    path: Path
    manifest: dict
    scores: pd.DataFrame
    metrics: pd.DataFrame | None = None
    splits: pd.DataFrame | None = None
    shift_params: pd.DataFrame | None = None
    target_splits: pd.DataFrame | None = None
    format_version: int = schema.FORMAT_VERSION
    _maps: dict = field(default_factory=dict, repr=False)
    #: model -> the run directory holding its maps, for a report that combines runs
    #: (:func:`shiftbench.analysis.report.build.combine_runs`); models not listed use ``path``
    map_roots: dict = field(default_factory=dict, repr=False)

    def maps_file(self, category: str, model: str, seed: int, name: str) -> Path:
        root = self.map_roots.get(model, self.path)
        return root / schema.maps_path(category, model, int(seed), name)

    def map_names(self, category: str, model: str, seed: int) -> list[str]:
        """The names (:func:`schema.map_name`) of the maps saved for one fit, sorted."""
        folder = self.maps_file(category, model, seed, "x").parent
        return sorted(p.stem for p in folder.glob("*.npz")) if folder.is_dir() else []

    def maps(self, category: str, model: str, seed: int, name: str) -> tuple[list[str], np.ndarray]:
        """The anomaly maps of one (category, model, seed, name): sample ids and float32
        maps ``[N, H, W]``; a missing or damaged file is a ShiftbenchError."""
        path = self.maps_file(category, model, seed, name)
        if not path.is_file():
            raise ShiftbenchError(
                f"{path}: missing; re-run `shiftbench run` with --save-maps to keep anomaly maps"
            )
        try:
            with np.load(path, allow_pickle=False) as z:
                ids, maps = [str(i) for i in z["sample_id"]], z["maps"].astype(np.float32)
        except Exception as exc:  # zipfile, KeyError, ValueError ... for a damaged file
            raise ShiftbenchError(
                f"{path}: unreadable ({exc.__class__.__name__}); delete it and {_RERUN} with --save-maps"
            ) from None
        if maps.ndim != 3 or len(ids) != len(maps):
            raise ShiftbenchError(
                f"{path}: {len(ids)} sample ids but maps of shape {maps.shape}; "
                f"delete it and {_RERUN} with --save-maps"
            )
        return ids, maps


def _read_manifest(path: Path) -> dict:
    file = path / schema.MANIFEST
    if not file.is_file():
        raise ShiftbenchError(f"{file}: missing; is {path} a finished `shiftbench run` directory?")
    try:
        manifest = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" ({exc.msg}, line {exc.lineno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise ShiftbenchError(f"{file}: invalid JSON{where}; restore it or {_RERUN}") from None
    if not isinstance(manifest, dict):
        raise ShiftbenchError(f"{file}: not a JSON object; restore it or {_RERUN}")
    return manifest


def _read_table(file: Path, columns: tuple[str, ...], *, required: bool) -> pd.DataFrame | None:
    if not file.is_file():
        if required:
            raise ShiftbenchError(
                f"{file}: missing; is {file.parent} a finished `shiftbench run` directory?"
            )
        return None
    try:
        table = pd.read_csv(file) if file.suffix == ".csv" else pd.read_parquet(file)
    except Exception as exc:  # pyarrow and pandas raise several types for a damaged file
        raise ShiftbenchError(
            f"{file}: unreadable ({exc.__class__.__name__}); damaged? {_RERUN}"
        ) from None
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ShiftbenchError(
            f"{file}: missing columns {', '.join(missing)}; written by an incompatible "
            f"version? {_RERUN}"
        )
    return table


def load_run(run_dir: str | Path) -> Run:
    """Read a finished run directory (any format version up to
    :data:`schema.FORMAT_VERSION`); a missing or damaged file is a ShiftbenchError."""
    path = Path(run_dir)
    if not path.is_dir():
        raise ShiftbenchError(
            f"{path}: run directory not found; pass the folder `shiftbench run` wrote"
        )
    manifest = _read_manifest(path)
    version = schema.format_version(manifest, path / schema.MANIFEST)
    v1 = version == 1
    status = manifest.get("status", schema.STATUS_COMPLETE)
    scores_file = path / schema.SCORES
    if status != schema.STATUS_COMPLETE and not scores_file.is_file():
        raise ShiftbenchError(
            f"{path / schema.MANIFEST}: the run is not finished (status {status!r}); "
            "finish it with `shiftbench run ... --resume` first"
        )
    scores = _read_table(
        scores_file, schema.SCORE_COLUMNS_V1 if v1 else schema.SCORE_COLUMNS, required=True
    )
    if scores.empty:
        raise ShiftbenchError(f"{scores_file}: no rows; the run scored nothing, {_RERUN}")
    metric_cols = tuple(c for c in schema.METRIC_COLUMNS if not (v1 and c == "severity"))
    metrics = _read_table(path / schema.METRICS, metric_cols, required=not v1)
    splits = _read_table(
        path / schema.SPLITS, schema.SPLIT_COLUMNS if not v1 else (), required=False
    )
    shift_params = _read_table(
        path / schema.SHIFT_PARAMS, schema.SHIFT_PARAM_COLUMNS, required=False
    )
    target_splits = None
    if splits is not None and schema.DOMAIN_COLUMN in splits.columns:
        source = splits[schema.DOMAIN_COLUMN] == schema.SOURCE_DOMAIN
        target_splits = splits[~source].reset_index(drop=True)
        splits = splits[source].drop(columns=schema.DOMAIN_COLUMN).reset_index(drop=True)
    return Run(
        path=path,
        manifest=manifest,
        scores=scores,
        metrics=metrics,
        splits=splits,
        shift_params=shift_params,
        target_splits=target_splits,
        format_version=version,
    )
