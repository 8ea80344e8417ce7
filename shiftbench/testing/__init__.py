"""Contract tests third-party code runs against itself.

``check_perturbation(cls)`` for perturbation plugins, ``check_model(...)`` for model
adapters, ``check_adaptation(strategy)`` for adaptation strategies. Each raises ``AssertionError`` naming the broken rule.
"""

from __future__ import annotations

from typing import Any

from shiftbench.testing.perturbations import check_perturbation

__all__ = ["check_adaptation", "check_model", "check_perturbation"]


def __getattr__(name: str) -> Any:
    # models pull in torch; import them only when asked for
    if name == "check_model":
        from shiftbench.testing.models import check_model

        return check_model
    if name == "check_adaptation":
        from shiftbench.testing.adaptations import check_adaptation

        return check_adaptation
    raise AttributeError(f"module 'shiftbench.testing' has no attribute {name!r}")
