"""Write a run directory from given tables, through the one writer the runner uses.

Tests of the report (and of anything else that reads runs) build their runs with
:func:`write_run`: the files, columns and manifest keys are then those of
:mod:`shiftbench.results.schema`, written by :class:`~shiftbench.results.RunDir`, never a
hand-made copy of the format.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from shiftbench.results import RunDir, schema

__all__ = ["write_run"]


def write_run(
    path: str | Path,
    units: Mapping[str, tuple[pd.DataFrame, pd.DataFrame]],
    *,
    splits: pd.DataFrame | None = None,
    manifest: Mapping | None = None,
    shift_params: Iterable[tuple[int, int, str, pd.DataFrame]] = (),
    maps: Iterable[tuple[str, str, int, str, np.ndarray, np.ndarray]] = (),
    protocols: Iterable[str] = schema.PROTOCOLS,
) -> Path:
    """Write a finished run to ``path`` and return it.

    Args:
        units: unit key -> (scores, metrics), with :data:`schema.SCORE_COLUMNS` and
            :data:`schema.METRIC_COLUMNS`; assembled as the runner assembles them.
        splits: the ``splits.csv`` table (:data:`schema.SPLIT_COLUMNS`), if any.
        manifest: manifest entries (keys of :data:`schema.MANIFEST_KEYS` only) over the
            defaults (a complete run).
        shift_params: ``(seed, severity, category, rows)`` per shift-params file (rows:
            :func:`shiftbench.results.shift_params_frame`).
        maps: ``(category, model, seed, name, sample_ids, maps)`` per maps file.
        protocols: the protocol order of ``metrics.parquet``.
    """
    extra = dict(manifest or {})
    unknown = sorted(set(extra) - set(schema.MANIFEST_KEYS))
    if unknown:
        raise ValueError(f"write_run: {unknown} are not manifest keys the runner writes")
    protocols = list(protocols)
    run = RunDir.create(path)
    try:
        base = {
            "started_at": "2025-01-01T00:00:00+00:00",
            "config": {},
            "config_hash": "0" * 16,
            "command": "shiftbench run",
            "seeds": [],
            "protocols": [{"name": p} for p in protocols],
            "versions": {},
            "git_commit": None,
            "split_hashes": {},
            "suite": None,
            "units": sorted(units),
            "status": schema.STATUS_RUNNING,
        }
        optional = {k: v for k, v in extra.items() if k in ("adaptation", "saved_models")}
        run.write_manifest({**base, **{k: v for k, v in extra.items() if k in base}, **optional})
        if splits is not None:
            run.write_splits(splits)
        for seed, severity, category, rows in shift_params:
            run.write_shift_params(seed, severity, category, rows)
        for category, model, seed, name, ids, arrays in maps:
            run.write_maps(category, model, seed, name, ids, arrays)
        for key, (scores, metrics) in units.items():
            run.write_unit(key, scores, metrics)
        run.assemble(protocols)
        finished = {
            "status": schema.STATUS_COMPLETE,
            "finished_at": "2025-01-01T00:01:00+00:00",
            "timing": {"fit_seconds": 0.0, "score_seconds": 0.0, "shift_seconds": 0.0},
            "image_cache": {"enabled": False, "path": "", "hits": 0, "misses": 0},
        }
        run.write_manifest({**run.read_manifest(), **finished, **extra})
    finally:
        run.unlock()
    return run.path
