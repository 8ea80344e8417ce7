"""``check_perturbation``: the contract every perturbation (built-in or plugin) must meet.

Run it in your plugin's tests::

    from shiftbench.testing import check_perturbation
    from my_package.hue import HueShift

    def test_contract():
        check_perturbation(HueShift)
"""

from __future__ import annotations

import json
import random
from typing import Any

import numpy as np

from shiftbench.errors import ShiftbenchError
from shiftbench.transforms.base import (
    FAMILIES,
    SEVERITIES,
    GeometricPerturbation,
    Perturbation,
    jsonable,
)

#: Minimum IoU between a painted marker and its mask after a geometric shift.
MARKER_IOU = 0.95


def _background(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A smooth grey texture in [60, 140] (so the marker stands out in every channel)."""
    import cv2

    h, w = shape
    noise = rng.random((max(2, h // 8), max(2, w // 8))).astype(np.float32)
    smooth = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    grey = (60 + 80 * smooth).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def marker_image(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A textured image with a pure red rectangle and its {0, 255} mask (test fixture)."""
    h, w = shape
    image = _background(rng, shape)
    mask = np.zeros(shape, np.uint8)
    mh, mw = int(rng.integers(h // 4, h // 2)), int(rng.integers(w // 4, w // 2))
    y0, x0 = int(rng.integers(h // 8, h - mh - h // 8)), int(rng.integers(w // 8, w - mw - w // 8))
    image[y0 : y0 + mh, x0 : x0 + mw] = (255, 0, 0)
    mask[y0 : y0 + mh, x0 : x0 + mw] = 255
    return image, mask


def red_pixels(image: np.ndarray) -> np.ndarray:
    """Where a shifted :func:`marker_image` is still red: R - G above the midpoint (127)."""
    return image[:, :, 0].astype(np.int16) - image[:, :, 1].astype(np.int16) > 127


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean arrays (1.0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def _fail(cls: type, rule: str) -> AssertionError:
    return AssertionError(f"{cls.__module__}.{cls.__qualname__}: {rule}")


def check_perturbation(
    cls: type[Perturbation],
    *,
    options: dict[str, Any] | None = None,
    shapes: tuple[tuple[int, int], ...] = ((64, 64), (48, 80)),
    draws: int = 4,
) -> list[str]:
    """Check a perturbation class against the shiftbench contract.

    Rules: a name and a known family; a geometric family means a
    :class:`GeometricPerturbation`; every severity 0-5 constructs and others are refused;
    params are JSON-serialisable, replay identically after a JSON round trip, and depend
    only on the generator (not on global ``random``/``np.random`` state); ``apply`` is pure
    (same bytes twice, input untouched) and returns ``uint8`` of the input's shape;
    severity 0 is the identity; non-geometric ones leave the mask alone; geometric ones
    keep masks in {0, 255}, empty masks empty and a painted marker aligned with its mask
    (IoU >= 0.95). ``options`` are passed to the constructor.

    Raises ``AssertionError`` naming the first broken rule; returns the rules checked.
    """
    options = dict(options or {})
    checked: list[str] = []
    family = _check_declaration(cls)
    checked.append("declaration")
    instances = _check_severities(cls, options)
    checked.append("severities")

    fixture_rng = np.random.default_rng(20240611)
    for shape in shapes:
        for draw in range(draws):
            image, mask = marker_image(fixture_rng, shape)
            for severity, pert in instances.items():
                _check_draw(cls, family, severity, pert, image, mask, draw)
    checked += ["params", "determinism", "purity", "identity at severity 0", "mask"]
    if family == "geometric":
        checked.append("marker alignment")
    return checked


def _check_declaration(cls: Any) -> str:
    """A Perturbation subclass with a name and a known family; returns the family."""
    if not (isinstance(cls, type) and issubclass(cls, Perturbation)):
        raise AssertionError(f"{cls!r} is not a subclass of shiftbench.transforms.Perturbation")
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        raise _fail(cls, "needs a non-empty string class attribute 'name'")
    family = getattr(cls, "family", None)
    if family not in FAMILIES:
        raise _fail(cls, f"family {family!r} is not one of {FAMILIES}")
    if family == "geometric" and not issubclass(cls, GeometricPerturbation):
        raise _fail(
            cls,
            "family 'geometric' must subclass GeometricPerturbation (so the mask moves with the image)",
        )
    return family


def _check_severities(cls: type, options: dict[str, Any]) -> dict[int, Perturbation]:
    """Out-of-range severities are refused; every level constructs and is stored as given."""
    for bad in (-1, SEVERITIES[-1] + 1):
        try:
            cls(severity=bad, **options)
        except (ShiftbenchError, ValueError):
            pass
        else:
            raise _fail(
                cls, f"severity {bad} was accepted; call super().__init__(severity) to validate it"
            )
    instances = {s: cls(severity=s, **options) for s in SEVERITIES}
    for s, inst in instances.items():
        if inst.severity != s:
            raise _fail(cls, f"severity {s} was stored as {inst.severity!r}")
    return instances


def _check_draw(
    cls: type,
    family: str,
    severity: int,
    pert: Perturbation,
    image: np.ndarray,
    mask: np.ndarray,
    draw: int,
) -> None:
    """Every per-draw rule for one instance on one marker image and its mask."""
    shape = mask.shape
    where = f"severity {severity}, image {shape[0]}x{shape[1]}, draw {draw}"
    params = _check_params(cls, pert, image.shape, draw, where)
    out = _check_apply(cls, pert, image, params, where)
    m_out = pert.apply_to_mask(mask.copy(), **params)
    if severity == 0:
        _check_identity(cls, image, out, mask, m_out, where)
    if family != "geometric":
        if not np.array_equal(m_out, mask):
            raise _fail(cls, f"a {family} perturbation must leave the mask unchanged ({where})")
        return
    _check_mask(cls, pert, mask, m_out, params, where)
    _check_geometric(cls, pert, out, m_out, params, where)


def _check_identity(
    cls: type, image: np.ndarray, out: Any, mask: np.ndarray, m_out: Any, where: str
) -> None:
    """Severity 0 leaves both the image and the mask unchanged."""
    if not np.array_equal(out, image):
        raise _fail(cls, f"severity 0 must be the identity, but the image changed ({where})")
    if not np.array_equal(m_out, mask):
        raise _fail(cls, f"severity 0 must be the identity, but the mask changed ({where})")


def _check_geometric(
    cls: type, pert: Perturbation, out: np.ndarray, m_out: np.ndarray, params: dict, where: str
) -> None:
    """An empty mask stays empty; the painted marker stays aligned with its moved mask."""
    shape = m_out.shape
    e_out = pert.apply_to_mask(np.zeros(shape, np.uint8), **params)
    if e_out.shape != shape or e_out.any():
        raise _fail(cls, f"an empty mask must stay empty ({where})")
    score = iou(red_pixels(out), m_out > 0)
    if score < MARKER_IOU:
        raise _fail(
            cls,
            f"painted marker and its mask no longer coincide: IoU {score:.3f} < {MARKER_IOU} ({where})",
        )


def _check_params(
    cls: type, pert: Perturbation, shape: tuple[int, ...], draw: int, where: str
) -> dict[str, Any]:
    state = np.random.get_state(), random.getstate()
    try:
        np.random.seed(1)
        random.seed(1)
        params = pert.sample_params(np.random.default_rng(draw), shape)
        np.random.seed(2)
        random.seed(2)
        again = pert.sample_params(np.random.default_rng(draw), shape)
    finally:
        np.random.set_state(state[0])
        random.setstate(state[1])
    if not isinstance(params, dict):
        raise _fail(cls, f"sample_params must return a dict, got {type(params).__name__} ({where})")
    try:
        plain = jsonable(params)
        text = json.dumps(plain, sort_keys=True)
        again_text = json.dumps(jsonable(again), sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise _fail(cls, f"params are not JSON-serialisable: {exc} ({where})") from None
    if text != again_text:
        raise _fail(
            cls,
            f"sample_params is not a function of the given rng alone (global random state?) ({where})",
        )
    return json.loads(text)  # apply must work from the recorded (JSON) params


def _check_apply(
    cls: type, pert: Perturbation, image: np.ndarray, params: dict, where: str
) -> np.ndarray:
    before = image.copy()
    out = pert.apply(image, **params)
    if not np.array_equal(image, before):
        raise _fail(cls, f"apply modified its input image in place ({where})")
    if not isinstance(out, np.ndarray) or out.dtype != np.uint8 or out.shape != image.shape:
        raise _fail(
            cls,
            f"apply must return uint8 {image.shape}, got {getattr(out, 'dtype', type(out))} "
            f"{getattr(out, 'shape', '')} ({where})",
        )
    if not np.array_equal(pert.apply(image, **params), out):
        raise _fail(
            cls,
            f"apply is not deterministic for fixed params; draw all randomness in sample_params ({where})",
        )
    return out


def _check_mask(
    cls: type, pert: Perturbation, mask: np.ndarray, m_out: Any, params: dict, where: str
) -> None:
    if not isinstance(m_out, np.ndarray) or m_out.dtype != np.uint8 or m_out.shape != mask.shape:
        raise _fail(cls, f"apply_to_mask must return uint8 {mask.shape} ({where})")
    if not np.isin(m_out, (0, 255)).all():
        raise _fail(
            cls, f"masks must stay in {{0, 255}}; use nearest-neighbour resampling ({where})"
        )
    if not np.array_equal(pert.apply_to_mask(mask.copy(), **params), m_out):
        raise _fail(cls, f"apply_to_mask is not deterministic for fixed params ({where})")
