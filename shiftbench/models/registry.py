"""Models by name: ``@register_model`` on a factory, ``create_model(name, ...)``.

Built-in adapters register themselves when their module is imported; the modules are
imported on the first lookup (anomalib itself is only imported when an anomalib model is
fitted). Third-party packages add models through the entry-point group
``shiftbench.models`` (``name = "pkg.module:factory"``), loaded when first asked for.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any

from shiftbench.errors import ShiftbenchError

if TYPE_CHECKING:
    from shiftbench.models.base import AnomalyModel

ENTRY_POINT_GROUP = "shiftbench.models"
_BUILTIN_MODULES = (
    "shiftbench.models.patchcore",
    "shiftbench.models.autoencoder",
    "shiftbench.models.anomalib_models",
)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    description: str
    factory: Callable[..., AnomalyModel]
    origin: str


_REGISTRY: dict[str, ModelEntry] = {}
_loaded_builtins = False


def register_model(
    name: str, description: str
) -> Callable[[Callable[..., AnomalyModel]], Callable[..., AnomalyModel]]:
    """Decorator registering ``factory(**params) -> AnomalyModel`` under ``name``."""

    def decorate(factory: Callable[..., AnomalyModel]) -> Callable[..., AnomalyModel]:
        existing = _REGISTRY.get(name)
        if existing is not None and existing.factory is not factory:
            raise ValueError(f"model name {name!r} is already registered by {existing.origin}")
        if inspect.isclass(factory):
            factory.name = name  # the class knows its registry name: save() records it
        _REGISTRY[name] = ModelEntry(name, description, factory, factory.__module__)
        return factory

    return decorate


def _load_builtins() -> None:
    global _loaded_builtins
    if not _loaded_builtins:
        for module in _BUILTIN_MODULES:
            importlib.import_module(module)
        _loaded_builtins = True


def _plugin_entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def _lookup(name: str) -> ModelEntry:
    _load_builtins()
    if name in _REGISTRY:
        return _REGISTRY[name]
    plugins = _plugin_entry_points()
    if name in plugins:
        factory = plugins[name].load()
        dist = plugins[name].dist.name if plugins[name].dist else plugins[name].value
        doc = (inspect.getdoc(factory) or "").split("\n")[0]
        entry = ModelEntry(name, f"{doc} (plugin from {dist})".strip(), factory, dist)
        _REGISTRY[name] = entry
        return entry
    known = ", ".join(sorted({*_REGISTRY, *plugins}))
    raise ShiftbenchError(f"--model {name!r}: unknown model; known models: {known}")


def list_models() -> list[tuple[str, str]]:
    """``[(name, description)]`` of built-in and plugin models, in registration order."""
    _load_builtins()
    out = [(e.name, e.description) for e in _REGISTRY.values()]
    listed = {name for name, _ in out}
    for name, ep in _plugin_entry_points().items():
        if name not in listed:
            out.append((name, f"plugin {ep.value}"))
    return out


def model_class(name: str) -> type[AnomalyModel]:
    """The adapter class a registered factory builds (factories are classes or return one)."""
    factory = _lookup(name).factory
    if inspect.isclass(factory):
        return factory
    return type(factory())


def create_model(
    name: str,
    *,
    backbone: str | None = None,
    weights: str = "imagenet",
    image_size: int = 256,
    seed: int = 0,
    **options: Any,
) -> AnomalyModel:
    """An unfitted model ``name`` with validated parameters.

    ``options`` are model specific (e.g. ``coreset_ratio`` for PatchCore, ``epochs`` for
    trained models); an unknown option is a :class:`ShiftbenchError` listing the valid ones.
    """
    entry = _lookup(name)
    params = dict(backbone=backbone, weights=weights, image_size=image_size, seed=seed, **options)
    accepted = _accepted_params(entry.factory)
    if accepted is not None:
        unknown = sorted(set(params) - accepted)
        if unknown:
            raise ShiftbenchError(
                f"model {name!r}: unknown option(s) {', '.join(unknown)}; "
                f"options: {', '.join(sorted(accepted))}"
            )
    model = entry.factory(**params)
    if not model.name:
        model.name = name
    model.validate()
    return model


def _accepted_params(factory: Callable[..., Any]) -> set[str] | None:
    from shiftbench.models.base import AnomalyModel

    if inspect.isclass(factory) and issubclass(factory, AnomalyModel):
        return set(factory._param_names())
    sig = inspect.signature(factory)
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return set(sig.parameters)
