"""``recalibrate``: the model unchanged, the threshold re-picked from target normals alone.

The score scale of a model moves under a shift (brighter images, larger distances) even
when its ranking holds; re-thresholding on a few verified-good target parts fixes the
first and not the second, so comparing it with the other strategies separates "the scale
moved" from "the ranking broke". The rule (:func:`shiftbench.adaptation.base.
normal_threshold`): the maximum of the k normals' scores for k < 4, their mean + 3 sd
from k = 4 on — MVTec AD 2 (Heckler-Kram et al. 2025) likewise sets thresholds from
normal validation images only. No anomalous image, clean or shifted, is read.
"""

from __future__ import annotations

from shiftbench.adaptation.base import Adaptation, AdaptTarget
from shiftbench.adaptation.registry import register_adaptation


@register_adaptation("recalibrate")
class Recalibrate(Adaptation):
    """Threshold only: re-picked from the k target normals' scores (max; mean + 3 sd)."""

    target_data = "normal-k"
    changes_backbone = False
    threshold = "normal-k"

    def adapt(self, model, target: AdaptTarget):
        return model  # unchanged: only the threshold moves
