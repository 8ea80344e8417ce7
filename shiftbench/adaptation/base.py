"""The adaptation contract: what a strategy reads, what it changes, who sets its threshold.

An :class:`Adaptation` turns a model fitted on the clean domain (Train-clean) plus some
*target data* into an adapted model. It declares:

- ``target_data``: ``none``; ``normal-k`` (k verified-normal target images, drawn per seed
  from the shift domain's training split Train-shift, never from validation or test);
  ``unlabelled-test`` (the unlabelled test images themselves: ``transductive``); or
  ``train-shift`` (the whole Train-shift: a full refit, the upper bound);
- ``changes_backbone``: whether the adapted model's features differ from the clean
  model's (then the test images need a new forward pass; otherwise their features are
  reused, see :mod:`shiftbench.models.features`);
- ``threshold``: which images set the adapted model's threshold, a key of
  :data:`THRESHOLD_RULES`. A strategy that sees only normal target images never
  thresholds on anomalous *shifted* validation images; only ``refit`` keeps Val-shift;
- ``applies_to(model)``: ``None`` or the reason it cannot adapt that model;
- ``adapt(model, target)``: a new adapted model; ``model`` is never changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

#: what a strategy may read of the target domain
TARGET_DATA = ("none", "normal-k", "unlabelled-test", "train-shift")

#: which images set an adapted model's image and pixel thresholds (one sentence each)
THRESHOLD_RULES = {
    "val-shift": "F1-optimal on Val-shift (labelled shifted validation images, anomalies "
    "included), as shift-adapt always did: an upper bound no plant has.",
    "val-clean": "F1-optimal on Val-clean (labelled clean validation images) scored by the "
    "adapted model; no shifted anomalous image is read.",
    "val-clean-source": "the clean fit's F1-optimal threshold on Val-clean: the adapted "
    "model maps target features into the source domain, where that threshold holds.",
    "normal-k": "from the k target normals' scores alone: their maximum for k < 4, their "
    "mean + 3 sd (ddof 1) for k >= 4; the pixel threshold applies the same rule to the "
    "maxima of their maps.",
}

#: the strategies of a study that does not choose (``shift-adapt`` as it always was)
DEFAULT_ADAPT = ("refit",)
#: the target-image budgets of a study that names strategies but no ``adapt_k``
DEFAULT_K = (1, 4, 16)


@dataclass
class AdaptTarget:
    """What a strategy may read of the target domain (``images`` as ``target_data`` says)
    and of the clean domain.

    ``source_images``: Train-clean (``refit-k`` fits on it plus the target normals);
    ``source_features``: a callable giving the clean model's features of clean *normal*
    images (Val-clean's normals), for strategies that match target to source statistics."""

    images: np.ndarray  # uint8 [N,H,W,3]
    sample_ids: tuple[str, ...] = ()
    source_images: np.ndarray | None = None
    source_features: Any = None  # () -> shiftbench.models.features.Features
    info: dict = field(default_factory=dict)


class Adaptation:
    """One adaptation strategy (subclass it, register it with ``@register_adaptation``)."""

    #: registry name (set by the registry)
    name: ClassVar[str] = ""
    target_data: ClassVar[str] = "normal-k"
    transductive: ClassVar[bool] = False
    changes_backbone: ClassVar[bool] = False
    threshold: ClassVar[str] = "val-clean"
    #: which models it adapts, in words (``shiftbench list adaptations``)
    models: ClassVar[str] = "any"

    @property
    def takes_k(self) -> bool:
        """Whether the strategy's condition has a budget ``k`` of target normals."""
        return self.target_data == "normal-k"

    @property
    def threshold_note(self) -> str:
        return THRESHOLD_RULES[self.threshold]

    def applies_to(self, model) -> str | None:
        """``None`` if the strategy can adapt ``model``, else why not (a short reason)."""
        return None

    def adapt(self, model, target: AdaptTarget):
        """A new model adapted with ``target``; ``model`` (fitted, clean) is left unchanged."""
        raise NotImplementedError

    def pick_threshold(self, scores: np.ndarray, maps: np.ndarray) -> tuple[float, float]:
        """Image and pixel thresholds from target normal scores and maps (used when
        ``threshold == "normal-k"``)."""
        return normal_threshold(scores), normal_threshold(maps.reshape(len(maps), -1).max(1))

    def record(self) -> dict[str, Any]:
        """The manifest's record of this strategy."""
        return {
            "target_data": self.target_data,
            "transductive": self.transductive,
            "threshold": self.threshold_note,
        }


def normal_threshold(values: np.ndarray) -> float:
    """The normal-only rule: ``max`` for fewer than 4 values, else ``mean + 3 sd``.

    With 1-3 normals a standard deviation is meaningless and the maximum is the only
    threshold that accepts every known-good part; from 4 on, mean + 3 sd (about the
    99.9th percentile of a Gaussian) sets a low false-alarm rate, as a plant would, and
    unlike the maximum it does not hinge on one image."""
    v = np.asarray(values, np.float64)
    if len(v) < 4:
        return float(v.max())
    return float(v.mean() + 3.0 * v.std(ddof=1))


def clone_unfitted(model):
    """A new, unfitted model with ``model``'s parameters (refits start from it)."""
    clone = type(model)(**model.get_params())
    clone.name = model.name
    return clone
