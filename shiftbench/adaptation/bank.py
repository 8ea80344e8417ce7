"""``bank-extend``: add the k target normals to a memory bank or a Gaussian, refit nothing.

Memory-bank models (native and anomalib PatchCore; Roth et al. 2022) score a patch by its
distance to the nearest bank patch, so adding the target normals' patch features to the
bank makes every target-normal-like patch nominal (the update of continual and few-shot
PatchCore variants, e.g. Li et al., "Towards Total Online Unsupervised Anomaly Detection
and Localization", 2024). All k images' patches are added (no coreset step), so with an
exact bank (``coreset_ratio=1``) the result is the refit on Train-clean plus the k images.

PaDiM (Defard et al. 2021) keeps a Gaussian per patch position; the k target embeddings
update it by the exact pooled (Chan et al. 1979) mean and covariance of the n clean
training images and the k target images:

    m = (n m1 + k m2) / (n + k)
    C = ((n - 1) C1 + S2 + n k / (n + k) (m1 - m2)(m1 - m2)^T) / (n + k - 1)

(``S2`` the target scatter about ``m2``), then PaDiM's ``+ 0.01 I`` and inverse: the
Gaussian a refit on Train-clean plus the k images would estimate.
"""

from __future__ import annotations

import copy

from shiftbench.adaptation.base import Adaptation, AdaptTarget
from shiftbench.adaptation.registry import register_adaptation

_MODELS = ("PatchCore", "AnomalibPatchCore", "AnomalibPadim")


@register_adaptation("bank-extend")
class BankExtend(Adaptation):
    """Add the k target normals' patch features to the memory bank (PaDiM: pooled Gaussian)."""

    target_data = "normal-k"
    changes_backbone = False
    threshold = "val-clean"
    models = "patchcore, anomalib-patchcore, anomalib-padim"

    def applies_to(self, model) -> str | None:
        if type(model).__name__ not in _MODELS:
            return "it has no memory bank or per-position Gaussian"
        return None

    def adapt(self, model, target: AdaptTarget):
        kind = type(model).__name__
        if kind == "PatchCore":
            return _extend_native(model, target.images)
        if kind == "AnomalibPatchCore":
            return _extend_anomalib_patchcore(model, target.images)
        return _extend_padim(model, target.images)


def _extend_native(model, images):
    import torch

    from shiftbench.models.features import features

    feats = features(model, images)
    patches = torch.cat([model._flat(b) for b in feats.batches])
    adapted = copy.copy(model)  # shares the backbone (unchanged), gets its own bank
    adapted.memory_bank_ = torch.cat([model.memory_bank_, patches]).contiguous()
    adapted._index_bank()
    adapted.n_fit_images_ = model.n_fit_images_ + len(images)
    return adapted


def _embeddings(model, images, embed):
    """``embed(x)`` of each batch of prepared images, concatenated."""
    import torch

    from shiftbench.models.device import numerics

    x = model._prepare(images).to(model._run_device)
    with torch.inference_mode(), numerics(model._run_device):
        return torch.cat([embed(b) for b in model._batches(x)])


def _extend_anomalib_patchcore(model, images):
    import torch

    inner = model.model_

    def embed(b):
        feats = inner.feature_extractor(b)
        feats = {k: inner.feature_pooler(v) for k, v in feats.items()}
        return inner.reshape_embedding(inner.generate_embedding(feats))

    patches = _embeddings(model, images, embed)
    adapted = copy.copy(model)
    adapted.model_ = copy.deepcopy(inner)
    adapted.model_.memory_bank = torch.cat([inner.memory_bank, patches]).contiguous()
    adapted.n_fit_images_ = model.n_fit_images_ + len(images)
    return adapted


def _extend_padim(model, images):
    import torch

    inner = model.model_

    def embed(b):
        return inner.generate_embedding(inner.feature_extractor(b))

    emb = _embeddings(model, images, embed).double()  # [k, C, H, W]
    k, c = emb.shape[:2]
    x = emb.reshape(k, c, -1).permute(2, 0, 1)  # [HW, k, C]
    n = model.n_fit_images_
    m1 = inner.gaussian.mean.double().T  # [HW, C]
    eye = torch.eye(c, dtype=torch.float64, device=emb.device)
    c1 = torch.linalg.inv(inner.gaussian.inv_covariance.double()) - 0.01 * eye
    m2 = x.mean(1)
    centred = x - m2[:, None]
    s2 = centred.transpose(1, 2) @ centred
    d = (m1 - m2)[:, :, None]
    cov = ((n - 1) * c1 + s2 + n * k / (n + k) * (d @ d.transpose(1, 2))) / (n + k - 1)
    adapted = copy.copy(model)
    adapted.model_ = copy.deepcopy(inner)
    dtype = inner.gaussian.mean.dtype
    adapted.model_.gaussian.mean = ((n * m1 + k * m2) / (n + k)).T.to(dtype).contiguous()
    adapted.model_.gaussian.inv_covariance = torch.linalg.inv(cov + 0.01 * eye).to(dtype)
    adapted.n_fit_images_ = n + k
    return adapted
