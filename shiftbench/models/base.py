"""The one interface every anomaly model adapter implements.

Shaped like a scikit-learn estimator: ``__init__`` only stores its keyword parameters,
:meth:`AnomalyModel.fit` builds and fits (fitted state ends in ``_``), using a model before
``fit`` raises :class:`NotFittedError`. Subclasses implement four hooks:

- ``_build(pretrained)``: create the networks (``pretrained=False`` when restoring a saved
  model, whose own state replaces every weight anyway);
- ``_fit(x)``: fit on normalised images ``x float32 [N,3,S,S]``;
- ``_score_batch(x)``: ``(scores [B], maps [B,S,S])`` raw, at the model's input size;
- ``_state()`` / ``_load_state(state)``: everything needed to score again.

Scores are raw: never min-max normalised or clamped (that creates ties under shift).
"""

from __future__ import annotations

import inspect
import random
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shiftbench.errors import ShiftbenchError
from shiftbench.models.device import check_device_spec, numerics, resolve_device

FORMAT = "shiftbench-model"
FORMAT_VERSION = 1
# batch_size=None: input pixels per batch. On CPU a backbone runs ~1.5x faster per image
# when its activations fit in cache (measured: efficientnet_lite0, 128-256 px)
AUTO_BATCH_PIXELS = 2**18


class NotFittedError(ShiftbenchError):
    """The model was used (score, save) before :meth:`AnomalyModel.fit`."""


