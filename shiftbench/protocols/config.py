"""Study configuration: the demo preset, a YAML study file, then command-line overrides."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
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
            f"--protocol {','.join(unknown) or '(empty)'}: unknown; choose from {', '.join(table)} or all"
        )
    return [p for n, p in table.items() if n in names]


@dataclass
class StudyConfig:
    """Everything that defines a study; ``hash`` identifies it for naming and resuming."""

    protocol: str = "shift-noadapt"
    dataset: str = "synthetic"
    root: str | None = None
    categories: list[str] | None = None
    models: list[str] = field(default_factory=lambda: ["patchcore"])
    backbone: str | None = None
    weights: str = "imagenet"
    seeds: list[int] = field(default_factory=lambda: [0])
    suite: str = "mvtec-shift"
    severity: int | list[int] = 3  # one level, or several for a severity sweep
    image_size: int = 128
    global_model: bool = False
    train_subsample: float | None = None
    val_normal_frac: float = 0.2
    val_anomalous_frac: float = 0.3
    save_maps: bool = False
    workers: int = 2
    image_cache: bool = True  # keep decoded, resized images in the cache (shiftbench.data.cache)
    model_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    # options that change where/how results are written, not what they are
    _NOT_HASHED = ("save_maps", "workers", "image_cache")

    @property
    def protocols(self) -> list[Protocol]:
        return resolve_protocols(self.protocol)

    @property
    def severities(self) -> list[int]:
        """The shift levels of the study: one, or several for a severity sweep."""
        return list(self.severity) if isinstance(self.severity, list) else [self.severity]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def hash(self) -> str:
        payload = {k: v for k, v in self.to_dict().items() if k not in self._NOT_HASHED}
        return hashlib.sha256(
            json.dumps(payload, sort_keys=True, default=str).encode()
        ).hexdigest()[:10]

    def default_name(self) -> str:
        models = "+".join(self.models)[:40]
        return f"{self.dataset}_{self.protocol}_{models}_{Path(self.suite).stem}-sev{'-'.join(map(str, self.severities))}_{self.hash}"


def _listify(value: Any, kind=str) -> list | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    try:
        return [kind(v.strip() if isinstance(v, str) else v) for v in value]
    except ValueError:
        raise ShiftbenchError(f"cannot read {value!r} as a list of {kind.__name__}") from None


def _severity(value: Any) -> int | list[int]:
    """``3``, ``"3"`` -> 3; ``"1,3,5"`` or ``[5, 1, 3]`` -> [1, 3, 5] (a sweep)."""
    levels = _listify(value if isinstance(value, (list, tuple, str)) else [value], int)
    levels = sorted(set(levels or []))
    if not levels:
        raise ShiftbenchError("--severity: give a level 0-5, or a comma list such as 1,3,5")
    bad = [v for v in levels if not 0 <= v <= 5]
    if bad:
        raise ShiftbenchError(f"--severity {bad[0]}: levels run from 0 (identity) to 5")
    return levels[0] if len(levels) == 1 else levels


def load_config(
    study_file: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> StudyConfig:
    """Demo preset <- study YAML file <- overrides (``None`` values mean 'not given')."""
    values = _preset("demo.yaml")
    known = {f.name for f in dataclasses.fields(StudyConfig)}
    if study_file is not None:
        path = Path(study_file)
        if not path.is_file():
            raise ShiftbenchError(
                f"{path}: study file not found; pass an existing YAML file to --config"
            )
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ShiftbenchError(
                f"{path}: not valid YAML ({str(exc).splitlines()[0]}); fix the file"
            ) from None
        if not isinstance(data, dict):
            raise ShiftbenchError(f"{path}: a study file must be a mapping of option: value")
        unknown = sorted(set(data) - known)
        if unknown:
            raise ShiftbenchError(
                f"{path}: unknown option {unknown[0]!r}; known options: {', '.join(sorted(known))}"
            )
        values.update(data)
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = value
    values["categories"] = _listify(values.get("categories"))
    values["models"] = _listify(values.get("models"))
    values["seeds"] = _listify(values.get("seeds"), int)
    values["severity"] = _severity(values.get("severity"))
    if not values["models"]:
        raise ShiftbenchError("--models: give at least one model name")
    if not values["seeds"]:
        raise ShiftbenchError("--seeds: give at least one seed")
    if int(values["image_size"]) < 32:
        raise ShiftbenchError(f"--image-size {values['image_size']}: too small; use at least 32")
    config = StudyConfig(**{k: v for k, v in values.items() if k in known})
    resolve_protocols(config.protocol)  # unknown protocol names fail now
    return config
