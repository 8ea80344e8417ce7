"""anomalib FastFlow: 2-D normalising flows on frozen backbone features."""

from __future__ import annotations

import torch
from torch import nn

from shiftbench.errors import ShiftbenchError
from shiftbench.models.anomalib.base import _AnomalibModel, _quiet_anomalib
from shiftbench.models.registry import register_model


@register_model("anomalib-fastflow", "anomalib FastFlow (trained normalising flow, raw scores)")
class AnomalibFastflow(_AnomalibModel):
    """Options: ``epochs`` (default 10), ``lr`` (1e-3), ``flow_steps`` (8),
    ``conv3x3_only`` (False), ``hidden_ratio`` (1.0)."""

    def __init__(
        self,
        *,
        backbone: str | None = None,
        weights: str = "imagenet",
        image_size: int = 256,
        seed: int = 0,
        batch_size: int = 16,
        device: str = "cpu",
        epochs: int = 10,
        lr: float = 1e-3,
        flow_steps: int = 8,
        conv3x3_only: bool = False,
        hidden_ratio: float = 1.0,
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
        self.flow_steps = flow_steps
        self.conv3x3_only = conv3x3_only
        self.hidden_ratio = hidden_ratio

    def validate(self) -> None:
        super().validate()
        if self.image_size % 16:
            raise ShiftbenchError(
                f"image_size={self.image_size}: anomalib-fastflow needs a multiple of 16"
            )
        if self.epochs < 1:
            raise ShiftbenchError(f"epochs={self.epochs!r}: must be >= 1")

    @_quiet_anomalib()
    def _build(self, pretrained: bool) -> None:
        from anomalib.models.image.fastflow.torch_model import FastflowModel

        # anomalib's FastFlow accepts only resnet18/wide_resnet50_2 by name; build it with
        # resnet18, then swap in our backbone exactly as its CNN branch would set it up
        model = FastflowModel(
            input_size=(self.image_size, self.image_size),
            backbone="resnet18",
            pre_trained=False,
            flow_steps=self.flow_steps,
            conv3x3_only=self.conv3x3_only,
            hidden_ratio=self.hidden_ratio,
        )
        if self._timm_name != "resnet18":
            self._swap_backbone(model)
        for param in model.feature_extractor.parameters():
            param.requires_grad = False
        self._load_backbone(model.feature_extractor, pretrained)
        self.model_ = model

    def _swap_backbone(self, model: nn.Module) -> None:
        """Replace ``model``'s resnet18 by our backbone, with fitting norms and flow blocks.

        Mirrors the CNN branch of ``FastflowModel.__init__``; ``forward`` then runs
        ``_get_cnn_features`` on ``feature_extractor`` and ``norms`` (both listed in
        :mod:`~shiftbench.models.anomalib.compat`).
        """
        import timm
        from anomalib.models.image.fastflow.torch_model import create_fast_flow_block

        extractor = timm.create_model(
            self._timm_name, pretrained=False, features_only=True, out_indices=[1, 2, 3]
        )
        channels = extractor.feature_info.channels()
        dims = [
            [c, self.image_size // s, self.image_size // s]
            for c, s in zip(channels, extractor.feature_info.reduction(), strict=True)
        ]
        model.feature_extractor = extractor
        model.norms = nn.ModuleList(nn.LayerNorm(d, elementwise_affine=True) for d in dims)
        model.fast_flow_blocks = nn.ModuleList(
            create_fast_flow_block(
                input_dimensions=d,
                conv3x3_only=self.conv3x3_only,
                hidden_ratio=self.hidden_ratio,
                flow_steps=self.flow_steps,
            )
            for d in dims
        )

    def _fit(self, x: torch.Tensor) -> None:
        from anomalib.models.image.fastflow.loss import FastflowLoss

        loss_fn = FastflowLoss()
        params = [p for p in self.model_.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=self.lr, weight_decay=1e-5)
        self._train(
            x,
            lambda batch, _gen: loss_fn(*self.model_(batch)),
            opt,
            "fastflow training loss",
            epochs=self.epochs,
        )
