"""Input checks shared by the metric functions.

Metrics are the last step before numbers go into a paper, so an undefined input (a NaN score,
shapes that disagree, no anomalous region) stops with a message that names the function, the
argument and the problem instead of producing a plausible-looking number.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np
from sklearn.exceptions import UndefinedMetricWarning

from shiftbench.errors import ShiftbenchError


class MetricInputError(ShiftbenchError, ValueError):
    """Metric inputs that make the metric undefined; also a ``ValueError`` for library users."""


def check_image_inputs(labels, scores, func: str) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(labels bool [N], scores float [N])`` or raise :class:`MetricInputError`."""
    y = np.asarray(labels)
    s = np.asarray(scores)
    if y.ndim != 1 or s.ndim != 1:
        raise MetricInputError(
            f"{func}: labels and scores must be 1-D, got shapes {y.shape} and {s.shape}"
        )
    if y.shape != s.shape:
        raise MetricInputError(
            f"{func}: labels ({y.size}) and scores ({s.size}) have different lengths"
        )
    if y.size == 0:
        raise MetricInputError(f"{func}: no images (labels and scores are empty)")
    if y.dtype != bool:
        if not np.issubdtype(y.dtype, np.number) or not np.isin(y, (0, 1)).all():
            bad = [v for v in np.unique(y) if v not in (0, 1)][:5]
            raise MetricInputError(
                f"{func}: labels must be 0 (normal) or 1 (anomalous), found {bad}"
            )
        y = y.astype(bool)
    if not np.issubdtype(s.dtype, np.number) or np.issubdtype(s.dtype, np.complexfloating):
        raise MetricInputError(f"{func}: scores must be real numbers, got dtype {s.dtype}")
    if not np.issubdtype(s.dtype, np.floating):
        s = s.astype(np.float64)
    if not np.isfinite(s).all():
        n_bad = int(np.count_nonzero(~np.isfinite(s)))
        raise MetricInputError(
            f"{func}: {n_bad} of {s.size} scores are NaN or infinite; fix the model output "
            "(metrics are undefined on them)"
        )
    return y, s


def one_class(y: np.ndarray, func: str) -> bool:
    """Warn (like scikit-learn) and return True when ``y`` holds only one class."""
    n_pos = int(np.count_nonzero(y))
    if 0 < n_pos < y.size:
        return False
    which = "anomalous" if n_pos else "normal"
    warnings.warn(
        f"{func}: all {y.size} images are {which}; the metric is undefined, returning NaN",
        UndefinedMetricWarning,
        stacklevel=3,
    )
    return True


def check_pixel_inputs(maps, masks, func: str) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(maps [N,H,W] float, masks [N,H,W])`` as arrays, or raise.

    ``maps`` keep their floating dtype (no copy); integer maps become float64. A single
    2-D map/mask pair is treated as ``N = 1``. Values are checked per image later
    (:func:`iter_images`), so that no full-size temporary is made here.
    """
    m = np.asarray(maps)
    g = np.asarray(masks)
    if m.ndim == 2:
        m = m[None]
    if g.ndim == 2:
        g = g[None]
    if m.ndim != 3:
        raise MetricInputError(f"{func}: maps must be [N, H, W], got shape {np.shape(maps)}")
    if m.shape != g.shape:
        raise MetricInputError(
            f"{func}: maps {m.shape} and masks {g.shape} differ in shape; resize the masks "
            "(nearest) or the maps to the same resolution"
        )
    if m.size == 0:
        raise MetricInputError(f"{func}: no pixels (maps have shape {m.shape})")
    if not np.issubdtype(m.dtype, np.number) or np.issubdtype(m.dtype, np.complexfloating):
        raise MetricInputError(f"{func}: maps must be real numbers, got dtype {m.dtype}")
    if not np.issubdtype(m.dtype, np.floating):
        m = m.astype(np.float64)
    if not (g.dtype == bool or np.issubdtype(g.dtype, np.number)):
        raise MetricInputError(f"{func}: masks must be bool or numeric, got dtype {g.dtype}")
    return m, g


def iter_images(maps: np.ndarray, masks: np.ndarray, func: str) -> Iterator[tuple]:
    """Yield ``(index, map [H,W], anomalous bool [H,W])``, checking each map is finite."""
    for i in range(maps.shape[0]):
        mp = maps[i]
        if not np.isfinite(mp).all():
            raise MetricInputError(
                f"{func}: map {i} contains NaN or infinite values; fix the model output "
                "(pixel metrics are undefined on them)"
            )
        yield i, mp, masks[i] != 0


def check_threshold(threshold, func: str) -> float:
    """Return the threshold as a float; a NaN threshold (from a one-class calibration) warns."""
    try:
        t = float(threshold)
    except (TypeError, ValueError):
        raise MetricInputError(f"{func}: threshold must be a number, got {threshold!r}") from None
    if np.isnan(t):
        warnings.warn(
            f"{func}: threshold is NaN (its calibration data held one class); returning NaN",
            UndefinedMetricWarning,
            stacklevel=3,
        )
    return t
