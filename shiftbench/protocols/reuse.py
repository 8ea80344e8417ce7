"""A study already finished under ``results/``: found instead of computed again.

``shiftbench run`` without ``--out`` names its folder after the study
(``results/<name>``, then ``<name>-2``, ...). Running the same study again used to compute
it again into the next free name; :func:`finished_twin` finds the finished run of the same
study so the command can show it instead (``--fresh`` runs it again). "The same study"
means what the manifest records about what was computed, all equal: the config hash (the
options that change results), seeds, protocols, split hashes (the dataset's files), suite
hashes, the units, the library versions and the git commit. Where or how it ran (device,
executor, workers, the command line, times) does not count.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shiftbench.errors import ShiftbenchError
from shiftbench.protocols import manifest as mf
from shiftbench.results import schema

#: the manifest keys that must be equal for a finished run to stand for this study
SAME_STUDY_KEYS = (
    "config_hash",
    "seeds",
    "protocols",
    "split_hashes",
    "suite",
    "units",
    "versions",
    "git_commit",
)


def _normalised(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _candidates(name: str, root: Path) -> list[Path]:
    """``root/name``, ``root/name-2``, ... as far as they exist (the runner's names)."""
    out, n, path = [], 2, root / name
    while path.exists():
        out.append(path)
        path, n = root / f"{name}-{n}", n + 1
    return out


def finished_twin(runner, root: Path = Path("results")) -> tuple[Path, dict] | None:
    """``(folder, manifest)`` of a finished run of ``runner``'s study under ``root`` (the
    newest of them), or ``None``. A run without the maps this one asks for
    (``--save-maps``) does not count; one without its models does (see
    :func:`missing_models`)."""
    cfg = runner.config
    expected = _normalised(
        mf.study_fields(
            cfg, runner.protocols, [], runner.splits, runner.suites, runner.units, runner.device
        )
    )
    found = None
    for path in _candidates(cfg.default_name(), Path(root)):
        try:
            manifest = json.loads((path / schema.MANIFEST).read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(manifest, dict) or manifest.get("status") != schema.STATUS_COMPLETE:
            continue
        if not (path / schema.METRICS).is_file():
            continue
        if cfg.save_maps and not (manifest.get("config") or {}).get("save_maps"):
            continue
        if all(_normalised(manifest.get(k)) == expected[k] for k in SAME_STUDY_KEYS):
            found = (path, manifest)
    return found


def has_model(path: Path, key: str) -> bool:
    """Whether run ``path`` keeps the fitted model of unit ``key`` (``--save-models``)."""
    folder = Path(path) / schema.MODELS
    return all(
        (folder / f"{key}{s}").is_file() for s in (schema.MODEL_SUFFIX, schema.MODEL_META_SUFFIX)
    )


def missing_models(path: Path, runner) -> list[str]:
    """The units of ``runner``'s study whose fitted model is not saved in run ``path``."""
    return [u.key for u in runner.units if not has_model(path, u.key)]


def unit_difference(
    old_scores: pd.DataFrame,
    old_metrics: pd.DataFrame,
    scores: pd.DataFrame,
    metrics: pd.DataFrame,
    rtol: float = 1e-5,
) -> str:
    """``""`` when a unit fitted again gives the stored unit's results: the same score rows
    and the same metrics (efficiency figures, which are timings, aside), numbers equal up to
    ``rtol`` (torch's CPU reductions follow the thread count); else what differs."""
    timing = set(schema.EFFICIENCY_METRICS)
    pairs = [
        ("scores", old_scores, scores),
        (
            "metrics",
            old_metrics[~old_metrics["metric"].isin(timing)],
            metrics[~metrics["metric"].isin(timing)],
        ),
    ]
    for name, a, b in pairs:
        a, b = a.reset_index(drop=True), b.reset_index(drop=True)
        if list(a.columns) != list(b.columns) or len(a) != len(b):
            return f"{name}: {len(b)} rows, stored {len(a)}; columns {list(b.columns)}"
        for col in a.columns:
            x, y = a[col].to_numpy(), b[col].to_numpy()
            if x.dtype.kind == "f" and y.dtype.kind == "f":
                if not np.allclose(x, y, rtol=rtol, atol=0.0, equal_nan=True):
                    worst = float(np.nanmax(np.abs(x - y)))
                    return f"{name}.{col}: largest difference {worst:.3g}"
            elif not a[col].equals(b[col]):
                return f"{name}.{col}: values differ"
    return ""


def models_only(run) -> Callable[[str, pd.DataFrame, pd.DataFrame], None]:
    """The :attr:`RunDir.recheck` of a run whose finished units are fitted again only to
    save their models: the new tables must match the stored ones (:func:`unit_difference`),
    which stay; a mismatch removes the unit's just-saved model and stops the run."""

    def recheck(key: str, scores: pd.DataFrame, metrics: pd.DataFrame) -> None:
        folder = run.path / schema.UNITS / key
        differs = unit_difference(
            pd.read_parquet(folder / schema.UNIT_SCORES),
            pd.read_parquet(folder / schema.UNIT_METRICS),
            scores,
            metrics,
        )
        if differs:
            for suffix in (schema.MODEL_SUFFIX, schema.MODEL_META_SUFFIX):
                (run.path / schema.MODELS / f"{key}{suffix}").unlink(missing_ok=True)
            raise ShiftbenchError(
                f"{folder}: fitted again to save its model, it scored differently ({differs}); "
                "the stored results stay and the model is not kept. Run with --fresh for a "
                "new run that saves its models"
            )

    return recheck
