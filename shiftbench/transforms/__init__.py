"""Shifted twins: deterministic, severity-graded perturbations that move the mask with the image.

Public API::

    from shiftbench.transforms import load_suite
    suite = load_suite("mvtec-shift", severity=3)
    image2, mask2, params = suite.apply(image, mask, seed=0, image_id="bottle/test/crack/000")

or in one call, by perturbation or suite name (``(image, mask)`` back when a mask is given)::

    from shiftbench.transforms import shift
    image2 = shift(image, "gaussian_blur", severity=4, seed=0, image_id="bottle/000")

Write a perturbation by subclassing :class:`Perturbation` (or :class:`GeometricPerturbation`,
which must also move the mask) and registering it with :func:`register` or through the
``shiftbench.perturbations`` entry-point group; check it with
:func:`shiftbench.testing.check_perturbation`.
"""

from shiftbench.transforms._shift import shift
from shiftbench.transforms.base import (
    SEVERITIES,
    GeometricPerturbation,
    Perturbation,
    rng_for,
    stable_hash,
)
from shiftbench.transforms.registry import get_perturbation, list_perturbations, register
from shiftbench.transforms.suites import Suite, list_suites, load_suite

__all__ = [
    "SEVERITIES",
    "GeometricPerturbation",
    "Perturbation",
    "Suite",
    "get_perturbation",
    "list_perturbations",
    "list_suites",
    "load_suite",
    "register",
    "rng_for",
    "shift",
    "stable_hash",
]
