"""Batch-norm statistics re-estimated on target images: ``bn-adapt`` and ``test-bn``.

AdaBN (Li et al., "Revisiting Batch Normalization For Practical Domain Adaptation", 2016):
a network's domain knowledge sits in its batch-norm running statistics, so replacing them
with the target domain's adapts it without touching a weight. With few target images the
estimate is noisy; Schneider et al. ("Improving robustness against common corruptions by
covariate shift adaptation", NeurIPS 2020) mix source and target statistics with a prior
strength N:

    mu = (1 - a) mu_source + a mu_target,   var likewise,   a = n / (n + N)

for n target images (N = 16 here, their recommended order). Only the running mean and
variance of every ``torch.nn.modules.batchnorm._BatchNorm`` change; every weight, bias
and other buffer (``num_batches_tracked`` too) keeps its value. Target statistics are the
cumulative average over the model's batches of the batch statistics, computed layer after
layer in one forward pass (each layer normalised by its target batch statistics, as AdaBN
does); k <= 16 images fit one batch.
"""

from __future__ import annotations

import copy

from shiftbench.adaptation.base import Adaptation, AdaptTarget
from shiftbench.adaptation.registry import register_adaptation

#: prior strength N of the source statistics (Schneider et al. 2020)
PRIOR = 16


def _bn_layers(model) -> list:
    """Every batch-norm layer of the model's torch networks (attributes ending in ``_``)."""
    from torch import nn
    from torch.nn.modules.batchnorm import _BatchNorm

    out = []
    for name, value in vars(model).items():
        if name.endswith("_") and isinstance(value, nn.Module):
            out += [m for m in value.modules() if isinstance(m, _BatchNorm)]
    return out


def _networks(model) -> list:
    from torch import nn

    return [v for k, v in vars(model).items() if k.endswith("_") and isinstance(v, nn.Module)]


def adapt_batchnorm(model, images, prior: int = PRIOR, batch_size: int | None = None):
    """A copy of ``model`` whose batch-norm running statistics mix the source ones with
    those of ``images`` (weight ``n / (n + prior)``)."""
    import torch

    from shiftbench.models.base import AnomalyModel
    from shiftbench.models.device import numerics

    adapted = copy.copy(model)  # the networks copied, the rest (a memory bank) shared
    nets = {id(net) for net in _networks(model)}
    for name, value in list(vars(model).items()):
        if id(value) in nets:
            setattr(adapted, name, copy.deepcopy(value))
    layers = _bn_layers(adapted)
    source = [(m.running_mean.clone(), m.running_var.clone()) for m in layers]
    tracked = [m.num_batches_tracked.clone() for m in layers]
    momenta = [m.momentum for m in layers]
    nets = _networks(adapted)
    modes = [[sub.training for sub in net.modules()] for net in nets]
    n = len(images)
    a = n / (n + prior)
    try:
        for m in layers:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the batches
            m.train()
        device = adapted._run_device
        x = adapted._prepare(images).to(device)
        bs = batch_size or max(len(x), 1)
        with torch.no_grad(), numerics(device):
            for start in range(0, len(x), bs):
                _forward(adapted, x[start : start + bs])
    finally:
        for m, mom in zip(layers, momenta, strict=True):
            m.momentum = mom
        for net, mode in zip(nets, modes, strict=True):
            for sub, training in zip(net.modules(), mode, strict=True):
                sub.training = training
    for m, (mu, var), t in zip(layers, source, tracked, strict=True):
        m.running_mean.copy_((1 - a) * mu + a * m.running_mean)
        m.running_var.copy_((1 - a) * var + a * m.running_var)
        m.num_batches_tracked.copy_(t)
    assert isinstance(adapted, AnomalyModel)
    return adapted


def _forward(model, x) -> None:
    """One forward pass through the model's networks (BN layers in train mode)."""
    from shiftbench.models.features import has_features

    if has_features(model):
        model._embed_batch(x)
    else:
        model._score_batch(x)


class _BatchNormStrategy(Adaptation):
    changes_backbone = True
    threshold = "val-clean"
    models = "models with a torch network that has batch norm (patchcore, ae, anomalib-*)"

    def applies_to(self, model) -> str | None:
        if not _bn_layers(model):
            return "it has no batch-norm layer"
        return None


@register_adaptation("bn-adapt")
class BNAdapt(_BatchNormStrategy):
    """Re-estimate batch-norm statistics on the k target normals (AdaBN, source prior 16)."""

    target_data = "normal-k"

    def adapt(self, model, target: AdaptTarget):
        return adapt_batchnorm(model, target.images)


@register_adaptation("test-bn")
class TestBN(_BatchNormStrategy):
    """Batch-norm statistics from the unlabelled test images (transductive AdaBN)."""

    target_data = "unlabelled-test"
    transductive = True

    def adapt(self, model, target: AdaptTarget):
        return adapt_batchnorm(model, target.images, batch_size=model.resolved_batch_size)
