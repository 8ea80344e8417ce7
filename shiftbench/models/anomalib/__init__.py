"""anomalib models through their plain ``torch_model`` modules (anomalib 2.7).

We skip anomalib's Lightning ``Engine``: its post-processor min-max normalises and clamps
scores (ties under shift), and its datamodules validate on the test set. Each adapter
builds the torch model, routes our backbone weights into it, trains with the optimiser and
loss of anomalib's Lightning module (one shared loop, :meth:`_AnomalibModel._train`), and
returns the model's raw ``pred_score`` and ``anomaly_map``. anomalib is imported inside
the adapters only (importing it takes ~20 s). Every anomalib/timm/torch name they rely
on is listed in :mod:`shiftbench.models.anomalib.compat` (checked by
``tests/test_anomalib_compat.py``).

Backbone weights: models built on timm (PatchCore, PaDiM, FastFlow) are created with
``pre_trained=False`` and our weights are loaded into their timm feature extractor; STFPM
hard-codes a pretrained teacher, so it gets our weights as a timm ``local-dir:`` folder
(``config.json`` + ``model.safetensors``).

Offline fallbacks (named in ``input_config["offline_fallback"]``):

- EfficientAD: the pretrained PDN teacher and the Imagenette penalty images need a
  download. Without ``teacher_weights=PATH`` (or anomalib's cached teacher) the teacher is a
  seeded random PDN; without ``imagenet_dir=PATH`` the penalty term is dropped.
- DRAEM: without ``anomaly_source=PATH`` (a folder of DTD-like texture images) the
  synthetic anomalies are DRAEM's Perlin-noise patterns only.
"""

# registration order is the order `shiftbench list models` shows
# isort: off
from shiftbench.models.anomalib.patchcore import AnomalibPatchCore
from shiftbench.models.anomalib.padim import AnomalibPadim
from shiftbench.models.anomalib.fastflow import AnomalibFastflow
from shiftbench.models.anomalib.stfpm import AnomalibStfpm
from shiftbench.models.anomalib.efficientad import AnomalibEfficientAd
from shiftbench.models.anomalib.draem import AnomalibDraem
# isort: on

__all__ = [
    "AnomalibDraem",
    "AnomalibEfficientAd",
    "AnomalibFastflow",
    "AnomalibPadim",
    "AnomalibPatchCore",
    "AnomalibStfpm",
]
