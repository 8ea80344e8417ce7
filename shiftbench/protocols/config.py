"""Study configuration: :class:`StudyConfig` defaults, a YAML study file, then overrides.

:class:`StudyConfig` is the one source of truth for a study's options: each field holds
its default, its help text and its command-line flag (``field(metadata=...)``); the CLI
builds the options of ``shiftbench run``, ``shift`` and ``splits`` from them
(:mod:`shiftbench.cli.options`). Errors here name the *parameter* (``severity 7: ...``,
:attr:`~shiftbench.errors.ShiftbenchError.param`); the CLI turns it into the flag.

This module holds :func:`load_config`. The options table (:class:`StudyConfig`) is
:mod:`shiftbench.protocols.study_options`; the parsing and checking of single values
(comma lists, severities, numbers, executor options, the study file's keys) is
:mod:`shiftbench.protocols.config_values`; the protocol table is
:mod:`shiftbench.protocols.table`. Their names are importable from here too.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from shiftbench.errors import ShiftbenchError
from shiftbench.protocols.config_values import (  # noqa: F401  (importable from here too)
    EXECUTORS,
    _did_you_mean,
    _executor_options,
    _listify,
    _number,
    _read_study_file,
    _severity,
)
from shiftbench.protocols.study_options import (  # noqa: F401  (importable from here too)
    REAL_IMAGE_SIZE,
    SYNTHETIC_IMAGE_SIZE,
    StudyConfig,
    _opt,
)
from shiftbench.protocols.table import (  # noqa: F401  (importable from here too)
    Protocol,
    _preset,
    protocol_table,
    resolve_protocols,
)


def study_fields() -> dict[str, dataclasses.Field]:
    """The options of a study, by name, in declaration order (with their metadata)."""
    return {f.name: f for f in dataclasses.fields(StudyConfig)}


def field_default(name: str) -> Any:
    """The default of option ``name`` (a fresh copy for lists and dicts)."""
    f = study_fields()[name]
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _normalised(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def config_differences(old: dict[str, Any], new: StudyConfig) -> list[str]:
    """The hashed options in which ``new`` differs from ``old`` (a config as stored by
    ``to_dict()`` in a run's manifest), e.g. ``["seeds: [0] -> [0, 1]"]``, in field order.
    An option missing from ``old`` (added since) counts as its unset value, ``None``.
    Options that do not change results (``workers``, ...) are never reported."""
    out = []
    for name, value in new.to_dict().items():
        if name in StudyConfig._NOT_HASHED:
            continue
        before, after = _normalised(old.get(name)), _normalised(value)
        if before != after:
            out.append(f"{name}: {before!r} -> {after!r}")
    return out


def load_config(
    study_file: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> StudyConfig:
    """:class:`StudyConfig` defaults <- ``presets/demo.yaml`` (what the demo sets beyond
    them: nothing today) <- study YAML file <- ``overrides`` (``None`` means 'not given').

    Values may be given as on the command line (``"0,1"`` for a list) or as YAML values.
    ``image_size`` left unset is 128 for the synthetic dataset and 256 otherwise. Bad
    values raise a :class:`ShiftbenchError` whose ``param`` names the option."""
    fields = study_fields()
    known = set(fields)
    values = {name: field_default(name) for name in fields}
    values.update(_preset("demo.yaml") or {})
    if study_file is not None:
        values.update(_read_study_file(study_file, known))
    for key, value in (overrides or {}).items():
        if key not in known:
            raise ShiftbenchError(
                f"{key}: unknown option; {_did_you_mean(key, known)}"
                f"known options: {', '.join(fields)}"
            )
        if value is not None:
            values[key] = value
    values["categories"] = _listify(values.get("categories"), str, "categories", "bottle,cable")
    values["views"] = _listify(values.get("views"), str, "views", "C1,C3") or None
    values["models"] = _listify(values.get("models"), str, "models", "patchcore,padim")
    values["seeds"] = _listify(values.get("seeds"), int, "seeds", "0,1,2")
    values["severity"] = _severity(values.get("severity"))
    values["adapt"] = _listify(values.get("adapt"), str, "adapt", "refit,bank-extend")
    values["adapt_k"] = _listify(values.get("adapt_k"), int, "adapt_k", "1,4,16")
    if not values["models"]:
        raise ShiftbenchError("models: give at least one model name", param="models")
    if not values["seeds"]:
        raise ShiftbenchError("seeds: give at least one seed", param="seeds")
    if values["categories"] == []:
        values["categories"] = None  # an empty list means all, as on the command line
    _number(values, "image_size", int, minimum=32)
    _number(values, "crop", int, minimum=32)
    _number(values, "workers", int, minimum=1)
    _number(values, "jobs", int, minimum=1)
    _number(values, "cpus_per_unit", float)
    _number(values, "gpus_per_unit", float)
    _executor_options(values)
    for name in ("train_subsample", "val_normal_frac", "val_anomalous_frac"):
        _number(values, name, float)
    config = StudyConfig(**values)
    if config.crop is not None and config.crop > config.image_size:
        raise ShiftbenchError(
            f"crop {config.crop}: larger than the image ({config.image_size} px); "
            "give a crop no larger than the image size",
            param="crop",
        )
    resolve_protocols(config.protocol)  # unknown protocol names fail now
    _target_options(config)
    from shiftbench.protocols.adapt_config import check_adapt_options

    check_adapt_options(config)
    return config


#: ``suite: none``: no synthetic shift (a study of a real target alone)
NO_SUITE = "none"


def _target_options(config: StudyConfig) -> None:
    """Check the options of a real target domain (their names are in the messages)."""
    if config.target_root is None:
        for name in ("target_dataset", "target_name"):
            if getattr(config, name) is not None:
                raise ShiftbenchError(
                    f"{name} {getattr(config, name)!r}: only used with --target-root; "
                    "give the target's folder too",
                    param=name,
                )
        if config.suite == NO_SUITE:
            raise ShiftbenchError(
                "suite none: no shift to run; name a suite or give a real target with "
                "--target-root",
                param="suite",
            )
