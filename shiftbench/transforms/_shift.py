"""``shift(image, name_or_suite, severity)``: one call, like imagecorruptions' ``corrupt``."""

from __future__ import annotations

from pathlib import Path
from typing import overload

import numpy as np

from shiftbench._registry import UnknownNameError, suggest
from shiftbench.errors import ShiftbenchError
from shiftbench.transforms.base import DEFAULT_SEVERITY, check_severity
from shiftbench.transforms.registry import known_names
from shiftbench.transforms.suites import (
    Suite,
    _check_inputs,
    list_suites,
    load_suite,
    suite_from_dict,
)


def resolve(name_or_suite: str | Path, severity: int = DEFAULT_SEVERITY) -> Suite:
    """The :class:`Suite` :func:`shift` applies for ``name_or_suite`` at ``severity``.

    A registered perturbation name ``X`` (built-in or plugin) is the one-member suite named
    ``X``; anything else is :func:`load_suite`'s (a shipped suite name or a YAML path). A
    perturbation name wins over a shipped suite of the same name — for ``illumination``
    both are the same suite anyway.
    """
    if not isinstance(name_or_suite, (str, Path)):
        hint = (
            "; for a Suite object call suite.apply(...)" if isinstance(name_or_suite, Suite) else ""
        )
        raise TypeError(
            "name_or_suite must be a perturbation name, a suite name or a suite YAML path, "
            f"got {type(name_or_suite).__name__}{hint}"
        )
    severity = check_severity(severity, "shift()")
    text = str(name_or_suite)
    perturbations = known_names()
    if isinstance(name_or_suite, str) and text in perturbations:
        return suite_from_dict(
            {"name": text, "perturbations": [text]},
            source=f"perturbation {text!r}",
            severity=severity,
        )
    suites = [name for name, _ in list_suites()]
    path = Path(text).expanduser()
    if text in suites or isinstance(name_or_suite, Path) or path.suffix in (".yaml", ".yml"):
        return load_suite(name_or_suite, severity=severity)
    if path.is_file():
        return load_suite(path, severity=severity)
    close = suggest(text, [*perturbations, *suites])
    hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    raise UnknownNameError(
        f"unknown perturbation or suite {text!r}; {hint}perturbations: {', '.join(perturbations)}; "
        f"suites: {', '.join(suites)} (or pass a path to a suite YAML file)"
    )


@overload
def shift(
    image: np.ndarray,
    name_or_suite: str | Path,
    severity: int = ...,
    *,
    seed: int = ...,
    image_id: str = ...,
    mask: None = ...,
) -> np.ndarray: ...
@overload
def shift(
    image: np.ndarray,
    name_or_suite: str | Path,
    severity: int = ...,
    *,
    seed: int = ...,
    image_id: str = ...,
    mask: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]: ...
def shift(
    image: np.ndarray,
    name_or_suite: str | Path,
    severity: int = DEFAULT_SEVERITY,
    *,
    seed: int = 0,
    image_id: str = "",
    mask: np.ndarray | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Shift one image by a perturbation or a suite, in one call::

        from shiftbench.transforms import shift
        out = shift(image, "gaussian_blur", severity=4)
        out, out_mask = shift(image, "mvtec-shift", 3, seed=1, image_id="bottle/000", mask=mask)

    ``image`` is ``uint8 [H, W, 3]`` RGB; ``mask`` (optional) ``uint8 [H, W]`` in {0, 255},
    moved with the image by geometric perturbations. ``name_or_suite`` is a registered
    perturbation name, a shipped suite name or a path to a suite YAML file (see
    :func:`resolve`); ``severity`` 0-5 sets every member (0 is the identity).

    Returns a new shifted image, or ``(image, mask)`` when a mask is given. The output is
    exactly ``Suite.apply`` of the resolved suite: it depends only on (name, severity,
    ``seed``, ``image_id``), so give each image its own ``image_id`` for independent draws;
    use ``load_suite(...).apply`` to also get the params. Bad inputs raise ``ValueError``
    (arrays), ``TypeError`` or :class:`~shiftbench.errors.ShiftbenchError` (names, levels).
    """
    _check_inputs(image, mask)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ShiftbenchError(f"shift(): seed {seed!r} must be a non-negative integer")
    suite = resolve(name_or_suite, severity)
    out, out_mask, _ = suite.apply(image, mask, seed=int(seed), image_id=str(image_id))
    return out if mask is None else (out, out_mask)
