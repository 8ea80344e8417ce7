"""Reading saved models (:meth:`AnomalyModel.save` writes them)."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from shiftbench.errors import ShiftbenchError
from shiftbench.models.base import FORMAT, FORMAT_VERSION, AnomalyModel
from shiftbench.models.registry import model_class


def load_model(path: str | Path) -> AnomalyModel:
    """The fitted model saved at ``path``; it scores exactly as the one that was saved.

    No network is needed: the file holds every weight, so pretrained weights are not
    fetched again.
    """
    path = Path(path)
    if not path.is_file():
        raise ShiftbenchError(f"{path}: model file not found")
    try:
        # weights_only: a model file is data, never code to execute
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        raise ShiftbenchError(
            f"{path}: not a shiftbench model file ({exc.__class__.__name__})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ShiftbenchError(f"{path}: not a shiftbench model file (written by AnomalyModel.save)")
    if payload.get("version", 0) > FORMAT_VERSION:
        raise ShiftbenchError(
            f"{path}: written by a newer shiftbench (format {payload['version']}); upgrade"
        )
    cls = model_class(payload["model"])
    return cls._restore(payload["params"], payload["state"], payload["n_fit_images"])
