"""Reusable features: score the same images again without a second forward pass.

A model that implements two hooks, ``_embed_batch(x) -> features [B, ...]`` (normalised
images in, backbone features out) and ``_score_embedding(features) -> (scores [B], maps
[B, S, S])`` with ``_score_batch(x) == _score_embedding(_embed_batch(x))``, supports
:func:`features` and :func:`score_features`. Adaptation strategies that leave the backbone
alone (a memory bank extended, features re-aligned, a threshold re-picked) then score the
test images from the features the clean model already computed; batches are exactly
:meth:`~shiftbench.models.base.AnomalyModel.score`'s, so the results are bit-identical.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from shiftbench.errors import ShiftbenchError
from shiftbench.models.base import _check_images
from shiftbench.models.device import numerics


class Features:
    """Features of a batch of images: the per-batch tensors and the images' ``(H, W)``,
    which :func:`score_features` resizes the maps back to."""

    def __init__(self, batches: list[torch.Tensor], size: tuple[int, int]) -> None:
        self.batches = batches
        self.size = size

    def __len__(self) -> int:
        return sum(len(b) for b in self.batches)

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Features:
        """The same features with ``fn`` applied to each batch tensor."""
        return Features([fn(b) for b in self.batches], self.size)

    def flat(self) -> torch.Tensor:
        """All batches as one tensor ``[N, ...]``."""
        return torch.cat(self.batches)


def has_features(model) -> bool:
    """Whether ``model`` implements the feature hooks (see the module docstring)."""
    return callable(getattr(model, "_embed_batch", None)) and callable(
        getattr(model, "_score_embedding", None)
    )


def features(model, images: np.ndarray) -> Features:
    """The features of images ``uint8 [N,H,W,3]``, batched as ``model.score`` batches."""
    model._check_fitted("features")
    if not has_features(model):
        raise ShiftbenchError(f"model {model.name!r} has no feature API (_embed_batch)")
    images = _check_images(images, "features")
    device = model._run_device
    batches = []
    with torch.random.fork_rng(devices=[]), torch.inference_mode(), numerics(device):
        torch.manual_seed(model.seed)
        bs = model.resolved_batch_size
        for start in range(0, len(images), bs):
            x = model._prepare(images[start : start + bs]).to(device)
            batches.append(model._embed_batch(x))
    return Features(batches, tuple(images.shape[1:3]))


def score_features(model, feats: Features) -> tuple[np.ndarray, np.ndarray]:
    """``model.score(images)`` from ``features(model, images)``: raw scores ``float64 [N]``
    and maps ``float32 [N,H,W]`` at the images' resolution."""
    model._check_fitted("score_features")
    h, w = feats.size
    n = len(feats)
    scores = np.empty(n, np.float64)
    maps = np.empty((n, h, w), np.float32)
    device = model._run_device
    with torch.random.fork_rng(devices=[]), torch.inference_mode(), numerics(device):
        torch.manual_seed(model.seed)
        start = 0
        for emb in feats.batches:
            s, m = model._score_embedding(emb)
            if m.shape[-2:] != (h, w):
                m = F.interpolate(
                    m[:, None].float(), size=(h, w), mode="bilinear", align_corners=False
                )[:, 0]
            scores[start : start + len(emb)] = s.double().cpu().numpy()
            maps[start : start + len(emb)] = m.float().cpu().numpy()
            start += len(emb)
    return scores, maps
