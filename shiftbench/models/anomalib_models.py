"""anomalib models through their plain ``torch_model`` modules (anomalib 2.7).

We skip anomalib's Lightning ``Engine``: its post-processor min-max normalises and clamps
scores (ties under shift), and its datamodules validate on the test set. Each adapter
builds the torch model, routes our backbone weights into it, trains with the optimiser and
loss of anomalib's Lightning module, and returns the model's raw ``pred_score`` and
``anomaly_map``. anomalib is imported inside the adapters only (importing it takes ~20 s).

Backbone weights: models built on timm (PatchCore, PaDiM, FastFlow) are created with
``pre_trained=False`` and our weights are loaded into their timm feature extractor; STFPM
hard-codes a pretrained teacher, so it gets our weights as a timm ``local-dir:`` folder
(``config.json`` + ``model.safetensors``).

Offline fallbacks (named in ``input_config["offline_fallback"]``):

- EfficientAD: the pretrained PDN teacher and the Imagenette penalty images need a
  download. Without ``teacher_weights=PATH`` (or anomalib's cached teacher) the teacher is a
  seeded random PDN; without ``imagenet_dir=PATH`` the penalty term is dropped.
- DRAEM: without ``anomaly_source=PATH`` (a folder of DTD-like texture images) the
  synthetic anomalies are DRAEM's Perlin-noise patterns only.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from shiftbench.errors import ShiftbenchError
from shiftbench.models import backbones
from shiftbench.models.base import AnomalyModel, finite_or_raise, set_torch_seed
from shiftbench.models.registry import register_model

log = logging.getLogger(__name__)

_PADIM_N_FEATURES = {
    "resnet18": 100,
    "resnet50": 550,
    "wide_resnet50_2": 550,
    "efficientnet_lite0": 100,
}
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


class _AnomalibModel(AnomalyModel):
    """Shared plumbing: build ``model_`` (an anomalib torch model), score with it raw."""

    default_backbone = "efficientnet_lite0"

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

    def _epochs_loop(self, x: torch.Tensor, epochs: int, batch_size: int, step) -> None:
        """Call ``step(batch)`` over shuffled mini-batches for ``epochs`` epochs (seeded)."""
        gen = set_torch_seed(self.seed)
        bs = min(batch_size, len(x))
        for _ in range(epochs):
            order = torch.randperm(len(x), generator=gen)
            for start in range(0, len(x), bs):
                step(x[order[start : start + bs]])


def _contiguous_buffers(module: nn.Module) -> None:
    """Store fitted buffers in the layout ``load_state_dict`` recreates.

    PaDiM's inverse covariances come out of ``torch.linalg.inv`` transposed in memory; a
    saved-and-loaded copy is contiguous, and the matmul then sums in another order, which
    on an ill-conditioned covariance moves the scores in the 4th digit. Scoring with the
    contiguous layout from the start makes a loaded model score bit-identically.
    """
    for sub in module.modules():
        for name, buf in list(sub._buffers.items()):
            if buf is not None and not buf.is_contiguous():
                sub._buffers[name] = buf.contiguous()


def _quiet_anomalib() -> None:
    # anomalib's import chatter (deprecations, optional-dependency notes) is noise for us
    warnings.filterwarnings("ignore", module=r"anomalib(\..*)?")
    # anomalib still imports timm.models.layers, which timm reports as deprecated
    warnings.filterwarnings(
        "ignore", message="Importing from timm.models.layers", category=FutureWarning
    )
    logging.getLogger("anomalib").setLevel(logging.ERROR)


# ---------------------------------------------------------------------- PatchCore
@register_model("anomalib-patchcore", "anomalib PatchCore (torch model, raw scores)")
class AnomalibPatchCore(_AnomalibModel):
    """Options: ``layers`` (default layer2+layer3 equivalents), ``coreset_ratio`` (0.1),
    ``num_neighbors`` (9)."""

    def __init__(
        self,
        *,
        backbone: str | None = None,
        weights: str = "imagenet",
        image_size: int = 256,
        seed: int = 0,
        batch_size: int | None = None,  # no training: auto (cache-sized) batches
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
        )
        self.layers = layers
        self.coreset_ratio = coreset_ratio
        self.num_neighbors = num_neighbors

    @property
    def resolved_layers(self) -> list[str]:
        if self.layers is not None:
            return list(self.layers)
        return list(backbones.get_backbone(self.resolved_backbone).patchcore_layers)

    def validate(self) -> None:
        super().validate()
        backbones.check_layers(self.resolved_backbone, self.resolved_layers)
        if not 0 < self.coreset_ratio <= 1:
            raise ShiftbenchError(f"coreset_ratio={self.coreset_ratio!r}: must be in (0, 1]")

    def _build(self, pretrained: bool) -> None:
        _quiet_anomalib()
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


# ---------------------------------------------------------------------- PaDiM
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
        layers: list[str] | None = None,
        n_features: int | None = None,
    ) -> None:
        super().__init__(
            backbone=backbone,
            weights=weights,
            image_size=image_size,
            seed=seed,
            batch_size=batch_size,
        )
        self.layers = layers
        self.n_features = n_features

    @property
    def resolved_layers(self) -> list[str]:
        if self.layers is not None:
            return list(self.layers)
        return list(backbones.get_backbone(self.resolved_backbone).feature_layers)

    def validate(self) -> None:
        super().validate()
        backbones.check_layers(self.resolved_backbone, self.resolved_layers)

    def _build(self, pretrained: bool) -> None:
        _quiet_anomalib()
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


# ---------------------------------------------------------------------- FastFlow
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

    def _build(self, pretrained: bool) -> None:
        _quiet_anomalib()
        import timm
        from anomalib.models.image.fastflow.torch_model import FastflowModel, create_fast_flow_block

        size = (self.image_size, self.image_size)
        # anomalib's FastFlow accepts only resnet18/wide_resnet50_2 by name; build it with
        # resnet18, then swap in our backbone exactly as its CNN branch would set it up
        model = FastflowModel(
            input_size=size,
            backbone="resnet18",
            pre_trained=False,
            flow_steps=self.flow_steps,
            conv3x3_only=self.conv3x3_only,
            hidden_ratio=self.hidden_ratio,
        )
        if self._timm_name != "resnet18":
            extractor = timm.create_model(
                self._timm_name, pretrained=False, features_only=True, out_indices=[1, 2, 3]
            )
            channels = extractor.feature_info.channels()
            scales = extractor.feature_info.reduction()
            model.feature_extractor = extractor
            model.norms = nn.ModuleList(
                nn.LayerNorm([c, size[0] // s, size[1] // s], elementwise_affine=True)
                for c, s in zip(channels, scales, strict=True)
            )
            model.fast_flow_blocks = nn.ModuleList(
                create_fast_flow_block(
                    input_dimensions=[c, size[0] // s, size[1] // s],
                    conv3x3_only=self.conv3x3_only,
                    hidden_ratio=self.hidden_ratio,
                    flow_steps=self.flow_steps,
                )
                for c, s in zip(channels, scales, strict=True)
            )
        for param in model.feature_extractor.parameters():
            param.requires_grad = False
        self._load_backbone(model.feature_extractor, pretrained)
        self.model_ = model

    def _fit(self, x: torch.Tensor) -> None:
        from anomalib.models.image.fastflow.loss import FastflowLoss

        loss_fn = FastflowLoss()
        params = [p for p in self.model_.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=self.lr, weight_decay=1e-5)
        self.model_.train()

        def step(batch: torch.Tensor) -> None:
            hidden, jacobians = self.model_(batch)
            loss = loss_fn(hidden, jacobians)
            opt.zero_grad()
            loss.backward()
            opt.step()
            finite_or_raise(loss.detach(), "fastflow training loss")

        self._epochs_loop(x, self.epochs, self.resolved_batch_size, step)
        self.model_.eval()


# ---------------------------------------------------------------------- STFPM
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
        )
        self.layers = layers
        self.epochs = epochs
        self.lr = lr

    @property
    def resolved_layers(self) -> list[str]:
        if self.layers is not None:
            return list(self.layers)
        return list(backbones.get_backbone(self.resolved_backbone).feature_layers)

    def validate(self) -> None:
        super().validate()
        backbones.check_layers(self.resolved_backbone, self.resolved_layers)
        if self.epochs < 1:
            raise ShiftbenchError(f"epochs={self.epochs!r}: must be >= 1")

    def _build(self, pretrained: bool) -> None:
        _quiet_anomalib()
        from anomalib.models.image.stfpm.torch_model import STFPMModel

        # the teacher is built with pretrained=True inside anomalib: hand it our weights as
        # a local timm folder so nothing is downloaded (random weights go the same way)
        teacher = backbones.create_timm_model(
            self.resolved_backbone, self.weights if pretrained else "random", seed=self.seed
        )
        timm_log = logging.getLogger("timm.models._builder")
        level = timm_log.level
        # timm warns that the head's weights are unused: expected for a feature extractor
        timm_log.setLevel(logging.ERROR)
        try:
            with tempfile.TemporaryDirectory(prefix="shiftbench-timm-") as tmp:
                name = backbones.save_timm_local_dir(teacher, tmp)
                self.model_ = STFPMModel(layers=self.resolved_layers, backbone=name)
        finally:
            timm_log.setLevel(level)

    def _fit(self, x: torch.Tensor) -> None:
        from anomalib.models.image.stfpm.loss import STFPMLoss

        loss_fn = STFPMLoss()
        student = self.model_.student_model
        opt = torch.optim.SGD(
            student.parameters(), lr=self.lr, momentum=0.9, dampening=0.0, weight_decay=1e-3
        )
        self.model_.train()
        self.model_.teacher_model.eval()

        def step(batch: torch.Tensor) -> None:
            teacher_features, student_features = self.model_(batch)
            loss = loss_fn(teacher_features, student_features)
            opt.zero_grad()
            loss.backward()
            opt.step()
            finite_or_raise(loss.detach(), "stfpm training loss")

        self._epochs_loop(x, self.epochs, self.resolved_batch_size, step)
        self.model_.eval()


# ---------------------------------------------------------------------- EfficientAD
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
        for option in ("teacher_weights",):
            value = getattr(self, option)
            if value is not None and not Path(value).is_file():
                raise ShiftbenchError(f"{option}={value!r}: file not found")
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

    def _build(self, pretrained: bool) -> None:
        _quiet_anomalib()
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

    def _fit(self, x: torch.Tensor) -> None:
        from anomalib.models.image.efficient_ad.torch_model import reduce_tensor_elems

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
            penalty = _read_image_folder(Path(self.imagenet_dir), self.image_size)
        params = list(model.student.parameters()) + list(model.ae.parameters())
        opt = torch.optim.Adam(params, lr=self.lr, weight_decay=1e-5)
        sched = torch.optim.lr_scheduler.StepLR(
            opt, step_size=max(1, int(0.95 * self.max_steps)), gamma=0.1
        )
        gen = set_torch_seed(self.seed)
        model.train()
        model.teacher.eval()
        c = model.teacher_out_channels
        for _ in range(self.max_steps):
            batch = x[
                torch.randint(len(x), (min(self.resolved_batch_size, len(x)),), generator=gen)
            ]
            # the losses of EfficientAdModel.compute_losses, with the penalty optional
            _, distance_st = model.compute_student_teacher_distance(batch)
            distance_st = reduce_tensor_elems(distance_st)
            d_hard = torch.quantile(distance_st, 0.999)
            loss_st = torch.mean(distance_st[distance_st >= d_hard])
            if penalty is not None:
                pen = penalty[torch.randint(len(penalty), (1,), generator=gen)]
                loss_st = loss_st + torch.mean(model.student(pen)[:, :c] ** 2)
            aug = model.choose_random_aug_image(batch)
            ae_out = model.ae(aug, batch.shape[-2:])
            with torch.no_grad():
                teacher_aug = model._normalize_teacher(model.teacher(aug))
            student_ae = model.student(aug)[:, c:]
            loss = (
                loss_st
                + torch.mean((teacher_aug - ae_out) ** 2)
                + torch.mean((ae_out - student_ae) ** 2)
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            finite_or_raise(loss.detach(), "efficientad training loss")
        model.eval()
        with torch.no_grad():  # map quantiles on the (normal) training images, as anomalib on val
            maps_st, maps_ae = zip(
                *(model.get_maps(b, normalize=False) for b in self._batches(x)), strict=True
            )
            qs = {}
            for key, maps in (("st", maps_st), ("ae", maps_ae)):
                flat = reduce_tensor_elems(torch.cat(maps))
                qs[f"qa_{key}"] = torch.quantile(flat, 0.9)
                qs[f"qb_{key}"] = torch.quantile(flat, 0.995)
            model.quantiles.update(qs)


# ---------------------------------------------------------------------- DRAEM
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

    def _build(self, pretrained: bool) -> None:
        _quiet_anomalib()
        from anomalib.models.image.draem.torch_model import DraemModel

        self.model_ = DraemModel(sspcab=False)

    def _fit(self, x: torch.Tensor) -> None:
        from anomalib.data.utils.generators.perlin import PerlinAnomalyGenerator
        from anomalib.models.image.draem.loss import DraemLoss

        augmenter = PerlinAnomalyGenerator(
            anomaly_source_path=self.anomaly_source, blend_factor=tuple(self.beta)
        )
        loss_fn = DraemLoss()
        opt = torch.optim.Adam(self.model_.parameters(), lr=self.lr)
        self.model_.train()

        def step(batch: torch.Tensor) -> None:
            augmented, mask = augmenter(batch)
            reconstruction, prediction = self.model_(augmented)
            loss = loss_fn(batch, reconstruction, mask, prediction)
            opt.zero_grad()
            loss.backward()
            opt.step()
            finite_or_raise(loss.detach(), "draem training loss")

        self._epochs_loop(x, self.epochs, self.resolved_batch_size, step)
        self.model_.eval()
