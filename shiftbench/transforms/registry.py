"""Perturbations by name: built-ins, ``@register``-ed classes and entry-point plugins.

Plugins declare themselves in their package metadata::

    [project.entry-points."shiftbench.perturbations"]
    hue_shift = "my_package.hue:HueShift"

An entry point is imported only when its name is first asked for (or when everything is
listed), and the distribution that supplied it is remembered for ``shiftbench list``.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable
from typing import Any, TypeVar, overload

from shiftbench.errors import ShiftbenchError
from shiftbench.transforms.base import FAMILIES, Perturbation

ENTRY_POINT_GROUP = "shiftbench.perturbations"
_BUILTIN_MODULES = (
    "shiftbench.transforms.geometric",
    "shiftbench.transforms.photometric",
    "shiftbench.transforms.illumination",
)

P = TypeVar("P", bound=type[Perturbation])

# name -> (class, origin)
_REGISTRY: dict[str, tuple[type[Perturbation], str]] = {}
# name -> entry point not yet loaded
_PENDING: dict[str, importlib.metadata.EntryPoint] | None = None
_BUILTINS_LOADED = False


def _origin_of(cls: type) -> str:
    if cls.__module__.startswith("shiftbench."):
        return "builtin"
    return f"registered in {cls.__module__}"


def _check_class(cls: Any, name: str) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Perturbation)):
        raise TypeError(
            f"perturbation {name!r}: {cls!r} is not a subclass of shiftbench.transforms.Perturbation"
        )
    family = getattr(cls, "family", None)
    if family not in FAMILIES:
        raise TypeError(f"perturbation {name!r}: family {family!r} is not one of {FAMILIES}")


def _add(name: str, cls: type[Perturbation], origin: str) -> None:
    _check_class(cls, name)
    current = _REGISTRY.get(name)
    if current is not None and current[0] is not cls:
        raise ShiftbenchError(
            f"perturbation name {name!r} is taken by {current[0].__module__}.{current[0].__qualname__} "
            f"({current[1]}); give {cls.__module__}.{cls.__qualname__} another name"
        )
    _REGISTRY[name] = (cls, origin)


@overload
def register(name_or_cls: str) -> Callable[[P], P]: ...
@overload
def register(name_or_cls: P) -> P: ...
def register(name_or_cls: str | type[Perturbation]):
    """Class decorator adding a perturbation to the registry.

    ``@register`` uses the class attribute ``name``; ``@register("hue_shift")`` sets it.
    A name already taken by another class is an error.
    """

    def deco(cls, name=None):
        name = name or getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise TypeError(
                f"{cls!r}: give the perturbation a name (class attribute or @register('name'))"
            )
        if getattr(cls, "name", None) != name:
            cls.name = name
        _add(name, cls, _origin_of(cls))
        return cls

    if isinstance(name_or_cls, str):
        return lambda cls: deco(cls, name_or_cls)
    return deco(name_or_cls)


def _load_builtins() -> None:
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True
        for module in _BUILTIN_MODULES:
            importlib.import_module(module)


def _pending() -> dict[str, importlib.metadata.EntryPoint]:
    global _PENDING
    if _PENDING is None:
        _PENDING = {}
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            # the first distribution on sys.path wins, as for imports
            _PENDING.setdefault(ep.name, ep)
    return _PENDING


def refresh() -> None:
    """Forget the scanned entry points (after installing a plugin in a running process)."""
    global _PENDING
    _PENDING = None


def _dist_label(ep: importlib.metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return f"plugin ({ep.value})"
    return f"plugin {dist.metadata['Name']} {dist.version}"


def _load_entry_point(name: str, ep: importlib.metadata.EntryPoint) -> type[Perturbation]:
    label = _dist_label(ep)
    try:
        cls = ep.load()
    except Exception as exc:  # a broken plugin must not look like a shiftbench bug
        raise ShiftbenchError(
            f"perturbation {name!r} from {label}: cannot import {ep.value} "
            f"({exc.__class__.__name__}: {exc}); fix or uninstall the plugin"
        ) from exc
    try:
        _check_class(cls, name)
    except TypeError as exc:
        raise ShiftbenchError(f"{label}: {exc}") from None
    declared = getattr(cls, "name", None)
    if declared is None:
        cls.name = name
    elif declared != name:
        raise ShiftbenchError(
            f"{label}: entry point {name!r} points at a class named {declared!r}; make the two names equal"
        )
    _add(name, cls, label)
    return cls


def get_perturbation(name: str) -> type[Perturbation]:
    """The perturbation class registered under ``name``.

    Built-ins and decorated classes first, then the ``shiftbench.perturbations`` entry
    points (imported now, on first use). Unknown names raise :class:`ShiftbenchError`
    listing the known ones.
    """
    _load_builtins()
    if name in _REGISTRY:
        return _REGISTRY[name][0]
    ep = _pending().get(name)
    if ep is None:
        refresh()  # a plugin may have been installed since the last scan
        ep = _pending().get(name)
    if ep is not None:
        return _load_entry_point(name, ep)
    raise ShiftbenchError(
        f"unknown perturbation {name!r}; known: {', '.join(known_names())} "
        f"(plugins register through the {ENTRY_POINT_GROUP!r} entry-point group)"
    )


def known_names() -> list[str]:
    """All registered and plugin names, without importing any plugin."""
    _load_builtins()
    return sorted(set(_REGISTRY) | set(_pending()))


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
    for name in known_names():
        try:
            cls = get_perturbation(name)
        except ShiftbenchError as exc:
            rows.append((name, "?", f"broken: {exc}"))
            continue
        rows.append((name, cls.family, _REGISTRY[name][1]))
    return rows
