"""Anomaly models behind one interface: fit on normal images, score images and maps.

``create_model(name, ...)`` builds any registered adapter (``shiftbench list models``);
``load_model(path)`` reads one written by :meth:`AnomalyModel.save`.
"""

from shiftbench.models.base import AnomalyModel, NotFittedError
from shiftbench.models.registry import create_model, list_models, register_model
from shiftbench.models.serialization import load_model

__all__ = [
    "AnomalyModel",
    "NotFittedError",
    "create_model",
    "list_models",
    "load_model",
    "register_model",
]
