"""The perturbation contract: sample parameters from a given RNG, then apply them.

A perturbation draws *all* of its randomness in :meth:`Perturbation.sample_params`
from the generator it is handed; :meth:`~Perturbation.apply` and
:meth:`~Perturbation.apply_to_mask` are pure functions of the array and the params. The
generator comes from :func:`rng_for`, which depends only on (seed, suite, perturbation,
severity, image id) through a stable digest, so an image's shift never depends on call
order, batch composition or worker count.

Images are ``uint8 [H, W, 3]`` RGB, masks ``uint8 [H, W]`` in {0, 255}.
"""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from shiftbench._hashing import canonical_json as canonical_json  # re-exported
from shiftbench._hashing import stable_int
from shiftbench.errors import ShiftbenchError

#: Severity levels every perturbation accepts: 0 is the identity, 3 the proposal's ranges.
SEVERITIES: tuple[int, ...] = (0, 1, 2, 3, 4, 5)
DEFAULT_SEVERITY = 3

#: Families a suite knows how to treat. Geometric ones move the mask; the others must not.
FAMILIES: tuple[str, ...] = ("geometric", "photometric", "illumination", "sensor", "other")


@functools.lru_cache(maxsize=65536)
def stable_hash(value: str | int) -> int:
    """A 64-bit unsigned digest of ``value`` that is the same in every process and on every
    machine (Python's ``hash`` is salted per process, so it cannot seed anything)."""
    return stable_int(value, 8, "little")


def rng_for(seed: int, suite: str, name: str, severity: int, image_id: str) -> np.random.Generator:
    """The generator of one perturbation for one image.

    Depends only on its arguments, never on order or process; different perturbations of
    the same suite get independent streams.
    """
    return np.random.default_rng(
        np.random.SeedSequence(
            [
                int(seed) & 0xFFFFFFFFFFFFFFFF,
                stable_hash(suite),
                stable_hash(name),
                int(severity),
                stable_hash(image_id),
            ]
        )
    )


def check_severity(severity: Any, where: str) -> int:
    """Validate a severity level; ``where`` names its source for the error message."""
    if (
        isinstance(severity, bool)
        or not isinstance(severity, (int, np.integer))
        or int(severity) not in SEVERITIES
    ):
        raise ShiftbenchError(
            f"{where}: severity {severity!r} is not a level; use an integer from {SEVERITIES[0]} to {SEVERITIES[-1]}"
        )
    return int(severity)


def jsonable(params: dict[str, Any], where: str = "params") -> dict[str, Any]:
    """Return ``params`` with numpy scalars turned into Python numbers; raise ``TypeError``
    naming the key if a value cannot be written as JSON (arrays, objects, NaN)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        out[str(key)] = _plain(value, f"{where}[{key!r}]")
    return out


def _plain(value: Any, where: str) -> Any:
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        if not math.isfinite(value):
            raise TypeError(f"{where} = {value}: params must be finite numbers")
        return value
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return jsonable(value, where)
    raise TypeError(
        f"{where} has type {type(value).__name__}: params must be JSON-serialisable "
        "(numbers, strings, bools, lists, dicts); store a seed instead of an array"
    )


class Perturbation(ABC):
    """One shift operation with a severity level.

    Subclasses set the class attributes ``name`` and ``family`` and implement
    :meth:`sample_params` (all randomness, from the given generator) and :meth:`apply`
    (pure). Severity 0 must be the identity. Extra keyword options of ``__init__`` are
    part of the suite definition (and its hash) — keep them JSON-serialisable.
    """

    name: ClassVar[str]
    family: ClassVar[str]
    #: Bump when the implementation changes its output for the same params; enters the suite hash.
    version: ClassVar[int] = 1

    def __init__(self, severity: int = DEFAULT_SEVERITY, **options: Any) -> None:
        self.severity = check_severity(
            severity, f"perturbation {getattr(self, 'name', type(self).__name__)!r}"
        )
        if options:
            raise ShiftbenchError(
                f"perturbation {self.name!r}: unknown options {sorted(options)}; it takes none"
            )

    @property
    def options(self) -> dict[str, Any]:
        """The constructor options besides severity (JSON-serialisable); part of the suite hash."""
        return {}

    @abstractmethod
    def sample_params(self, rng: np.random.Generator, shape: tuple[int, ...]) -> dict[str, Any]:
        """Draw this perturbation's parameters for one image.

        ``shape`` is the image shape ``(H, W, 3)``. All randomness comes from ``rng``; the
        returned dict must be JSON-serialisable. Prefer sizes relative to the image, so the
        same params shift the image at any resolution.
        """

    @abstractmethod
    def apply(self, image: np.ndarray, **params: Any) -> np.ndarray:
        """Apply ``params`` to an ``uint8 [H, W, 3]`` image; returns a new ``uint8`` array of
        the same shape and never modifies ``image``."""

    def apply_to_mask(self, mask: np.ndarray, **params: Any) -> np.ndarray:
        """Apply ``params`` to an ``uint8 [H, W]`` {0, 255} mask. Non-geometric perturbations
        leave the mask alone by construction."""
        return mask

    def __call__(
        self, image: np.ndarray, mask: np.ndarray | None = None, *, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
        """Sample params from ``rng`` and apply them to image and mask (convenience)."""
        params = self.sample_params(rng, image.shape)
        image_out = self.apply(image, **params)
        mask_out = None if mask is None else self.apply_to_mask(mask, **params)
        return image_out, mask_out, jsonable(params, self.name)

    def describe(self) -> dict[str, Any]:
        """Canonical definition (for suite hashes and manifests)."""
        return {
            "name": self.name,
            "family": self.family,
            "version": int(self.version),
            "severity": self.severity,
            "options": jsonable(self.options, self.name),
        }

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}(severity={self.severity}{extra})"


class GeometricPerturbation(Perturbation):
    """A perturbation that moves pixels, so it must move the mask with the same params.

    A concrete subclass that does not define :meth:`apply_to_mask` is refused when the
    class is created: forgetting it would silently misalign every ground-truth mask.
    """

    family: ClassVar[str] = "geometric"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # An intermediate base class may opt out by setting ``_abstract_geometric = True``.
        if cls.__dict__.get("_abstract_geometric", False):
            return
        if (
            getattr(cls.apply_to_mask, "__isabstractmethod__", False)
            or cls.apply_to_mask is Perturbation.apply_to_mask
        ):
            raise TypeError(
                f"{cls.__module__}.{cls.__qualname__}: a geometric perturbation must define "
                "apply_to_mask(mask, **params) that moves the mask with the same params "
                "(nearest-neighbour, values stay in {0, 255})"
            )

    @abstractmethod
    def apply_to_mask(self, mask: np.ndarray, **params: Any) -> np.ndarray:
        """Move the mask exactly as :meth:`apply` moves the image (nearest-neighbour)."""
