"""anomalib PaDiM: a Gaussian per patch position over a random channel subset."""

from __future__ import annotations

import torch

from shiftbench.errors import ShiftbenchError
from shiftbench.models import backbones
from shiftbench.models.anomalib.base import _AnomalibModel, _contiguous_buffers, _quiet_anomalib
from shiftbench.models.registry import register_model

_PADIM_N_FEATURES = {
    "resnet18": 100,
    "resnet50": 550,
    "wide_resnet50_2": 550,
    "efficientnet_lite0": 100,
}


@register_model("anomalib-padim", "anomalib PaDiM (torch model, raw scores)")
class AnomalibPadim(_AnomalibModel):
    """Options: ``layers`` (default the backbone's three feature layers), ``n_features``
    (random channel subset; default 100 for resnet18/efficientnet_lite0, 550 otherwise)."""

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
        n_features: int | None = None,
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
        self.n_features = n_features

    def validate(self) -> None:
        super().validate()
        backbones.check_layers(self.resolved_backbone, self.resolved_layers)

    @_quiet_anomalib()
    def _build(self, pretrained: bool) -> None:
        from anomalib.models.image.padim.torch_model import PadimModel

        n_features = self.n_features or _PADIM_N_FEATURES[self.resolved_backbone]
        try:
            self.model_ = PadimModel(
                backbone=self._timm_name,
                layers=self.resolved_layers,
                pre_trained=False,
                n_features=n_features,
            )
        except ValueError as exc:  # anomalib checks 0 < n_features <= channels
            raise ShiftbenchError(f"n_features={n_features}: {exc}") from None
        self._load_backbone(self.model_.feature_extractor.feature_extractor, pretrained)

    def _fit(self, x: torch.Tensor) -> None:
        self.model_.train()
        with torch.no_grad():
            for batch in self._batches(x):
                self.model_(batch)
            self.model_.fit()
        _contiguous_buffers(self.model_)
        self.model_.eval()
