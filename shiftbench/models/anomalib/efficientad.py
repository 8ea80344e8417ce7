"""anomalib EfficientAD: PDN student-teacher plus autoencoder, trained step-wise."""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import torch

from shiftbench.errors import ShiftbenchError
from shiftbench.models.anomalib.base import _AnomalibModel, _quiet_anomalib
from shiftbench.models.registry import register_model

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def _read_image_folder(folder: Path, size: int, limit: int = 1000) -> torch.Tensor:
    from shiftbench.data.io import read_image

    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in _IMAGE_SUFFIXES)[:limit]
    if not files:
        raise ShiftbenchError(f"{folder}: no images found (expected .png/.jpg files)")
    imgs = [torch.from_numpy(read_image(p, size)).permute(2, 0, 1) for p in files]
    return torch.stack(imgs).float() / 255.0


@register_model(
    "anomalib-efficientad",
    "anomalib EfficientAD; offline: random teacher / no Imagenette penalty unless given paths",
)
class AnomalibEfficientAd(_AnomalibModel):
    """Options: ``max_steps`` (default 1000; the paper uses 70000), ``lr`` (1e-4),
    ``model_size`` (``small``/``medium``), ``teacher_weights`` (path to anomalib's
    ``pretrained_teacher_<size>.pth``), ``imagenet_dir`` (folder of Imagenette images for
    the penalty term). ``image_size`` must be >= 256. Takes no backbone.

    ``weights``: ``imagenet`` = the pretrained teacher (from ``teacher_weights`` or
    anomalib's cache; otherwise the named random-teacher fallback), ``random`` = a seeded
    random teacher, a path = the teacher's state dict.
    """

    default_backbone = None

    def __init__(
        self,
        *,
        backbone: str | None = None,
        weights: str = "imagenet",
        image_size: int = 256,
        seed: int = 0,
        batch_size: int = 1,
        device: str = "cpu",
        max_steps: int = 1000,
        lr: float = 1e-4,
        model_size: str = "small",
        teacher_weights: str | None = None,
        imagenet_dir: str | None = None,
    ) -> None:
        super().__init__(
            backbone=backbone,
            weights=weights,
            image_size=image_size,
            seed=seed,
            batch_size=batch_size,
            device=device,
        )
        self.max_steps = max_steps
        self.lr = lr
        self.model_size = model_size
        self.teacher_weights = teacher_weights
        self.imagenet_dir = imagenet_dir

    def validate(self) -> None:
        super().validate()
        if self.image_size < 256:
            raise ShiftbenchError(
                f"image_size={self.image_size}: anomalib-efficientad needs >= 256 (its autoencoder downsamples 32x)"
            )
        if self.model_size not in ("small", "medium"):
            raise ShiftbenchError(f"model_size={self.model_size!r}: choose small or medium")
        if self.teacher_weights is not None and not Path(self.teacher_weights).is_file():
            raise ShiftbenchError(f"teacher_weights={self.teacher_weights!r}: file not found")
        if self.imagenet_dir is not None and not Path(self.imagenet_dir).is_dir():
            raise ShiftbenchError(f"imagenet_dir={self.imagenet_dir!r}: folder not found")
        if self.max_steps < 1:
            raise ShiftbenchError(f"max_steps={self.max_steps!r}: must be >= 1")

    def _teacher_file(self) -> Path | None:
        if self.weights not in ("imagenet", "random"):
            return Path(self.weights)
        if self.weights == "random":
            return None
        if self.teacher_weights is not None:
            return Path(self.teacher_weights)
        try:
            from anomalib.utils.path import get_pretrained_weights_dir

            cached = get_pretrained_weights_dir() / "efficientad_pretrained_weights"
            cached = cached / f"pretrained_teacher_{self.model_size}.pth"
        except Exception:  # noqa: BLE001 - no cache dir known: same as not cached
            return None
        return cached if cached.is_file() else None

    @property
    def offline_fallback(self) -> str | None:
        parts = []
        if self.weights == "imagenet" and self._teacher_file() is None:
            parts.append(
                "random PDN teacher (pretrained teacher needs a download; pass teacher_weights=PATH)"
            )
        if self.imagenet_dir is None:
            parts.append("no Imagenette penalty (needs a download; pass imagenet_dir=PATH)")
        return "; ".join(parts) or None

    @_quiet_anomalib()
    def _build(self, pretrained: bool) -> None:
        from anomalib.models.image.efficient_ad.torch_model import (
            EfficientAdModel,
            EfficientAdModelSize,
        )

        size = EfficientAdModelSize.S if self.model_size == "small" else EfficientAdModelSize.M
        self.model_ = EfficientAdModel(
            teacher_out_channels=384, model_size=size, padding=False, pad_maps=True
        )
        teacher = self._teacher_file() if pretrained else None
        if teacher is not None:
            try:
                state = torch.load(teacher, map_location="cpu", weights_only=True)
                self.model_.teacher.load_state_dict(state)
            except (RuntimeError, OSError) as exc:
                raise ShiftbenchError(
                    f"{teacher}: not a {self.model_size} EfficientAD teacher ({exc.__class__.__name__})"
                ) from None
        elif pretrained and self.weights == "imagenet":
            warnings.warn(
                f"anomalib-efficientad offline fallback: {self.offline_fallback}", stacklevel=2
            )

    # ------------------------------------------------------------------ training
    def _fit(self, x: torch.Tensor) -> None:
        model = self.model_
        model.teacher.eval()
        for p in model.teacher.parameters():
            p.requires_grad = False
        with torch.no_grad():  # teacher channel statistics over the training images
            outs = torch.cat([model.teacher(b) for b in self._batches(x)])
            model.mean_std.update(
                {
                    "mean": outs.mean(dim=(0, 2, 3), keepdim=True),
                    "std": outs.std(dim=(0, 2, 3), keepdim=True),
                }
            )
        penalty = None
        if self.imagenet_dir is not None:
            penalty = _read_image_folder(Path(self.imagenet_dir), self.image_size).to(x.device)
        params = list(model.student.parameters()) + list(model.ae.parameters())
        opt = torch.optim.Adam(params, lr=self.lr, weight_decay=1e-5)
        sched = torch.optim.lr_scheduler.StepLR(
            opt, step_size=max(1, int(0.95 * self.max_steps)), gamma=0.1
        )
        self._train(
            x,
            functools.partial(self._loss, penalty=penalty),
            opt,
            "efficientad training loss",
            steps=self.max_steps,
            scheduler=sched,
            frozen=[model.teacher],
        )
        self._fit_map_quantiles(x)

    def _loss(
        self, batch: torch.Tensor, gen: torch.Generator, penalty: torch.Tensor | None
    ) -> torch.Tensor:
        """anomalib's ``compute_losses``; without penalty images, the same minus that term."""
        from anomalib.models.image.efficient_ad.torch_model import reduce_tensor_elems

        model = self.model_
        _, distance_st = model.compute_student_teacher_distance(batch)
        if penalty is not None:
            pen = penalty[torch.randint(len(penalty), (1,), generator=gen)]
            loss_st, loss_ae, loss_stae = model.compute_losses(batch, pen, distance_st)
            return loss_st + loss_ae + loss_stae
        distance_st = reduce_tensor_elems(distance_st)
        d_hard = torch.quantile(distance_st, 0.999)
        loss_st = torch.mean(distance_st[distance_st >= d_hard])
        aug = model.choose_random_aug_image(batch)
        ae_out = model.ae(aug, batch.shape[-2:])
        with torch.no_grad():  # teacher features standardised with the statistics of _fit
            teacher_aug = (model.teacher(aug) - model.mean_std["mean"]) / model.mean_std["std"]
        student_ae = model.student(aug)[:, model.teacher_out_channels :]
        return (
            loss_st
            + torch.mean((teacher_aug - ae_out) ** 2)
            + torch.mean((ae_out - student_ae) ** 2)
        )

    def _fit_map_quantiles(self, x: torch.Tensor) -> None:
        """Map quantiles on the (normal) training images, as anomalib on validation images."""
        from anomalib.models.image.efficient_ad.torch_model import reduce_tensor_elems

        model = self.model_
        with torch.no_grad():
            maps_st, maps_ae = zip(
                *(model.get_maps(b, normalize=False) for b in self._batches(x)), strict=True
            )
            qs = {}
            for key, maps in (("st", maps_st), ("ae", maps_ae)):
                flat = reduce_tensor_elems(torch.cat(maps))
                qs[f"qa_{key}"] = torch.quantile(flat, 0.9)
                qs[f"qb_{key}"] = torch.quantile(flat, 0.995)
            model.quantiles.update(qs)
