"""Command-line options generated from the study's fields: one vocabulary for every command.

Each :class:`~shiftbench.protocols.config.StudyConfig` field carries its help text, flag
and command-line type in its metadata. :func:`with_study_options` adds the options named
to a command (``splits``, ``shift`` and ``run`` share ``--dataset``, ``--root``,
``--categories``, ``--seeds``, ...): the command's signature is rebuilt with one
``typer.Option`` per field (typer reads ``__signature__``), and the command receives them
as one dict, ``study``, in which ``None`` means "not given" (so a ``--config`` file or the
field default applies). ``--help`` prints each default from the dataclass.

Library errors name the parameter (``severity 7: ...``); :func:`flag_of` is the mapping
the CLI uses to show the flag instead (``--severity 7: ...``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any, Optional

import typer

from shiftbench.protocols.config import field_default, study_fields


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    if value is None:
        return "none"
    return str(value)


#: The arguments the CLI was invoked with (set by :func:`shiftbench.cli.main.main`).
_ARGV: list[str] = []


def set_argv(argv: list[str]) -> None:
    """Remember the command line (``main(argv)`` may be called with its own list)."""
    _ARGV[:] = list(argv)


def command_line() -> list[str]:
    """``["shiftbench", *arguments]``: the command as the user typed it."""
    return ["shiftbench", *_ARGV]


def cli_fields() -> list[str]:
    """The study fields that have a command-line flag (all of them: a field declared
    without ``_opt`` metadata is left out here rather than breaking the CLI, and
    tests/test_cli.py fails on it)."""
    return [name for name, f in study_fields().items() if f.metadata.get("flag")]


def flag_of(param: str) -> str:
    """The command-line flag of parameter ``param`` (``image_size`` -> ``--image-size``;
    for a switch, its 'on' form)."""
    f = study_fields().get(param)
    if f is not None and f.metadata.get("flag"):
        return f.metadata["flag"].split("/")[0]
    return "--" + param.replace("_", "-")


def default_text(name: str) -> str:
    """The default of study option ``name`` as ``--help`` shows it."""
    f = study_fields()[name]
    return f.metadata.get("show") or _show(field_default(name))


def study_parameter(
    name: str, *, help: str | None = None, show: str | None = None
) -> inspect.Parameter:
    """The ``inspect.Parameter`` of study option ``name``, its default a ``typer.Option``
    (``None``: not given) whose help shows the dataclass default (or ``show``)."""
    f = study_fields()[name]
    meta = f.metadata
    kind = meta["cli_type"]
    annotation = Optional[kind]  # noqa: UP045 - typer reads this at runtime
    option = typer.Option(
        None,
        *meta["flag"].split(" "),
        help=help or meta["help"],
        show_default=show or default_text(name),
    )
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation
    )


def with_study_options(
    names: Sequence[str],
    *,
    helps: dict[str, str] | None = None,
    shows: dict[str, str] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a command ``func(study: dict, **own_options)``: its CLI gets one option per
    study field in ``names`` (before its own options); ``study`` maps each name to the
    value given, or ``None``. ``helps``/``shows`` replace a field's help or shown default
    for this command only."""
    helps, shows = helps or {}, shows or {}

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        own = inspect.signature(func, eval_str=True)
        rest = [
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            for p in own.parameters.values()
            if p.name != "study"
        ]
        generated = [study_parameter(n, help=helps.get(n), show=shows.get(n)) for n in names]

        @functools.wraps(func)
        def command(**kwargs: Any) -> Any:
            study = {n: kwargs.pop(n, None) for n in names}
            return func(study=study, **kwargs)

        command.__signature__ = own.replace(parameters=[*generated, *rest])  # type: ignore[attr-defined]
        command.__annotations__ = {}
        del command.__wrapped__  # typer must see the generated signature, not func's
        return command

    return decorate


def comma_list(value: str | None, param: str) -> list[str] | None:
    """``"a,b"`` -> ``["a", "b"]`` with the study's rules (an empty item is an error
    naming ``param``); ``None`` stays ``None``."""
    from shiftbench.protocols.config import _listify

    return _listify(value, str, param)
