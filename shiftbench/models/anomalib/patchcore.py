"""anomalib PatchCore: memory bank of backbone patches, coreset-subsampled."""

from __future__ import annotations

import torch

from shiftbench.errors import ShiftbenchError
from shiftbench.models import backbones
from shiftbench.models.anomalib.base import _AnomalibModel, _quiet_anomalib
from shiftbench.models.registry import register_model


@register_model("anomalib-patchcore", "anomalib PatchCore (torch model, raw scores)")
class AnomalibPatchCore(_AnomalibModel):
    """Options: ``layers`` (default layer2+layer3 equivalents), ``coreset_ratio`` (0.1),
    ``num_neighbors`` (9)."""

    default_layers = "patchcore_layers"

    def __init__(
        self,
        *,
        backbone: str | None = None,
        weights: str = "imagenet",
        image_size: int = 256,
        seed: int = 0,
        batch_size: int | None = None,  # no training: auto (cache-sized) batches
        device: str = "cpu",
        layers: list[str] | None = None,
        coreset_ratio: float = 0.1,
        num_neighbors: int = 9,
    ) -> None:
        super().__init__(
            backbone=backbone,
            weights=weights,
            image_size=image_size,
            seed=seed,
            batch_size=batch_size,
            device=device,
        )
        self.layers = layers
        self.coreset_ratio = coreset_ratio
        self.num_neighbors = num_neighbors

    def validate(self) -> None:
        super().validate()
        backbones.check_layers(self.resolved_backbone, self.resolved_layers)
        if not 0 < self.coreset_ratio <= 1:
            raise ShiftbenchError(f"coreset_ratio={self.coreset_ratio!r}: must be in (0, 1]")

    @_quiet_anomalib()
    def _build(self, pretrained: bool) -> None:
        from anomalib.models.image.patchcore.torch_model import PatchcoreModel

        self.model_ = PatchcoreModel(
            layers=self.resolved_layers,
            backbone=self._timm_name,
            pre_trained=False,
            num_neighbors=self.num_neighbors,
        )
        self._load_backbone(self.model_.feature_extractor.feature_extractor, pretrained)

    def _fit(self, x: torch.Tensor) -> None:
        self.model_.train()
        with torch.no_grad():
            for batch in self._batches(x):
                self.model_(batch)
            self.model_.subsample_embedding(self.coreset_ratio)
        self.model_.eval()
