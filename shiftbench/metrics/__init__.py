"""Image- and pixel-level metrics with the definitions the field uses.

Image level (:mod:`.image`): ``image_auroc``, ``image_auprc`` (average precision),
``f1_optimal_threshold`` (calibration on validation data), ``threshold_metrics`` (F1,
precision, recall, accuracy and counts at a threshold), ``f1_max`` (the oracle).
Pixel level (:mod:`.pixel`, :mod:`.pro`): ``pixel_auroc``, ``pixel_f1``,
``pixel_f1_optimal_threshold``, ``aupro`` and ``pro_curve`` (official MVTec AD PRO).

Everywhere: higher score = more anomalous; the decision rule is ``score >= threshold``;
undefined inputs raise :class:`MetricInputError` (a ``ShiftbenchError`` and a ``ValueError``);
image-level ranking metrics on one class only warn and return NaN; F1 at a threshold is NaN
(not 0.0) without anomalous images. These are the only definitions: the analysis code
(``shiftbench.analysis.stats``, ``.transfer``) calls these functions, and its vectorised
bootstrap versions (:mod:`._weighted`) are tested equal to them.
"""

from shiftbench.metrics._checks import MetricInputError
from shiftbench.metrics.image import (
    f1_max,
    f1_optimal_threshold,
    image_auprc,
    image_auroc,
    threshold_metrics,
)
from shiftbench.metrics.pixel import pixel_auroc, pixel_f1, pixel_f1_optimal_threshold
from shiftbench.metrics.pro import aupro, pro_curve

__all__ = [
    "MetricInputError",
    "aupro",
    "f1_max",
    "f1_optimal_threshold",
    "image_auprc",
    "image_auroc",
    "pixel_auroc",
    "pixel_f1",
    "pixel_f1_optimal_threshold",
    "pro_curve",
    "threshold_metrics",
]
