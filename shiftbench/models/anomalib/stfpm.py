"""anomalib STFPM: a student network regresses a frozen teacher's feature pyramid."""

from __future__ import annotations

import tempfile

import torch

from shiftbench.errors import ShiftbenchError
from shiftbench.models import backbones
from shiftbench.models.anomalib.base import _AnomalibModel, _quiet_anomalib, quiet_logger
from shiftbench.models.registry import register_model


@register_model("anomalib-stfpm", "anomalib STFPM (student-teacher feature pyramid, raw scores)")
class AnomalibStfpm(_AnomalibModel):
    """Options: ``layers`` (default the backbone's three feature layers), ``epochs`` (10),
    ``lr`` (0.4, SGD as in anomalib)."""

    def __init__(
        self,
        *,
        backbone: str | None = None,
        weights: str = "imagenet",
        image_size: int = 256,
        seed: int = 0,
        batch_size: int = 16,
        device: str = "cpu",
        layers: list[str] | None = None,
        epochs: int = 10,
        lr: float = 0.4,
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
        self.epochs = epochs
        self.lr = lr

    def validate(self) -> None:
        super().validate()
        backbones.check_layers(self.resolved_backbone, self.resolved_layers)
        if self.epochs < 1:
            raise ShiftbenchError(f"epochs={self.epochs!r}: must be >= 1")

    @_quiet_anomalib()
    def _build(self, pretrained: bool) -> None:
        from anomalib.models.image.stfpm.torch_model import STFPMModel

        # the teacher is built with pretrained=True inside anomalib: hand it our weights as
        # a local timm folder so nothing is downloaded (random weights go the same way)
        teacher = backbones.create_timm_model(
            self.resolved_backbone, self.weights if pretrained else "random", seed=self.seed
        )
        # timm warns that the head's weights are unused: expected for a feature extractor
        with quiet_logger("timm"), tempfile.TemporaryDirectory(prefix="shiftbench-timm-") as tmp:
            name = backbones.save_timm_local_dir(teacher, tmp)
            self.model_ = STFPMModel(layers=self.resolved_layers, backbone=name)

    def _fit(self, x: torch.Tensor) -> None:
        from anomalib.models.image.stfpm.loss import STFPMLoss

        loss_fn = STFPMLoss()
        opt = torch.optim.SGD(
            self.model_.student_model.parameters(),
            lr=self.lr,
            momentum=0.9,
            dampening=0.0,
            weight_decay=1e-3,
        )
        self._train(
            x,
            lambda batch, _gen: loss_fn(*self.model_(batch)),
            opt,
            "stfpm training loss",
            epochs=self.epochs,
            frozen=[self.model_.teacher_model],
        )
