"""Refits: the full one (the upper bound) and one on Train-clean plus k target normals."""

from __future__ import annotations

import numpy as np

from shiftbench.adaptation.base import Adaptation, AdaptTarget, clone_unfitted
from shiftbench.adaptation.registry import register_adaptation


@register_adaptation("refit")
class Refit(Adaptation):
    """Refit on the whole Train-shift and threshold on Val-shift (the upper bound).

    Today's ``shift-adapt`` (Quiñonero-Candela et al., "Dataset Shift in Machine Learning",
    2009: training on the target distribution): every normal training image of the new
    setup, and a labelled shifted validation split with anomalies. No plant has that, so
    it is the reference the cheap strategies are measured against (gap closed)."""

    target_data = "train-shift"
    changes_backbone = True
    threshold = "val-shift"

    def adapt(self, model, target: AdaptTarget):
        return clone_unfitted(model).fit(target.images)


@register_adaptation("refit-k")
class RefitK(Adaptation):
    """Refit on Train-clean plus the k target normals; threshold on Val-clean.

    The naive fine-tuning baseline of few-shot domain adaptation: the same fit, its
    training set enlarged by k verified-good parts of the new setup."""

    target_data = "normal-k"
    changes_backbone = True
    threshold = "val-clean"

    def adapt(self, model, target: AdaptTarget):
        if target.source_images is None:
            raise ValueError("refit-k needs the Train-clean images (AdaptTarget.source_images)")
        return clone_unfitted(model).fit(np.concatenate([target.source_images, target.images]))
