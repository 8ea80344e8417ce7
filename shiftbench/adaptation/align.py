"""``feature-align``: map target features onto the source statistics; no refit.

Estimated from the k target normals' patch features (target) and the clean model's
features of the clean normal validation images (source), per channel c:

1. standardisation: ``z = (x - mu_t) / sd_t``;
2. CORAL (Sun, Feng and Saenko, "Return of Frustratingly Easy Domain Adaptation", AAAI
   2016): whiten with the target and re-colour with the source correlation, each
   regularised by the identity as in the paper: ``z' = z (R_t + I)^(-1/2) (R_s + I)^(1/2)``;
3. back to the source scale: ``x' = z' sd_s + mu_s``.

The adapted model applies this map to every feature it scores (the target images'), so
it is meant for target-domain images only: its threshold is the clean fit's (the map
brings target features to where that threshold was set). Feature API models only
(:mod:`shiftbench.models.features`); test features are reused, never recomputed.
"""

from __future__ import annotations

import copy

from shiftbench.adaptation.base import Adaptation, AdaptTarget
from shiftbench.adaptation.registry import register_adaptation


def _patches(feats):
    """``[N*h*w, D]`` patch features (channels second) of a Features object."""
    import torch

    return torch.cat([b.movedim(1, -1).reshape(-1, b.shape[1]) for b in feats.batches]).double()


def _sqrtm(matrix, inverse: bool = False):
    import torch

    vals, vecs = torch.linalg.eigh(matrix)
    vals = vals.clamp_min(1e-12)
    power = vals.rsqrt() if inverse else vals.sqrt()
    return (vecs * power) @ vecs.T


def alignment(source, target, coral: bool = True):
    """``(mu_t, sd_t, M, sd_s, mu_s)``: the affine map of the module docstring, from source
    and target patch features ``[n, D]`` (float64)."""
    import torch

    mu_s, mu_t = source.mean(0), target.mean(0)
    sd_s = source.std(0).clamp_min(1e-6)
    sd_t = target.std(0).clamp_min(1e-6)
    d = source.shape[1]
    if coral:
        eye = torch.eye(d, dtype=source.dtype, device=source.device)
        r_s = torch.corrcoef(((source - mu_s) / sd_s).T).nan_to_num() + eye
        r_t = torch.corrcoef(((target - mu_t) / sd_t).T).nan_to_num() + eye
        m = _sqrtm(r_t, inverse=True) @ _sqrtm(r_s)
    else:
        m = torch.eye(d, dtype=source.dtype, device=source.device)
    return mu_t, sd_t, m, sd_s, mu_s


class FeatureAligned:
    """Applies an alignment to features ``[B, D, h, w]`` (kept on the adapted model)."""

    def __init__(self, params) -> None:
        self.params = params

    def __call__(self, emb):
        mu_t, sd_t, m, sd_s, mu_s = self.params
        x = emb.movedim(1, -1).double()
        x = (((x - mu_t) / sd_t) @ m) * sd_s + mu_s
        return x.to(emb.dtype).movedim(-1, 1).contiguous()


@register_adaptation("feature-align")
class FeatureAlign(Adaptation):
    """Align target features to the source statistics (standardisation + CORAL), no refit."""

    target_data = "normal-k"
    changes_backbone = False
    threshold = "val-clean-source"
    models = "models with the feature API (patchcore)"
    coral = True

    def applies_to(self, model) -> str | None:
        from shiftbench.models.features import has_features

        if not has_features(model):
            return "it has no feature API (_embed_batch / _score_embedding)"
        return None

    def adapt(self, model, target: AdaptTarget):
        from shiftbench.models.features import features

        if target.source_features is None:
            raise ValueError("feature-align needs clean normal features (source_features)")
        source = _patches(target.source_features())
        tgt = _patches(features(model, target.images))
        transform = FeatureAligned(alignment(source, tgt, self.coral))
        adapted = copy.copy(model)
        inner = model._score_embedding

        def score_embedding(emb):
            return inner(transform(emb))

        def score_batch(x):
            return score_embedding(model._embed_batch(x))

        adapted._score_embedding = score_embedding
        adapted._score_batch = score_batch
        adapted.feature_transform_ = transform
        return adapted
