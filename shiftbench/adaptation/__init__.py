"""Adaptation strategies: turn a model fitted on the clean domain plus some target data
into an adapted model (:class:`~shiftbench.adaptation.base.Adaptation`).

Built-ins: ``refit``, ``refit-k`` (:mod:`.refit`), ``bank-extend`` (:mod:`.bank`),
``bn-adapt``, ``test-bn`` (:mod:`.batchnorm`), ``feature-align`` (:mod:`.align`),
``recalibrate`` (:mod:`.threshold`). Plugins: the ``shiftbench.adaptations`` entry-point
group; ``shiftbench.testing.check_adaptation`` is their contract test.
"""

from shiftbench.adaptation.base import (
    DEFAULT_ADAPT,
    DEFAULT_K,
    TARGET_DATA,
    THRESHOLD_RULES,
    Adaptation,
    AdaptTarget,
)
from shiftbench.adaptation.registry import (
    ADAPTATIONS,
    adaptation_class,
    adaptation_names,
    get_adaptation,
    list_adaptations,
    register_adaptation,
)

__all__ = [
    "ADAPTATIONS",
    "DEFAULT_ADAPT",
    "DEFAULT_K",
    "TARGET_DATA",
    "THRESHOLD_RULES",
    "AdaptTarget",
    "Adaptation",
    "adaptation_class",
    "adaptation_names",
    "get_adaptation",
    "list_adaptations",
    "register_adaptation",
]
