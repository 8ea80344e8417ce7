"""Parsing and checking single values of a study's options: comma lists, severity
levels, numbers, the executor options and the keys of a study file. Each error names the
parameter (``severity 7: ...``), which the CLI turns into the flag; :func:`load_config
<shiftbench.protocols.config.load_config>` applies them (every name is importable from
:mod:`shiftbench.protocols.config` too)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from shiftbench.errors import ShiftbenchError


def _listify(value: Any, kind=str, param: str = "value", example: str = "a,b") -> list | None:
    """``"a,b"`` or ``["a", "b"]`` -> a list of ``kind``; an empty item (``"1,,3"``) or an
    item that is not a ``kind`` is an error naming ``param``."""
    if value is None:
        return None
    text = value if isinstance(value, str) else ",".join(map(str, value))
    items = value.split(",") if isinstance(value, str) else list(value)
    if isinstance(value, str) and not value.strip():
        items = []
    out = []
    for item in items:
        if isinstance(item, str):
            item = item.strip()
            if not item:
                raise ShiftbenchError(
                    f"{param} {text!r}: empty item in the list; give a comma list such as {example}",
                    param=param,
                )
        if kind is int and (isinstance(item, bool) or isinstance(item, float)):
            item = str(item)
        try:
            out.append(kind(item))
        except (TypeError, ValueError):
            what = "an integer" if kind is int else f"a {kind.__name__}"
            raise ShiftbenchError(
                f"{param} {item!r}: not {what}; give a comma list such as {example}", param=param
            ) from None
    return out


def _severity(value: Any) -> int | list[int]:
    """``3``, ``"3"`` -> 3; ``"1,3,5"`` or ``[5, 1, 3]`` -> [1, 3, 5] (a sweep)."""
    raw = value if isinstance(value, (list, tuple, str)) else [value]
    levels = _listify(raw, int, "severity", "1,3,5")
    levels = sorted(set(levels or []))
    if not levels:
        raise ShiftbenchError(
            "severity: give a level 0-5, or a comma list such as 1,3,5", param="severity"
        )
    bad = [v for v in levels if not 0 <= v <= 5]
    if bad:
        raise ShiftbenchError(
            f"severity {bad[0]}: levels run from 0 (identity) to 5", param="severity"
        )
    return levels[0] if len(levels) == 1 else levels


def _number(values: dict[str, Any], name: str, kind, *, minimum=None) -> None:
    """Convert ``values[name]`` to ``kind`` in place (None stays None)."""
    value = values.get(name)
    if value is None:
        return
    what = "an integer" if kind is int else "a number"
    try:
        if isinstance(value, bool) or (kind is int and isinstance(value, float)):
            raise ValueError
        number = kind(value)
    except (TypeError, ValueError):
        raise ShiftbenchError(f"{name} {value!r}: not {what}", param=name) from None
    if minimum is not None and number < minimum:
        raise ShiftbenchError(f"{name} {value}: too small; use at least {minimum}", param=name)
    values[name] = number


#: the executors a study can run on (:mod:`shiftbench.protocols.executors`)
EXECUTORS = ("serial", "process", "ray")


def _executor_options(values: dict[str, Any]) -> None:
    """Check the options of where units run (their names are in the messages)."""
    name = values.get("executor")
    if name not in EXECUTORS:
        raise ShiftbenchError(
            f"executor {name!r}: unknown; choose from {', '.join(EXECUTORS)}", param="executor"
        )
    cpus, gpus = values.get("cpus_per_unit"), values.get("gpus_per_unit") or 0.0
    if cpus is not None and not cpus > 0:
        raise ShiftbenchError(f"cpus_per_unit {cpus}: give a number > 0", param="cpus_per_unit")
    if not gpus >= 0:
        raise ShiftbenchError(f"gpus_per_unit {gpus}: give a number >= 0", param="gpus_per_unit")
    if name != "ray":
        if gpus != int(gpus):
            raise ShiftbenchError(
                f"gpus_per_unit {gpus}: fractional GPUs need --executor ray", param="gpus_per_unit"
            )
        if values.get("ray_address") is not None:
            raise ShiftbenchError(
                f"ray_address {values['ray_address']}: only used with --executor ray",
                param="ray_address",
            )


def _did_you_mean(name: Any, known: set[str]) -> str:
    """``"did you mean 'image_size'? "`` for a misspelt option (``image_szie``), else ``""``."""
    from shiftbench._registry import suggest

    close = suggest(str(name), known)
    return f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""


def _read_study_file(study_file: str | Path, known: set[str]) -> dict[str, Any]:
    path = Path(study_file)
    if not path.is_file():
        raise ShiftbenchError(
            f"config {path}: study file not found; pass an existing YAML file", param="config"
        )
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ShiftbenchError(
            f"{path}: not valid YAML ({str(exc).splitlines()[0]}); fix the file"
        ) from None
    if not isinstance(data, dict):
        raise ShiftbenchError(f"{path}: a study file must be a mapping of option: value")
    unknown = sorted(set(data) - known, key=str)
    if unknown:
        raise ShiftbenchError(
            f"{path}: unknown option {unknown[0]!r}; {_did_you_mean(unknown[0], known)}"
            f"known options: {', '.join(sorted(known))}"
        )
    return data
