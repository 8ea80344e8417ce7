"""Load a model saved in a run (``shiftbench run --save-models``) with its thresholds
and colour scale; the files are named and listed by :mod:`shiftbench.results.models`."""

from __future__ import annotations

from pathlib import Path

from shiftbench.errors import ShiftbenchError
from shiftbench.results import schema
from shiftbench.results.models import _RERUN, _read_meta, find_fitted


def load_fitted(
    run_path: str | Path,
    category: str,
    model: str,
    seed: int | None = None,
    fit: str = "clean",
    *,
    device: str = "cpu",
):
    """``(AnomalyModel, meta)`` of a model saved in the run (``seed=None``: the smallest
    saved seed), moved to ``device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``;
    see :mod:`shiftbench.models.device`: a device that is not there is an error naming
    ``device``). ``meta`` is the side file's dict with ``category`` (the chosen one's
    thresholds and ``map_range``) added under ``"selected"``."""
    from shiftbench.models import load_model
    from shiftbench.models.device import resolve_device

    target = resolve_device(device)  # a misspelt or absent device fails before the load
    row = find_fitted(run_path, category, model, seed, fit)
    side = Path(row["path"]).with_suffix(schema.MODEL_META_SUFFIX)
    meta = _read_meta(side)
    pt = Path(row["path"])
    if not pt.is_file():
        raise ShiftbenchError(f"{pt}: missing (its {side.name} is there); {_RERUN}")
    try:
        fitted = load_model(pt)
    except ShiftbenchError as exc:
        raise ShiftbenchError(f"{exc}; delete it and {_RERUN}") from None
    except (TypeError, KeyError) as exc:  # parameters or state this version does not know
        detail = " ".join(str(exc).split())[:160]
        raise ShiftbenchError(
            f"{pt}: written by another shiftbench version, cannot be restored "
            f"({exc.__class__.__name__}: {detail}); {_RERUN}"
        ) from None
    except Exception as exc:  # a truncated or foreign file fails in many ways inside torch
        raise ShiftbenchError(
            f"{pt}: damaged model file ({exc.__class__.__name__}); delete it and {_RERUN}"
        ) from None
    if target.type != "cpu":  # saved models load on the CPU
        fitted.to(target)
    meta = dict(meta)
    meta["selected"] = {"category": category, **meta["categories"][category]}
    return fitted, meta
