"""Shared plumbing of the anomalib adapters: build, score raw, one training loop."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import torch
from torch import nn

from shiftbench.models import backbones
from shiftbench.models.base import AnomalyModel, finite_or_raise, seeded_generator

#: ``loss(batch, generator) -> scalar``; the generator is the training loop's own
LossFn = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


class _AnomalibModel(AnomalyModel):
    """Shared plumbing: build ``model_`` (an anomalib torch model), score with it raw.
    Fitting and scoring run with anomalib's chatter silenced (:func:`_quiet_anomalib`), as
    does each adapter's ``_build`` (also called when a saved model is loaded)."""

    def fit(self, images):
        with _quiet_anomalib():
            return super().fit(images)

    def score(self, images):
        with _quiet_anomalib():
            return super().score(images)

    default_backbone = "efficientnet_lite0"
    #: adapters with a ``layers`` option: which :class:`~backbones.BackboneSpec` layers
    #: ``layers=None`` means
    default_layers: ClassVar[str] = "feature_layers"
    layers: list[str] | None = None

    @property
    def resolved_layers(self) -> list[str]:
        return backbones.resolve_layers(self.resolved_backbone, self.layers, self.default_layers)

    def _backbone_state(self, pretrained: bool) -> dict[str, torch.Tensor] | None:
        return backbones.load_state_dict(
            self.resolved_backbone, self.weights if pretrained else "random"
        )

    def _load_backbone(self, module: nn.Module, pretrained: bool) -> None:
        state = self._backbone_state(pretrained)
        if state is not None:
            backbones.load_into(module, state, self.weights)

    @property
    def _timm_name(self) -> str:
        return backbones.get_backbone(self.resolved_backbone).timm_name

    def _score_batch(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.model_.eval()
        out = self.model_(x)
        maps = out.anomaly_map
        if maps.ndim == 4:
            maps = maps[:, 0]
        return out.pred_score.reshape(-1).double(), maps

    def _state(self) -> dict[str, Any]:
        return {"model": self.model_.state_dict()}

    def _load_state(self, state: dict[str, Any]) -> None:
        self.model_.load_state_dict(state["model"])
        self.model_.eval()

    # ------------------------------------------------------------------ training
    def _train(
        self,
        x: torch.Tensor,
        loss_fn: LossFn,
        optimizer: torch.optim.Optimizer,
        what: str,
        *,
        epochs: int | None = None,
        steps: int | None = None,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        frozen: Sequence[nn.Module] = (),
        min_batch: int = 1,
    ) -> None:
        """The one training loop of the trained adapters (seeded by ``self.seed``).

        Batches of ``resolved_batch_size``: ``epochs`` passes over shuffled ``x``, or
        ``steps`` batches drawn with replacement. Each batch: ``loss_fn(batch, generator)``,
        one optimiser (and scheduler) step; a non-finite loss stops training with
        :class:`FloatingPointError`. ``model_`` trains with the ``frozen`` modules in eval
        mode and ends in eval mode. ``min_batch``: an epoch's last batch smaller than this
        joins the one before (batch norm in training mode needs more than one value per
        channel).
        """
        gen = seeded_generator(self.seed)
        self.model_.train()
        for module in frozen:
            module.eval()
        for batch in _training_batches(
            x, min(self.resolved_batch_size, len(x)), gen, epochs, steps, min_batch
        ):
            loss = loss_fn(batch, gen)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            finite_or_raise(loss.detach(), what)
        self.model_.eval()


def _training_batches(
    x: torch.Tensor,
    bs: int,
    gen: torch.Generator,
    epochs: int | None,
    steps: int | None,
    min_batch: int = 1,
) -> Iterator[torch.Tensor]:
    """Mini-batches of ``x``, drawn lazily from ``gen`` (so draws interleave with the loss's);
    an epoch's last batch smaller than ``min_batch`` joins the one before."""
    if (epochs is None) == (steps is None):
        raise ValueError("give exactly one of epochs, steps")
    if steps is not None:
        for _ in range(steps):
            yield x[torch.randint(len(x), (bs,), generator=gen)]
        return
    starts = list(range(0, len(x), bs))
    if len(starts) > 1 and len(x) - starts[-1] < min_batch:
        starts.pop()  # the short tail joins the batch before
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for i, start in enumerate(starts):
            end = starts[i + 1] if i + 1 < len(starts) else len(x)
            yield x[order[start:end]]


def _contiguous_buffers(module: nn.Module) -> None:
    """Store fitted buffers in the layout ``load_state_dict`` recreates.

    PaDiM's inverse covariances come out of ``torch.linalg.inv`` transposed in memory; a
    saved-and-loaded copy is contiguous, and the matmul then sums in another order, which
    on an ill-conditioned covariance moves the scores in the 4th digit. Scoring with the
    contiguous layout from the start makes a loaded model score bit-identically.
    """
    for sub in module.modules():
        for name, buf in list(sub.named_buffers(recurse=False)):
            if not buf.is_contiguous():
                setattr(sub, name, buf.contiguous())  # nn.Module keeps it a buffer


@contextmanager
def _quiet_anomalib() -> Iterator[None]:
    """Inside the block (or the decorated function), anomalib's chatter is silenced: its
    import-time deprecations and optional-dependency notes, timm's deprecation of the
    ``timm.models.layers`` anomalib imports, and its logger below ERROR. The filters are
    scoped (``warnings.catch_warnings``): warnings elsewhere in the process stay as the
    user set them."""
    with warnings.catch_warnings(), quiet_logger("anomalib"):
        warnings.filterwarnings("ignore", module=r"anomalib(\..*)?")
        warnings.filterwarnings(
            "ignore", message="Importing from timm.models.layers", category=FutureWarning
        )
        yield


@contextmanager
def quiet_logger(name: str, level: int = logging.ERROR) -> Iterator[None]:
    """Raise logger ``name``'s level for the block (its children included), then restore it."""
    logger = logging.getLogger(name)
    old = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(old)