class AnomalyModel(ABC):
    """Fit on normal images, score images into an image score and an anomaly map.

    Common parameters (every adapter takes them):

    - ``backbone``: backbone name (see :mod:`shiftbench.models.backbones`) or ``None``
      for the model's default; models without a backbone reject one.
    - ``weights``: ``"imagenet"``, ``"random"`` or a path to a state dict.
    - ``image_size``: square side (px) images are resized to before the network.
    - ``seed``: seeds every random choice (initialisation, sampling, augmentation).
    - ``batch_size``: images per forward pass (memory and speed, not results); ``None``
      sizes batches to ~2^18 input pixels (16 images at 128 px, 4 at 256 px), which keeps
      a backbone's activations in cache on CPU (inference-only models default to it).
    - ``device``: where the networks, features and fitted state live (``cpu``, ``cuda``,
      ``cuda:N``, ``mps`` or ``auto``; see :mod:`shiftbench.models.device`), resolved at
      ``fit``. Images arrive and results leave on the CPU. A saved model loads on the
      CPU; :meth:`to` moves a fitted model (``load_model(path).to("cuda")``).
    """

    #: registry name, set by :func:`shiftbench.models.registry.register_model`
    name: ClassVar[str] = ""
    #: the backbone used when ``backbone=None``; ``None`` means the model takes no backbone
    default_backbone: ClassVar[str | None] = None

    def __init__(
        self,
        *,
        backbone: str | None = None,
        weights: str = "imagenet",
        image_size: int = 256,
        seed: int = 0,
        batch_size: int | None = 16,
        device: str = "cpu",
    ) -> None:
        self.backbone = backbone
        self.weights = weights
        self.image_size = image_size
        self.seed = seed
        self.batch_size = batch_size
        self.device = device

    # ------------------------------------------------------------------ parameters
    @classmethod
    def _param_names(cls) -> list[str]:
        names: list[str] = []
        for klass in cls.__mro__:
            if klass is object or "__init__" not in vars(klass):
                continue
            for p in inspect.signature(klass.__init__).parameters.values():
                if p.name != "self" and p.kind is p.KEYWORD_ONLY and p.name not in names:
                    names.append(p.name)
        # ``device`` came later than the other common parameters: an adapter whose own
        # __init__ does not take it runs on the CPU and neither reports nor accepts it
        own = inspect.signature(cls.__init__).parameters
        if "device" not in own and not any(p.kind is p.VAR_KEYWORD for p in own.values()):
            names.remove("device")
        return names

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters (JSON-friendly), as scikit-learn's ``get_params``."""
        return {name: getattr(self, name) for name in self._param_names()}

    def validate(self) -> None:
        """Check the parameters without building anything (raises :class:`ShiftbenchError`).

        Called by :func:`shiftbench.models.create_model` so a bad name fails at once.
        Subclasses extend it; the base checks backbone, weights, image size.
        """
        from shiftbench.models import backbones

        if self.default_backbone is None:
            if self.backbone is not None:
                raise ShiftbenchError(
                    f"model {self.name!r} takes no --backbone (got {self.backbone!r})"
                )
        else:
            backbones.get_backbone(self.resolved_backbone)
            backbones.check_weights(self.weights)
        if self.weights not in ("imagenet", "random") and self.default_backbone is None:
            backbones.check_weights(self.weights)
        if not isinstance(self.image_size, int) or self.image_size < 16:
            raise ShiftbenchError(f"image_size={self.image_size!r}: must be an integer >= 16 (px)")
        if self.batch_size is not None and (
            not isinstance(self.batch_size, int) or self.batch_size < 1
        ):
            raise ShiftbenchError(
                f"batch_size={self.batch_size!r}: must be a positive integer, or None (auto)"
            )
        check_device_spec(self.device)

    @property
    def resolved_batch_size(self) -> int:
        """``batch_size``, or for ``None`` about 2^18 input pixels per batch (1 to 32)."""
        if self.batch_size is not None:
            return self.batch_size
        return max(1, min(32, round(AUTO_BATCH_PIXELS / self.image_size**2)))

    @property
    def resolved_backbone(self) -> str | None:
        """``backbone``, or the model's default when ``None``."""
        return self.backbone if self.backbone is not None else self.default_backbone

    # ------------------------------------------------------------------ declared input
    @property
    def input_config(self) -> dict[str, Any]:
        """How images are fed to the network: ``size`` (px), ``mean``/``std`` (on [0,1] RGB).

        Adapters that use a named offline fallback add ``offline_fallback`` (a string).
        """
        mean, std = self._mean_std()
        config: dict[str, Any] = {"size": self.image_size, "mean": list(mean), "std": list(std)}
        fallback = self.offline_fallback
        if fallback:
            config["offline_fallback"] = fallback
        return config

    def _mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        from shiftbench.models import backbones

        if self.resolved_backbone is None:
            return (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
        spec = backbones.get_backbone(self.resolved_backbone)
        return spec.mean, spec.std

    @property
    def offline_fallback(self) -> str | None:
        """Description of the offline substitute in use (e.g. DRAEM without DTD), or None."""
        return None

    @property
    def metadata(self) -> dict[str, Any]:
        """Everything to record next to results: name, parameters, input config, size."""
        meta = {"model": self.name, "params": self.get_params(), "input_config": self.input_config}
        if self.is_fitted:
            meta["n_parameters"] = self.n_parameters
        return meta

    # ------------------------------------------------------------------ fitted state
    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "n_fit_images_")

    def _check_fitted(self, what: str) -> None:
        if not self.is_fitted:
            raise NotFittedError(
                f"model {self.name!r}: call fit(images) before {what}() (this instance is not fitted)"
            )

    @property
    def n_parameters(self) -> int:
        """Number of parameters and buffers that define the fitted model (e.g. memory bank)."""
        self._check_fitted("n_parameters")
        return sum(int(t.numel()) for t in self._state_tensors())

    def _state_tensors(self) -> list[torch.Tensor]:
        out: list[torch.Tensor] = []

        def walk(obj: Any) -> None:
            if isinstance(obj, torch.Tensor):
                out.append(obj)
            elif isinstance(obj, dict):
                for value in obj.values():
                    walk(value)
            elif isinstance(obj, (list, tuple)):
                for value in obj:
                    walk(value)

        walk(self._state())
        return out

    # ------------------------------------------------------------------ public API
    def fit(self, images: np.ndarray) -> AnomalyModel:
        """Fit on normal images ``uint8 [N,H,W,3]`` (RGB) on :attr:`device`; returns ``self``."""
        images = _check_images(images, "fit")
        self.validate()
        self.device_ = resolve_device(self.device)
        with _seeded_global_rngs(self.seed), numerics(self.device_):
            self._build(pretrained=True)
            self._move_to_device()
            # what building drew (more on a cold cache than a warm one) must not move the
            # fit's draws: seed again, so the fit depends on (seed, images) only
            _seed_global_rngs(self.seed)
            self._fit(self._prepare(images).to(self.device_))
        self.n_fit_images_ = int(images.shape[0])
        return self

    def to(self, device: str | torch.device) -> AnomalyModel:
        """Run on ``device`` from now on (fitted state moved there too); returns ``self``."""
        check_device_spec(device)
        self.device = str(device)
        if self.is_fitted:
            self.device_ = resolve_device(self.device)
            self._move_to_device()
        return self

    @property
    def _run_device(self) -> torch.device:
        """The resolved device of a fitted (or fitting) model; the CPU before ``fit``."""
        return getattr(self, "device_", torch.device("cpu"))

    def _move_to_device(self) -> None:
        """Move every network (``nn.Module``) and tensor attribute to ``device_``: the one
        place adapters' state changes device (a no-op on the CPU: same tensors)."""
        for name, value in list(vars(self).items()):
            if isinstance(value, nn.Module):
                value.to(self.device_)
            elif isinstance(value, torch.Tensor) and value.device != self.device_:
                setattr(self, name, value.to(self.device_))

    def score(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Score images ``uint8 [N,H,W,3]``.

        Returns ``(scores float64 [N], maps float32 [N,H,W])``: raw scores (higher = more
        anomalous) and anomaly maps at the input images' resolution.
        """
        self._check_fitted("score")
        images = _check_images(images, "score")
        n, h, w = images.shape[:3]
        scores = np.empty(n, np.float64)
        maps = np.empty((n, h, w), np.float32)
        device = self._run_device
        with torch.random.fork_rng(devices=[]), torch.inference_mode(), numerics(device):
            torch.manual_seed(self.seed)
            bs = self.resolved_batch_size
            for start in range(0, n, bs):
                x = self._prepare(images[start : start + bs]).to(device)
                s, m = self._score_batch(x)
                if m.shape[-2:] != (h, w):
                    m = F.interpolate(
                        m[:, None].float(), size=(h, w), mode="bilinear", align_corners=False
                    )[:, 0]
                scores[start : start + len(x)] = s.double().cpu().numpy()
                maps[start : start + len(x)] = m.float().cpu().numpy()
        return scores, maps

    def save(self, path: str | Path) -> Path:
        """Write the fitted model to one file (torch format); :func:`load_model` reads it."""
        self._check_fitted("save")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "model": self.name,
            "params": self.get_params(),
            "n_fit_images": self.n_fit_images_,
            "state": self._state(),
        }
        torch.save(payload, path)
        return path

    @classmethod
    def _restore(
        cls,
        params: dict[str, Any],
        state: dict[str, Any],
        n_fit_images: int,
        device: str | torch.device = "cpu",
    ) -> AnomalyModel:
        """The saved model on ``device`` (the CPU unless asked: wherever it was fitted)."""
        params = dict(params)
        if "device" in cls._param_names():
            params["device"] = str(device)
        model = cls(**params)
        model.device_ = resolve_device(device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(model.seed)
            model._build(pretrained=False)
        model._load_state(state)
        model._move_to_device()
        model.n_fit_images_ = n_fit_images
        return model

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------------ helpers
    def _prepare(self, images: np.ndarray) -> torch.Tensor:
        """``uint8 [N,H,W,3]`` -> normalised ``float32 [N,3,S,S]`` (bilinear, antialiased)."""
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(
                x, size=(self.image_size,) * 2, mode="bilinear", antialias=True, align_corners=False
            )
        mean, std = self._mean_std()
        mean_t = torch.tensor(mean, dtype=x.dtype)[None, :, None, None]
        std_t = torch.tensor(std, dtype=x.dtype)[None, :, None, None]
        return (x - mean_t) / std_t

    def _batches(self, x: torch.Tensor):
        bs = self.resolved_batch_size
        for start in range(0, len(x), bs):
            yield x[start : start + bs]

    # ------------------------------------------------------------------ subclass hooks
    @abstractmethod
    def _build(self, pretrained: bool) -> None: ...

    @abstractmethod
    def _fit(self, x: torch.Tensor) -> None: ...

    @abstractmethod
    def _score_batch(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...

    @abstractmethod
    def _state(self) -> dict[str, Any]: ...

    @abstractmethod
    def _load_state(self, state: dict[str, Any]) -> None: ...


@contextmanager
def _seeded_global_rngs(seed: int) -> Iterator[None]:
    """Seed torch's, numpy's and Python's global RNGs for the block, then restore them.

    Wrapped libraries draw from the global generators (anomalib's coreset projection uses
    numpy's), so a fit is only reproducible if all three start from ``seed``.
    """
    np_state, py_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=[]):
        _seed_global_rngs(seed)
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)


def _seed_global_rngs(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _check_images(images: Any, caller: str) -> np.ndarray:
    if isinstance(images, (list, tuple)):
        try:
            images = np.stack(images)
        except ValueError:
            raise ShiftbenchError(
                f"{caller}(images): images differ in size; resize them to one size first"
            ) from None
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        got = images.dtype if isinstance(images, np.ndarray) else type(images).__name__
        raise ShiftbenchError(f"{caller}(images): expected a uint8 array [N,H,W,3], got {got}")
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[0] == 0:
        raise ShiftbenchError(
            f"{caller}(images): expected shape [N,H,W,3] with N >= 1, got {images.shape}"
        )
    return images


def _blur_matrix(n: int, sigma: float, dtype: torch.dtype, reflect: bool) -> torch.Tensor:
    """``[n, n]`` matrix of a 1-D Gaussian blur (truncated at 4 sigma) with the padding of
    ``F.pad`` folded in: reflect, or replicate when the kernel is wider than the signal."""
    radius = int(4.0 * sigma + 0.5)
    offsets = torch.arange(-radius, radius + 1)
    kernel = torch.exp(-0.5 * (offsets.double() / sigma) ** 2)
    kernel = kernel / kernel.sum()
    idx = torch.arange(n)[:, None] + offsets[None, :]  # [n, 2r+1] source index of each tap
    if reflect:  # about the edge pixels (F.pad "reflect"; needs radius < n)
        idx = torch.where(idx < 0, -idx, idx)
        idx = torch.where(idx > n - 1, 2 * (n - 1) - idx, idx)
    else:  # F.pad "replicate"
        idx = idx.clamp(0, n - 1)
    matrix = torch.zeros(n, n, dtype=torch.float64)
    rows = torch.arange(n)[:, None].expand_as(idx)
    matrix.index_put_((rows.reshape(-1), idx.reshape(-1)), kernel.repeat(n), accumulate=True)
    return matrix.to(dtype)


def gaussian_blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``maps [B,H,W]`` (sigma in px, truncated at 4 sigma, reflect;
    replicate for maps smaller than the kernel).

    Each 1-D pass is one matrix product with a banded blur matrix that holds the padding:
    the same weighted sums as a padded convolution, ~10x faster than a 1-channel
    ``conv2d`` on CPU.
    """
    if sigma <= 0:
        return maps
    h, w = maps.shape[-2:]
    # reflect padding needs pad < size; replicate is the safe choice for tiny maps
    reflect = int(4.0 * sigma + 0.5) < min(h, w)
    rows = _blur_matrix(h, sigma, maps.dtype, reflect).to(maps.device)
    cols = rows if w == h else _blur_matrix(w, sigma, maps.dtype, reflect).to(maps.device)
    return torch.matmul(torch.matmul(rows, maps), cols.T)


def seeded_generator(seed: int) -> torch.Generator:
    """A new CPU ``torch.Generator`` seeded with ``seed``; torch's global seed is left alone
    (explicit generators keep call order irrelevant)."""
    gen = torch.Generator()
    gen.manual_seed(int(seed) % (2**63))
    return gen


def finite_or_raise(values: torch.Tensor, what: str) -> None:
    """Fail loudly on NaN/inf rather than writing them into results."""
    if not torch.isfinite(values).all():
        bad = int((~torch.isfinite(values)).sum())
        raise FloatingPointError(f"{what}: {bad} non-finite values (training diverged?)")
