"""anomalib DRAEM: reconstruct synthetic anomalies away, segment them."""

from __future__ import annotations

from pathlib import Path

import torch

from shiftbench.errors import ShiftbenchError
from shiftbench.models.anomalib.base import _AnomalibModel, _quiet_anomalib
from shiftbench.models.registry import register_model


@register_model(
    "anomalib-draem", "anomalib DRAEM; offline: Perlin-noise anomalies unless anomaly_source=PATH"
)
class AnomalibDraem(_AnomalibModel):
    """Options: ``epochs`` (default 10), ``lr`` (1e-4), ``anomaly_source`` (folder of
    texture images, e.g. DTD; default none: Perlin-noise anomalies, the named fallback),
    ``beta`` (blend range, (0.1, 1.0)). Takes no backbone; ``image_size`` multiple of 16."""

    default_backbone = None

    def __init__(
        self,
        *,
        backbone: str | None = None,
        weights: str = "random",
        image_size: int = 256,
        seed: int = 0,
        batch_size: int = 8,
        device: str = "cpu",
        epochs: int = 10,
        lr: float = 1e-4,
        anomaly_source: str | None = None,
        beta: tuple[float, float] | list[float] = (0.1, 1.0),
    ) -> None:
        super().__init__(
            backbone=backbone,
            weights=weights,
            image_size=image_size,
            seed=seed,
            batch_size=batch_size,
            device=device,
        )
        self.epochs = epochs
        self.lr = lr
        self.anomaly_source = anomaly_source
        self.beta = list(beta)

    def validate(self) -> None:
        if self.weights not in ("imagenet", "random"):
            raise ShiftbenchError(
                f"model 'anomalib-draem' has no pretrained weights; drop --weights {self.weights!r}"
            )
        super().validate()
        if self.image_size % 16:
            raise ShiftbenchError(
                f"image_size={self.image_size}: anomalib-draem needs a multiple of 16"
            )
        if self.anomaly_source is not None and not Path(self.anomaly_source).is_dir():
            raise ShiftbenchError(f"anomaly_source={self.anomaly_source!r}: folder not found")
        if self.epochs < 1:
            raise ShiftbenchError(f"epochs={self.epochs!r}: must be >= 1")

    @property
    def offline_fallback(self) -> str | None:
        if self.anomaly_source is None:
            return "Perlin-noise anomalies only (DTD textures need a download; pass anomaly_source=PATH)"
        return None

    @_quiet_anomalib()
    def _build(self, pretrained: bool) -> None:
        from anomalib.models.image.draem.torch_model import DraemModel

        self.model_ = DraemModel(sspcab=False)

    def _fit(self, x: torch.Tensor) -> None:
        from anomalib.data.utils.generators.perlin import PerlinAnomalyGenerator
        from anomalib.models.image.draem.loss import DraemLoss

        augmenter = PerlinAnomalyGenerator(
            anomaly_source_path=self.anomaly_source, blend_factor=tuple(self.beta)
        )
        loss_fn = DraemLoss()

        def loss(batch: torch.Tensor, _gen: torch.Generator) -> torch.Tensor:
            augmented, mask = augmenter(batch)
            reconstruction, prediction = self.model_(augmented)
            return loss_fn(batch, reconstruction, mask, prediction)

        opt = torch.optim.Adam(self.model_.parameters(), lr=self.lr)
        # min_batch: a one-image batch makes DRAEM's batch norm fail at small sizes (1x1 maps)
        self._train(x, loss, opt, "draem training loss", epochs=self.epochs, min_batch=2)
