"""Contract tests third-party code runs against itself.

``check_perturbation(cls)`` for perturbation plugins, ``check_model(...)`` for model
adapters. Each raises ``AssertionError`` naming the broken rule.
"""

from __future__ import annotations

from typing import Any

from shiftbench.testing.perturbations import check_perturbation

__all__ = ["check_model", "check_perturbation"]


def __getattr__(name: str) -> Any:
    # models pull in torch; import them only when asked for
    if name == "check_model":
        from shiftbench.testing.models import check_model

        return check_model
    raise AttributeError(f"module 'shiftbench.testing' has no attribute {name!r}")
