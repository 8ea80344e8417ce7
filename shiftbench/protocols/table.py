"""The protocol table: which domain each protocol fits on, thresholds on and evaluates,
as shipped in ``presets/protocols.yaml`` (and the other presets' reader)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from shiftbench.errors import ShiftbenchError


@dataclass(frozen=True)
class Protocol:
    """One row of the protocol table: which domain fits, thresholds and is evaluated."""

    name: str
    fit_on: str
    threshold_from: str
    evaluate_on: str
    description: str = ""


def _preset(name: str) -> dict[str, Any]:
    text = resources.files("shiftbench.protocols").joinpath("presets", name).read_text()
    return yaml.safe_load(text)


def protocol_table() -> dict[str, Protocol]:
    """The protocols shipped in ``presets/protocols.yaml``, by name."""
    return {name: Protocol(name=name, **spec) for name, spec in _preset("protocols.yaml").items()}


def resolve_protocols(spec: str | list[str]) -> list[Protocol]:
    """``all``, one name, or a comma-separated list -> protocols in table order."""
    table = protocol_table()
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    names = [n.strip() for n in names if n.strip()]
    if names == ["all"]:
        return list(table.values())
    unknown = [n for n in names if n not in table]
    if unknown or not names:
        raise ShiftbenchError(
            f"protocol {','.join(unknown) or '(empty)'}: unknown; choose from {', '.join(table)} or all",
            param="protocol",
        )
    return [p for n, p in table.items() if n in names]
