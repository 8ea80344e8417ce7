"""Suites: ordered lists of perturbations declared in YAML, applied per image.

A suite file looks like::

    name: mvtec-shift
    description: geometric + photometric on every image, illumination on half of them
    severity: 3                  # default level of every member
    perturbations:
      - rotate                   # a bare name
      - name: illumination       # or a mapping
        p: 0.5                   # applied to this fraction of images (decided per image)
        severity: 3              # optional per-member level
        options: {}              # constructor options of the perturbation
    each: false                  # optional: true = a catalogue, evaluate each member alone

Members may be built-ins or plugins. Each member of each image gets its own generator from
:func:`shiftbench.transforms.base.rng_for` (suite name, member, severity, seed, image id),
so an image's params never depend on order, batching or worker count. A member evaluated
alone (:meth:`Suite.alone`, one condition of a per-shift study) draws from (perturbation,
severity, seed, image id) only, whichever suite it came from: the draws of
``shift(image, name, severity)``, so per-shift studies can be combined and re-run piecewise.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from shiftbench._hashing import hex_digest
from shiftbench.errors import ShiftbenchError
from shiftbench.transforms.base import (
    DEFAULT_SEVERITY,
    Perturbation,
    canonical_json,
    check_severity,
    jsonable,
    rng_for,
)
from shiftbench.transforms.registry import create

#: Version of the suite engine (composition rules); part of every suite hash.
ENGINE_VERSION = 1
_SHIPPED = "suites"


@dataclass(frozen=True)
class Member:
    """One perturbation of a suite. ``key`` names it in the params (its name, or
    ``name#2`` when a suite uses the same perturbation twice); ``p`` is the fraction of
    images it is applied to."""

    key: str
    perturbation: Perturbation
    p: float = 1.0


class Suite:
    """An ordered list of perturbations with a name and a stable hash.

    ``apply(image, mask, seed=, image_id=)`` shifts one image; ``sample`` and
    ``apply_params`` split that into drawing and applying, so recorded params can be
    replayed.
    """

    def __init__(
        self,
        name: str,
        members: list[Member],
        *,
        description: str = "",
        severity: int | None = None,
        source: str = "",
        each: bool = False,
        standalone: bool = False,
    ) -> None:
        if standalone and len(members) != 1:
            raise ValueError(f"{name}: a standalone suite has one member, got {len(members)}")
        self.name = name
        self.members = list(members)
        self.description = description
        self.severity = severity
        self.source = source
        #: ``each: true`` in the YAML: evaluate every member alone (a catalogue, not a chain).
        self.each = bool(each)
        #: one member evaluated alone (:meth:`alone`): its draws and hash ignore the suite's name
        self.standalone = bool(standalone)
        self._hash: str | None = None

    def definition(self) -> dict[str, Any]:
        """Canonical definition: everything that determines the output, and nothing else
        (``each`` only when true, so suites without it keep their hashes). A standalone
        member's draws do not depend on the suite's name, so neither does its definition:
        the same member from two suite files has one hash (and one twins cache key)."""
        members = [
            {"key": m.key, "p": float(m.p), **m.perturbation.describe()} for m in self.members
        ]
        if self.standalone:
            return {"engine": ENGINE_VERSION, "standalone": True, "members": members}
        definition: dict[str, Any] = {
            "engine": ENGINE_VERSION,
            "name": self.name,
            "members": members,
        }
        if self.each:
            definition["each"] = True
        return definition

    @property
    def hash(self) -> str:
        """sha256 (hex) of :meth:`definition` as canonical JSON."""
        if self._hash is None:
            self._hash = hex_digest(canonical_json(self.definition()))
        return self._hash

    def alone(self, key: str) -> Suite:
        """The suite of one member applied alone (named ``<suite>-<member key>``): what a
        per-shift study (``each``) evaluates as one condition.

        Its draws come from (perturbation name, severity, seed, image id) only — the same
        as ``shift(image, name, severity)`` — not from the suite's name or the member's
        position, so a member gives the same pixels and params from any suite file."""
        member = next((m for m in self.members if m.key == key), None)
        if member is None:
            raise KeyError(f"{self.name}: no member {key!r}")
        return Suite(
            f"{self.name}-{key}",
            [member],
            description=f"{key} of {self.name}, alone",
            severity=self.severity,
            source=self.source,
            standalone=True,
        )

    def _stream(self, member: Member) -> tuple[str, str]:
        """``(suite, name)`` arguments of :func:`rng_for` for ``member``: the suite's name and
        the member's key, or the perturbation's name twice for a standalone member."""
        if self.standalone:
            return member.perturbation.name, member.perturbation.name
        return self.name, member.key

    def __repr__(self) -> str:
        return f"Suite({self.name!r}, severity={self.severity}, members={[m.key for m in self.members]})"

    def sample(
        self, *, seed: int, image_id: str, shape: tuple[int, ...]
    ) -> dict[str, dict[str, Any]]:
        """Draw the params of every member for one image: ``{member key: params}``.

        Members with ``p < 1`` carry ``"applied": bool``, decided from a stream of their
        own so that the decision does not shift the params' draws.
        """
        params: dict[str, dict[str, Any]] = {}
        for m in self.members:
            sev = m.perturbation.severity
            stream, label = self._stream(m)
            entry: dict[str, Any] = {}
            if m.p < 1.0:
                applied = bool(rng_for(seed, stream, label + "/p", sev, image_id).random() < m.p)
                entry["applied"] = applied
                if not applied:
                    params[m.key] = entry
                    continue
            drawn = m.perturbation.sample_params(
                rng_for(seed, stream, label, sev, image_id), tuple(shape)
            )
            entry.update(jsonable(drawn, f"{self.name}/{m.key}"))
            params[m.key] = entry
        return params

    def apply_params(
        self, image: np.ndarray, mask: np.ndarray | None, params: dict[str, dict[str, Any]]
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Apply recorded params (from :meth:`sample`) to an image and optional mask.

        Consecutive affine members with the same border rule are composed into a single
        warp (one interpolation, no blur build-up); everything else runs in order.
        """
        from shiftbench.transforms.geometric import AffinePerturbation, warp

        _check_inputs(image, mask)
        out_img, out_mask = image, mask
        pending: list[np.ndarray] = []  # matrices of the current affine run
        border = ""

        def flush() -> None:
            nonlocal out_img, out_mask, pending
            if pending:
                total = np.eye(3)
                for mat in pending:
                    total = mat @ total
                out_img = warp(out_img, total, nearest=False, border=border)
                if out_mask is not None:
                    out_mask = warp(out_mask, total, nearest=True, border=border)
                pending = []

        for m in self.members:
            p = dict(params.get(m.key, {}))
            if not p.pop("applied", True):
                continue
            pert = m.perturbation
            if isinstance(pert, AffinePerturbation):
                if pending and pert.border != border:
                    flush()
                border = pert.border
                pending.append(pert.matrix(out_img.shape, **p))
                continue
            flush()
            out_img = pert.apply(out_img, **p)
            if out_mask is not None and pert.family == "geometric":
                out_mask = pert.apply_to_mask(out_mask, **p)
        flush()
        if out_img is image:
            out_img = image.copy()
        if out_mask is not None and out_mask is mask:
            out_mask = mask.copy()
        return out_img, out_mask

    def apply(
        self, image: np.ndarray, mask: np.ndarray | None = None, *, seed: int, image_id: str
    ) -> tuple[np.ndarray, np.ndarray | None, dict[str, dict[str, Any]]]:
        """Shift one image (``uint8 [H, W, 3]``) and its mask (``uint8 [H, W]`` in {0, 255}, or
        None). Returns new arrays and the JSON-serialisable params, which depend only on
        (suite, seed, image_id, severity)."""
        _check_inputs(image, mask)
        params = self.sample(seed=seed, image_id=str(image_id), shape=image.shape)
        out_img, out_mask = self.apply_params(image, mask, params)
        return out_img, out_mask, params


def _check_inputs(image: np.ndarray, mask: np.ndarray | None) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3:
        raise ValueError(
            f"image must be uint8 [H, W, C], got {getattr(image, 'dtype', type(image))} "
            f"{getattr(image, 'shape', '')}"
        )
    if mask is not None and (
        not isinstance(mask, np.ndarray) or mask.dtype != np.uint8 or mask.shape != image.shape[:2]
    ):
        raise ValueError(
            f"mask must be uint8 {image.shape[:2]}, got {getattr(mask, 'dtype', type(mask))} "
            f"{getattr(mask, 'shape', '')}"
        )


# --------------------------------------------------------------------------- loading


def _shipped_dir():
    return resources.files("shiftbench.transforms").joinpath(_SHIPPED)


def _shipped_names() -> list[str]:
    return sorted(
        p.name[: -len(".yaml")] for p in _shipped_dir().iterdir() if p.name.endswith(".yaml")
    )


def list_suites() -> list[tuple[str, str]]:
    """``(name, description)`` of every suite shipped with shiftbench."""
    rows = []
    for name in _shipped_names():
        spec = (
            yaml.safe_load(_shipped_dir().joinpath(f"{name}.yaml").read_text(encoding="utf-8"))
            or {}
        )
        rows.append((name, str(spec.get("description", "")).strip()))
    return rows


def load_suite(name_or_path: str | Path, severity: int | None = None) -> Suite:
    """A shipped suite by name (``mvtec-shift``, ``geometric``, ``photometric``,
    ``illumination``) or a YAML file by path.

    ``severity`` (0-5) replaces the level of every member, to draw degradation curves.
    Bad files, names and values raise :class:`ShiftbenchError` naming the file and key.
    """
    if severity is not None:
        severity = check_severity(severity, "--severity")
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise ShiftbenchError(
                f"{path}: suite file not found; pass a YAML file or one of: {', '.join(_shipped_names())}"
            )
        try:
            spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ShiftbenchError(
                f"{path}: not valid YAML ({str(exc).splitlines()[0]}); fix the file"
            ) from None
        return suite_from_dict(spec, source=str(path), default_name=path.stem, severity=severity)
    if text not in _shipped_names():
        from shiftbench._registry import suggest

        close = suggest(text, _shipped_names())
        hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
        raise ShiftbenchError(
            f"unknown suite {text!r}; {hint}shipped suites: {', '.join(_shipped_names())} (or pass a path to a YAML file)"
        )
    spec = yaml.safe_load(_shipped_dir().joinpath(f"{text}.yaml").read_text(encoding="utf-8"))
    return suite_from_dict(spec, source=f"shiftbench:{text}", default_name=text, severity=severity)


def suite_from_dict(
    spec: Any, *, source: str = "<dict>", default_name: str = "custom", severity: int | None = None
) -> Suite:
    """Build a :class:`Suite` from its parsed YAML mapping (see the module docstring)."""
    if not isinstance(spec, dict):
        raise ShiftbenchError(f"{source}: a suite must be a mapping with a 'perturbations' list")
    unknown = set(spec) - {"name", "description", "severity", "perturbations", "each"}
    if unknown:
        raise ShiftbenchError(
            f"{source}: unknown key(s) {sorted(unknown)}; allowed: name, description, severity, perturbations, each"
        )
    name = str(spec.get("name") or default_name)
    default = spec.get("severity", DEFAULT_SEVERITY)
    default = check_severity(default, f"{source}: severity")
    items = spec.get("perturbations")
    if not isinstance(items, list) or not items:
        raise ShiftbenchError(
            f"{source}: 'perturbations' must be a non-empty list of names or mappings"
        )
    members: list[Member] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        where = f"{source}: perturbations[{i}]"
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, dict) or "name" not in item:
            raise ShiftbenchError(f"{where}: give a perturbation name or a mapping with 'name'")
        extra = set(item) - {"name", "p", "severity", "options"}
        if extra:
            raise ShiftbenchError(
                f"{where}: unknown key(s) {sorted(extra)}; allowed: name, p, severity, options"
            )
        pname = str(item["name"])
        level = (
            severity
            if severity is not None
            else check_severity(item.get("severity", default), f"{where}.severity")
        )
        p = item.get("p", 1.0)
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= float(p) <= 1.0:
            raise ShiftbenchError(f"{where}.p: {p!r} is not a probability; use a number in [0, 1]")
        options = item.get("options") or {}
        if not isinstance(options, dict):
            raise ShiftbenchError(f"{where}.options: must be a mapping of option names to values")
        try:
            perturbation = create(pname, severity=level, **options)
        except ShiftbenchError as exc:
            raise ShiftbenchError(f"{where}: {exc}") from None
        seen[pname] = seen.get(pname, 0) + 1
        key = pname if seen[pname] == 1 else f"{pname}#{seen[pname]}"
        members.append(Member(key=key, perturbation=perturbation, p=float(p)))
    each = spec.get("each", False)
    if not isinstance(each, bool):
        raise ShiftbenchError(f"{source}: each: {each!r} is not a boolean; use true or false")
    return Suite(
        name,
        members,
        description=str(spec.get("description", "")).strip(),
        severity=severity if severity is not None else default,
        source=source,
        each=each,
    )
