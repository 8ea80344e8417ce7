"""One name registry for perturbations, models and datasets.

A :class:`Registry` maps names to objects (classes, factories, loader functions). Entries
come from three places, all with the same rules:

* **built-ins**: modules listed in ``builtin_modules`` are imported on the first lookup
  and register themselves (decorators calling :meth:`Registry.register`);
* **in-process registration**: :meth:`Registry.register` from any module;
* **plugins**: entry points of the registry's ``group`` in installed distributions'
  metadata. The group is scanned on the first lookup of a name that is not registered (or
  on listing), and a plugin is imported only when its own name is asked for, like pluggy
  hooks or networkx backends. Names are listed without importing any plugin.

Every entry remembers where it came from (:class:`Entry`: ``origin``, ``distribution``,
``version``, ``entry_point``). A name taken by another object is a
:class:`DuplicateNameError` naming both origins; an unknown name is an
:class:`UnknownNameError` suggesting close names (``unknown model 'padim'; did you mean
'anomalib-padim'? ...``). Both are :class:`~shiftbench.errors.ShiftbenchError` (one line,
shown to the user) and also ``ValueError`` / ``LookupError``.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import importlib.metadata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from shiftbench.errors import ShiftbenchError

T = TypeVar("T")

__all__ = [
    "DuplicateNameError",
    "Entry",
    "PluginError",
    "Registry",
    "UnknownNameError",
    "suggest",
]


class DuplicateNameError(ShiftbenchError, ValueError):
    """A name is already taken by another object; the message names both origins."""


class UnknownNameError(ShiftbenchError, LookupError):
    """No entry of that name; the message suggests close names and lists the known ones."""


class PluginError(ShiftbenchError):
    """An entry point that cannot be imported or does not fit the registry's contract."""


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered object and where it came from.

    ``origin`` is a short label for listings: ``builtin``, ``registered in <module>`` or
    ``plugin <distribution> <version>``. ``distribution``/``version`` name the installed
    distribution that supplied it (``shiftbench`` for built-ins, ``None`` when unknown);
    ``entry_point`` is the ``module:attr`` target of a plugin (``None`` otherwise).
    """

    name: str
    obj: T
    origin: str
    distribution: str | None = None
    version: str | None = None
    entry_point: str | None = None
    description: str = ""

    @property
    def is_plugin(self) -> bool:
        return self.entry_point is not None


def _describe_obj(obj: Any) -> str:
    module = getattr(obj, "__module__", None) or "?"
    qualname = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    return f"{module}.{qualname}"


@functools.lru_cache(maxsize=1)
def _packages_distributions() -> dict[str, list[str]]:
    try:
        return dict(importlib.metadata.packages_distributions())
    except Exception:  # broken metadata somewhere must not break registration
        return {}


def _source_of(obj: Any) -> tuple[str, str | None]:
    """``(origin label, distribution)`` of an object registered in-process."""
    module = getattr(obj, "__module__", None) or ""
    if module == "shiftbench" or module.startswith("shiftbench."):
        return "builtin", "shiftbench"
    dists = _packages_distributions().get(module.split(".")[0]) if module else None
    return f"registered in {module or '?'}", (dists[0] if dists else None)


def _ep_dist(ep: importlib.metadata.EntryPoint) -> tuple[str | None, str | None]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    return dist.metadata["Name"], dist.version


def plugin_label(ep: importlib.metadata.EntryPoint) -> str:
    """``plugin <distribution> <version>`` (or ``plugin (<target>)`` without metadata)."""
    name, version = _ep_dist(ep)
    if name is None:
        return f"plugin ({ep.value})"
    return f"plugin {name} {version}"


def suggest(name: str, known: Iterable[str], n: int = 3) -> list[str]:
    """Names close to ``name``: difflib matches of the whole name, then names containing it
    or whose ``-``/``_``-separated parts match it (``padim`` -> ``anomalib-padim``)."""
    known = sorted(set(known))
    lowered = {k.lower(): k for k in known}
    out = [lowered[m] for m in difflib.get_close_matches(name.lower(), list(lowered), n=n)]
    needle = name.lower()
    parts: dict[str, list[str]] = {}
    for k in known:
        for part in k.lower().replace("_", "-").split("-"):
            if part:
                parts.setdefault(part, []).append(k)
    close_parts = difflib.get_close_matches(needle, list(parts), n=n, cutoff=0.75)
    for k in known:
        if needle and len(needle) >= 3 and needle in k.lower():
            out.append(k)
    for part in close_parts:
        out += parts[part]
    seen: list[str] = []
    for k in out:
        if k not in seen and k != name:
            seen.append(k)
    return seen[:n]


class Registry(Generic[T]):
    """Names -> objects, with built-in modules and an entry-point group loaded lazily.

    ``kind`` names the things in messages (``"perturbation"``, ``"model"``). ``check(name,
    obj)`` validates every object (raise ``TypeError``/``ShiftbenchError``); ``adapt_plugin
    (name, obj)`` may fix up or refuse an object loaded from an entry point (its errors are
    reported as the plugin's, naming the distribution); ``describe(obj)`` gives a plugin's
    description. ``known_label`` starts the list of names in the unknown-name error.
    """

    def __init__(
        self,
        kind: str,
        group: str | None = None,
        *,
        builtin_modules: Iterable[str] = (),
        check: Callable[[str, Any], None] | None = None,
        adapt_plugin: Callable[[str, Any], Any] | None = None,
        describe: Callable[[Any], str] | None = None,
        known_label: str = "known",
    ) -> None:
        self.kind = kind
        self.group = group
        self.builtin_modules = tuple(builtin_modules)
        self._check = check
        self._adapt_plugin = adapt_plugin
        self._describe = describe
        self.known_label = known_label
        #: name -> entry, in registration order (tests may snapshot and restore it)
        self.entries: dict[str, Entry[T]] = {}
        self._pending: dict[str, importlib.metadata.EntryPoint] | None = None
        self._clashes: dict[str, list[importlib.metadata.EntryPoint]] = {}
        self._builtins_loaded = False

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, group={self.group!r}, {len(self.entries)} loaded)"

    # ------------------------------------------------------------------ registration
    def register(
        self,
        name: str,
        obj: T,
        *,
        origin: str | None = None,
        distribution: str | None = None,
        version: str | None = None,
        entry_point: str | None = None,
        description: str = "",
    ) -> Entry[T]:
        """Add ``obj`` under ``name``. Registering the same object again is a no-op (a
        plugin's entry point wins as its origin); another object under a taken name is a
        :class:`DuplicateNameError` naming both."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"{self.kind} name must be a non-empty string, got {name!r}")
        if self._check is not None:
            self._check(name, obj)
        if origin is None:
            origin, found = _source_of(obj)
            distribution = distribution or found
        existing = self.entries.get(name)
        if existing is not None:
            if existing.obj is not obj:
                raise DuplicateNameError(
                    f"{self.kind} name {name!r} is taken by {_describe_obj(existing.obj)} "
                    f"({existing.origin}); {_describe_obj(obj)} ({origin}) needs another name"
                )
            if entry_point is None or existing.is_plugin:
                return existing
        entry = Entry(name, obj, origin, distribution, version, entry_point, description)
        self.entries[name] = entry
        return entry

    def decorator(self, name: str | None = None, **info: Any) -> Callable[[T], T]:
        """``@registry.decorator("name")``: register the decorated object, return it."""

        def deco(obj: T) -> T:
            self.register(name or getattr(obj, "name", None) or obj.__name__, obj, **info)
            return obj

        return deco

    # ------------------------------------------------------------------ discovery
    def load_builtins(self) -> None:
        """Import the built-in modules (once)."""
        if self._builtins_loaded:
            return
        self._builtins_loaded = True  # set first: a built-in may look names up on import
        try:
            for module in self.builtin_modules:
                importlib.import_module(module)
        except BaseException:
            self._builtins_loaded = False
            raise

    def pending(self) -> dict[str, importlib.metadata.EntryPoint]:
        """Entry points of the group not loaded yet, by name (scanned once; no imports)."""
        if self._pending is None:
            found: dict[str, importlib.metadata.EntryPoint] = {}
            self._clashes = {}
            if self.group is not None:
                for ep in importlib.metadata.entry_points(group=self.group):
                    first = found.setdefault(ep.name, ep)
                    if first is not ep and _ep_dist(first)[0] != _ep_dist(ep)[0]:
                        self._clashes.setdefault(ep.name, [first]).append(ep)
            self._pending = found
        return {n: ep for n, ep in self._pending.items() if n not in self.entries}

    def refresh(self) -> None:
        """Forget the scanned entry points (after installing a plugin in a running process)."""
        self._pending = None
        self._clashes = {}

    def names(self) -> list[str]:
        """Every registered and plugin name, sorted, without importing any plugin."""
        self.load_builtins()
        return sorted(set(self.entries) | set(self.pending()))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()

    # ------------------------------------------------------------------ lookup
    def entry(self, name: str, *, also_known: Iterable[str] = ()) -> Entry[T]:
        """The entry ``name``: registered, or imported now from its entry point.

        Unknown names raise :class:`UnknownNameError`; ``also_known`` are extra names the
        caller accepts itself (offered in the suggestions and the list).
        """
        self.load_builtins()
        found = self.entries.get(name)
        if found is not None:
            return found
        ep = self.pending().get(name)
        if ep is None:
            self.refresh()  # a plugin may have been installed since the last scan
            ep = self.pending().get(name)
        if ep is not None:
            return self._load(name, ep)
        raise self.unknown(name, also_known)

    def get(self, name: str, *, also_known: Iterable[str] = ()) -> T:
        """The object registered under ``name`` (see :meth:`entry`)."""
        return self.entry(name, also_known=also_known).obj

    def unknown(self, name: str, also_known: Iterable[str] = ()) -> UnknownNameError:
        """The error for an unknown ``name``: close names first, then every known one."""
        known = sorted(set(self.names()) | set(also_known))
        close = suggest(str(name), known)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
        where = (
            f" (plugins register through the {self.group!r} entry-point group)"
            if self.group
            else ""
        )
        return UnknownNameError(
            f"unknown {self.kind} {name!r}; {hint}{self.known_label}: {', '.join(known)}{where}"
        )

    def load_all(self) -> dict[str, Entry[T] | ShiftbenchError]:
        """Every entry, importing all plugins: registered ones in registration order, then
        plugins by name. A plugin that fails is given as its error, not hiding the others."""
        self.load_builtins()
        out: dict[str, Entry[T] | ShiftbenchError] = dict(self.entries)
        for name, ep in sorted(self.pending().items()):
            try:
                out[name] = self._load(name, ep)
            except ShiftbenchError as exc:
                out[name] = exc
        return out

    def _load(self, name: str, ep: importlib.metadata.EntryPoint) -> Entry[T]:
        label = plugin_label(ep)
        clash = self._clashes.get(name)
        if clash:
            owners = " and ".join(f"{plugin_label(e)} ({e.value})" for e in clash)
            raise DuplicateNameError(
                f"{self.kind} name {name!r} is declared by {owners}; uninstall one of them"
            )
        try:
            obj = ep.load()
        except Exception as exc:  # a broken plugin must not look like a shiftbench bug
            raise PluginError(
                f"{self.kind} {name!r} from {label}: cannot import {ep.value} "
                f"({exc.__class__.__name__}: {exc}); fix or uninstall the plugin"
            ) from exc
        dist, version = _ep_dist(ep)
        try:
            if self._adapt_plugin is not None:
                obj = self._adapt_plugin(name, obj)
            description = self._describe(obj) if self._describe is not None else ""
            return self.register(
                name,
                obj,
                origin=label,
                distribution=dist,
                version=version,
                entry_point=ep.value,
                description=description,
            )
        except DuplicateNameError:
            raise
        except (TypeError, ValueError, ShiftbenchError) as exc:
            raise PluginError(f"{label}: {exc}") from None
