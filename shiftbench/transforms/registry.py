"""Perturbations by name: built-ins, ``@register``-ed classes and entry-point plugins.

Plugins declare themselves in their package metadata::

    [project.entry-points."shiftbench.perturbations"]
    hue_shift = "my_package.hue:HueShift"

An entry point is imported only when its name is first asked for (or when everything is
listed), and the distribution that supplied it is remembered for ``shiftbench list``.
The mechanics (duplicate names, lazy entry points, "did you mean") are the shared
:class:`shiftbench._registry.Registry`. A new built-in also goes into the static table
of :mod:`shiftbench._catalogue` (what ``shiftbench list`` shows without importing it;
tests/test_catalogue.py fails until it is there).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, overload

from shiftbench._registry import Entry, Registry
from shiftbench.errors import ShiftbenchError
from shiftbench.transforms.base import FAMILIES, Perturbation

ENTRY_POINT_GROUP = "shiftbench.perturbations"
_BUILTIN_MODULES = (
    "shiftbench.transforms.geometric",
    "shiftbench.transforms.photometric",
    "shiftbench.transforms.illumination",
    "shiftbench.transforms.corruptions",
    "shiftbench.transforms.corruptions_weather",
    "shiftbench.transforms.acquisition",
)

P = TypeVar("P", bound=type[Perturbation])


def _check_class(name: str, cls: Any) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Perturbation)):
        raise TypeError(
            f"perturbation {name!r}: {cls!r} is not a subclass of shiftbench.transforms.Perturbation"
        )
    family = getattr(cls, "family", None)
    if family not in FAMILIES:
        raise TypeError(f"perturbation {name!r}: family {family!r} is not one of {FAMILIES}")


def _adapt_plugin(name: str, cls: Any) -> type[Perturbation]:
    _check_class(name, cls)
    declared = getattr(cls, "name", None)
    if declared is None:
        cls.name = name
    elif declared != name:
        raise ShiftbenchError(
            f"entry point {name!r} points at a class named {declared!r}; make the two names equal"
        )
    return cls


PERTURBATIONS: Registry[type[Perturbation]] = Registry(
    "perturbation",
    ENTRY_POINT_GROUP,
    builtin_modules=_BUILTIN_MODULES,
    check=_check_class,
    adapt_plugin=_adapt_plugin,
)
# name -> Entry (tests snapshot and restore it)
_REGISTRY: dict[str, Entry[type[Perturbation]]] = PERTURBATIONS.entries


@overload
def register(name_or_cls: str) -> Callable[[P], P]: ...
@overload
def register(name_or_cls: P) -> P: ...
def register(name_or_cls: str | type[Perturbation]):
    """Class decorator adding a perturbation to the registry.

    ``@register`` uses the class attribute ``name``; ``@register("hue_shift")`` sets it.
    A name already taken by another class is an error naming both.
    """

    def deco(cls, name=None):
        name = name or getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise TypeError(
                f"{cls!r}: give the perturbation a name (class attribute or @register('name'))"
            )
        _check_class(name, cls)
        taken = _REGISTRY.get(name)
        if taken is not None and taken.obj is not cls:
            PERTURBATIONS.register(name, cls)  # raises, naming both
        if getattr(cls, "name", None) != name:
            cls.name = name
        PERTURBATIONS.register(name, cls)
        return cls

    if isinstance(name_or_cls, str):
        return lambda cls: deco(cls, name_or_cls)
    return deco(name_or_cls)


def refresh() -> None:
    """Forget the scanned entry points (after installing a plugin in a running process)."""
    PERTURBATIONS.refresh()


def get_perturbation(name: str) -> type[Perturbation]:
    """The perturbation class registered under ``name``.

    Built-ins and decorated classes first, then the ``shiftbench.perturbations`` entry
    points (imported now, on first use). Unknown names raise :class:`ShiftbenchError`
    suggesting close names and listing the known ones.
    """
    return PERTURBATIONS.get(name)


def known_names() -> list[str]:
    """All registered and plugin names, without importing any plugin."""
    return PERTURBATIONS.names()


def create(name: str, severity: int = 3, **options: Any) -> Perturbation:
    """Instantiate the perturbation ``name`` at ``severity`` with its options."""
    cls = get_perturbation(name)
    try:
        return cls(severity=severity, **options)
    except TypeError as exc:
        raise ShiftbenchError(f"perturbation {name!r}: bad options {options}: {exc}") from None


def list_perturbations() -> list[tuple[str, str, str]]:
    """``(name, family, origin)`` of every available perturbation, sorted by name.

    Imports every plugin; one that fails to import is listed with family ``?`` and the
    error as its origin rather than hiding the others.
    """
    rows = []
    for name, entry in sorted(PERTURBATIONS.load_all().items()):
        if isinstance(entry, ShiftbenchError):
            rows.append((name, "?", f"broken: {entry}"))
        else:
            rows.append((name, entry.obj.family, entry.origin))
    return rows
