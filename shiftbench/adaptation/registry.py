"""Adaptation strategies by name: ``@register_adaptation`` on a class, ``get_adaptation``.

Built-ins register themselves when their module is imported (on the first lookup);
third-party packages add strategies through the entry-point group
``shiftbench.adaptations`` (``name = "pkg.module:Class"``), loaded when first asked for.
The mechanics (duplicate names, lazy entry points, "did you mean") are the shared
:class:`shiftbench._registry.Registry`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shiftbench._registry import Registry

if TYPE_CHECKING:
    from shiftbench.adaptation.base import Adaptation

ENTRY_POINT_GROUP = "shiftbench.adaptations"
_BUILTIN_MODULES = (
    "shiftbench.adaptation.refit",
    "shiftbench.adaptation.bank",
    "shiftbench.adaptation.batchnorm",
    "shiftbench.adaptation.align",
    "shiftbench.adaptation.threshold",
)


def _check(name: str, obj: Any) -> None:
    from shiftbench.adaptation.base import TARGET_DATA, THRESHOLD_RULES, Adaptation

    if not (inspect.isclass(obj) and issubclass(obj, Adaptation)):
        raise TypeError(f"adaptation {name!r}: {obj!r} is not an Adaptation subclass")
    if obj.target_data not in TARGET_DATA:
        raise TypeError(
            f"adaptation {name!r}: target_data {obj.target_data!r} is not one of {TARGET_DATA}"
        )
    if obj.threshold not in THRESHOLD_RULES:
        raise TypeError(
            f"adaptation {name!r}: threshold {obj.threshold!r} is not one of "
            f"{tuple(THRESHOLD_RULES)}"
        )


def _adapt_plugin(name: str, obj: Any) -> Any:
    obj.name = name  # the class knows its registry name
    return obj


def _describe(obj: Any) -> str:
    return (inspect.getdoc(obj) or "").split("\n")[0]


ADAPTATIONS: Registry[type[Adaptation]] = Registry(
    "adaptation",
    ENTRY_POINT_GROUP,
    builtin_modules=_BUILTIN_MODULES,
    check=_check,
    adapt_plugin=_adapt_plugin,
    describe=_describe,
)


def register_adaptation(name: str) -> Callable[[type[Adaptation]], type[Adaptation]]:
    """Class decorator registering an :class:`~shiftbench.adaptation.base.Adaptation`
    under ``name`` (its first docstring line is its description)."""

    def decorate(cls: type[Adaptation]) -> type[Adaptation]:
        cls.name = name
        ADAPTATIONS.register(name, cls, description=_describe(cls))
        return cls

    return decorate


def get_adaptation(name: str) -> Adaptation:
    """A new instance of the strategy ``name`` (unknown names: did-you-mean error)."""
    return ADAPTATIONS.get(name)()


def adaptation_class(name: str) -> type[Adaptation]:
    return ADAPTATIONS.get(name)


def adaptation_names() -> list[str]:
    """Every registered and plugin name (plugins are not imported)."""
    return ADAPTATIONS.names()


def list_adaptations() -> list[dict[str, Any]]:
    """One record per strategy: name, target data, transductive, threshold rule, whether
    it changes the backbone, which models it applies to, description, origin."""
    out = []
    for name, entry in ADAPTATIONS.load_all().items():
        if not hasattr(entry, "obj"):  # a plugin that failed to load: its error
            out.append({"name": name, "description": f"error: {entry}"})
            continue
        cls = entry.obj
        out.append(
            {
                "name": name,
                "target_data": cls.target_data,
                "transductive": cls.transductive,
                "changes_backbone": cls.changes_backbone,
                "threshold": cls.threshold,
                "models": cls.models,
                "description": entry.description,
                "origin": entry.origin,
            }
        )
    return out
