"""Reconstruction autoencoder baseline (seeds 002 and 004).

A small U-Net-shaped encoder/decoder (conv blocks, channels doubling per level) trained on
normal images with MSE + (1 - SSIM). Skip connections are left out on purpose: with them
the network learns to copy the input, defects included, and the residual vanishes. The
anomaly map is the per-pixel squared residual averaged over RGB, Gaussian-smoothed
(sigma 1 px); the image score is the map's maximum.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from shiftbench.errors import ShiftbenchError
from shiftbench.models.base import AnomalyModel, finite_or_raise, gaussian_blur, seeded_generator
from shiftbench.models.registry import register_model


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1),
        nn.BatchNorm2d(c_out),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1),
        nn.BatchNorm2d(c_out),
        nn.LeakyReLU(0.2, inplace=True),
    )


class ConvAutoencoder(nn.Module):
    """``x [B,3,S,S]`` in [0,1] -> reconstruction in [0,1]; ``S`` divisible by 2**levels."""

    def __init__(self, base_channels: int = 16, levels: int = 4, latent_channels: int = 32) -> None:
        super().__init__()
        enc, dec = [], []
        c = 3
        widths = [base_channels * 2**i for i in range(levels)]
        for w in widths:
            enc += [_block(c, w), nn.MaxPool2d(2)]
            c = w
        self.encoder = nn.Sequential(*enc, nn.Conv2d(c, latent_channels, 1))
        c = latent_channels
        for w in reversed(widths):
            dec += [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), _block(c, w)]
            c = w
        self.decoder = nn.Sequential(*dec, nn.Conv2d(c, 3, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(self.encoder(x)))


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 11) -> torch.Tensor:
    """Mean SSIM of images in [0,1] (Gaussian window, sigma 1.5), via kornia."""
    from kornia.metrics import ssim as kornia_ssim

    return kornia_ssim(a, b, window_size=window).mean()


@register_model("ae", "Reconstruction autoencoder (U-Net-shaped, MSE+SSIM), no backbone")
class Autoencoder(AnomalyModel):
    """Options: ``epochs`` (default 20), ``lr`` (1e-3), ``base_channels`` (16), ``levels``
    (4; ``image_size`` must be divisible by 2**levels), ``latent_channels`` (32),
    ``ssim_weight`` (1.0), ``sigma`` (map smoothing, px, 1.0)."""

    default_backbone = None

    def __init__(
        self,
        *,
        backbone: str | None = None,
        weights: str = "random",
        image_size: int = 256,
        seed: int = 0,
        batch_size: int = 16,
        device: str = "cpu",
        epochs: int = 20,
        lr: float = 1e-3,
        base_channels: int = 16,
        levels: int = 4,
        latent_channels: int = 32,
        ssim_weight: float = 1.0,
        sigma: float = 1.0,
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
        self.base_channels = base_channels
        self.levels = levels
        self.latent_channels = latent_channels
        self.ssim_weight = ssim_weight
        self.sigma = sigma

    def validate(self) -> None:
        # trained from scratch: "imagenet" (the CLI default) and "random" mean the same here
        if self.weights not in ("imagenet", "random"):
            raise ShiftbenchError(
                f"model 'ae' has no pretrained weights; drop --weights {self.weights!r}"
            )
        super().validate()
        if self.image_size % 2**self.levels:
            raise ShiftbenchError(
                f"image_size={self.image_size}: model 'ae' with levels={self.levels} needs a multiple of {2**self.levels}"
            )
        if self.epochs < 1:
            raise ShiftbenchError(f"epochs={self.epochs!r}: must be >= 1")

    def _build(self, pretrained: bool) -> None:
        self.net_ = ConvAutoencoder(self.base_channels, self.levels, self.latent_channels)

    def _fit(self, x: torch.Tensor) -> None:
        gen = seeded_generator(self.seed)
        opt = torch.optim.Adam(self.net_.parameters(), lr=self.lr)
        self.net_.train()
        bs = min(self.resolved_batch_size, len(x))
        for _ in range(self.epochs):
            order = torch.randperm(len(x), generator=gen)
            # drop a last batch of one: BatchNorm cannot train on a single image
            for start in range(0, len(x) - (1 if len(x) % bs == 1 and len(x) > 1 else 0), bs):
                batch = x[order[start : start + bs]]
                recon = self.net_(batch)
                loss = F.mse_loss(recon, batch) + self.ssim_weight * (1.0 - ssim(recon, batch))
                opt.zero_grad()
                loss.backward()
                opt.step()
                finite_or_raise(loss.detach(), "ae training loss")
        self.net_.eval()

    def _score_batch(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        recon = self.net_(x)
        residual = ((recon - x) ** 2).mean(1)
        maps = gaussian_blur(residual, self.sigma)
        return maps.amax(dim=(1, 2)).double(), maps

    def _state(self) -> dict[str, Any]:
        return {"net": self.net_.state_dict()}

    def _load_state(self, state: dict[str, Any]) -> None:
        self.net_.load_state_dict(state["net"])
        self.net_.eval()
