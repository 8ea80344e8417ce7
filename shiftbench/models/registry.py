"""Models by name: ``@register_model`` on a factory, ``create_model(name, ...)``.

Built-in adapters register themselves when their module is imported; the modules are
imported on the first lookup (anomalib itself is only imported when an anomalib model is
fitted). Third-party packages add models through the entry-point group
``shiftbench.models`` (``name = "pkg.module:factory"``), loaded when first asked for.
The mechanics (duplicate names, lazy entry points, "did you mean") are the shared
:class:`shiftbench._registry.Registry`. A new built-in also goes into the static table
of :mod:`shiftbench._catalogue` (what ``shiftbench list`` shows without importing it;
tests/test_catalogue.py fails until it is there).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shiftbench._registry import Entry, Registry
from shiftbench.errors import ShiftbenchError

if TYPE_CHECKING:
    from shiftbench.models.base import AnomalyModel

ENTRY_POINT_GROUP = "shiftbench.models"
_BUILTIN_MODULES = (
    "shiftbench.models.patchcore",
    "shiftbench.models.autoencoder",
    "shiftbench.models.anomalib",
)


def _describe_plugin(factory: Callable[..., Any]) -> str:
    return (inspect.getdoc(factory) or "").split("\n")[0]


def _adapt_plugin(name: str, factory: Any) -> Callable[..., AnomalyModel]:
    if not callable(factory):
        raise TypeError(f"model {name!r}: {factory!r} is not a class or factory")
    if inspect.isclass(factory):
        factory.name = name  # as register_model: save() records the plugin's own name
    return factory


MODELS: Registry[Callable[..., AnomalyModel]] = Registry(
    "model",
    ENTRY_POINT_GROUP,
    builtin_modules=_BUILTIN_MODULES,
    adapt_plugin=_adapt_plugin,
    describe=_describe_plugin,
)
_REGISTRY: dict[str, Entry[Callable[..., AnomalyModel]]] = MODELS.entries


def register_model(
    name: str, description: str
) -> Callable[[Callable[..., AnomalyModel]], Callable[..., AnomalyModel]]:
    """Decorator registering ``factory(**params) -> AnomalyModel`` under ``name``.

    A name taken by another factory is a :class:`~shiftbench._registry.DuplicateNameError`
    (a ``ShiftbenchError`` and ``ValueError``) naming both.
    """

    def decorate(factory: Callable[..., AnomalyModel]) -> Callable[..., AnomalyModel]:
        MODELS.register(name, factory, description=description)
        if inspect.isclass(factory):
            factory.name = name  # the class knows its registry name: save() records it
        return factory

    return decorate


def _lookup(name: str) -> Entry[Callable[..., AnomalyModel]]:
    return MODELS.entry(name)


def _description(entry: Entry[Any]) -> str:
    if entry.is_plugin:
        return (
            f"{entry.description} (plugin from {entry.distribution or entry.entry_point})".strip()
        )
    return entry.description


def list_models() -> list[tuple[str, str]]:
    """``[(name, description)]`` of built-in and plugin models, in registration order
    (plugins not used yet last, without importing them)."""
    MODELS.load_builtins()
    out = [(e.name, _description(e)) for e in MODELS.entries.values()]
    out += [(name, f"plugin {ep.value}") for name, ep in sorted(MODELS.pending().items())]
    return out


def model_class(name: str) -> type[AnomalyModel]:
    """The adapter class a registered factory builds (factories are classes or return one)."""
    factory = _lookup(name).obj
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
    accepted = _accepted_params(entry.obj)
    if accepted is not None:
        unknown = sorted(set(params) - accepted)
        if unknown:
            raise ShiftbenchError(
                f"model {name!r}: unknown option(s) {', '.join(unknown)}; "
                f"options: {', '.join(sorted(accepted))}"
            )
    model = entry.obj(**params)
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
