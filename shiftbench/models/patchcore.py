"""Native PatchCore (Roth et al., "Towards Total Recall in Industrial Anomaly Detection", 2022).

Pipeline, as in the paper and the proposal:

1. features of two backbone layers (layer2+layer3 or their equivalents, strides 8 and 16);
2. local aggregation: 3x3 average pooling of each layer;
3. the coarser layer upsampled (bilinear) to the finer one, channels concatenated;
4. memory bank = greedy k-center coreset of all training patches (default 10%), searched in
   a random projection (Johnson-Lindenstrauss) of the features;
5. patch score = distance to the nearest memory-bank patch; image score = the maximum patch
   score, re-weighted by the paper's density term (softmax over the distances of that test
   patch to the ``num_neighbors`` bank neighbours of its nearest bank patch);
6. map = patch scores upsampled (bilinear) to the model input size and Gaussian-smoothed
   (sigma 4 px), then resized to the input resolution.

The coreset is exact greedy k-center (:mod:`shiftbench.models.coreset`): matrix-matrix
products instead of anomalib's one full pass over all points per step; nearest patches
come from :mod:`shiftbench.models.neighbours` (see ``benchmarks/bench_patchcore.py`` for
the figures).
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from shiftbench.errors import ShiftbenchError
from shiftbench.models import backbones
from shiftbench.models.base import AnomalyModel, gaussian_blur, seeded_generator
from shiftbench.models.coreset import CORESET_METHODS, greedy_coreset
from shiftbench.models.neighbours import (
    SEARCH_MODES,
    bf16_index,
    has_fast_bf16,
    nearest_neighbour_bf16_recheck,
    nearest_neighbours,
)
from shiftbench.models.registry import register_model


@register_model(
    "patchcore", "Native PatchCore: fast exact coreset, density re-weighting (demo default)"
)
class PatchCore(AnomalyModel):
    """Native PatchCore; see the module docstring.

    Options: ``layers`` (default: the backbone's layer2+layer3 equivalents),
    ``coreset_ratio`` (fraction of training patches kept, default 0.1), ``projection_dim``
    (random projection for the coreset search when features are wider, default 256 — about
    anomalib's Johnson-Lindenstrauss size; 0 = none), ``num_neighbors``
    (support set of the density re-weighting, default 9; 1 = plain max), ``sigma`` (map
    smoothing in px at model input size, default 4), ``search`` (the nearest-patch search,
    exact in every mode: ``"exact"``, fp32 products with the whole bank;
    ``"bf16-recheck"``, a bfloat16 product (AMX or AVX512-BF16 on Xeons, tensor cores on
    GPUs) whose candidates are re-checked in fp32: the same nearest patches, faster where
    bf16 products are native and slower where they are emulated, see
    :func:`~shiftbench.models.neighbours.nearest_neighbour_bf16_recheck`; ``"auto"``, the
    default: ``"bf16-recheck"`` where the device has native bf16 products, else
    ``"exact"``; :attr:`resolved_search` and, once fitted, ``search_`` say which),
    ``coreset_method`` (``"pool"``, the default: greedy k-center with per-point bounds,
    about half the distance products of ``"blocks"``, its sequential steps compiled by
    numba; ``"blocks"``, the default before issue 19: the same picks up to fp32 ties; see
    :mod:`shiftbench.models.coreset`). The two searches find the same nearest patches but
    compute distances differently (``|q - b|`` against ``|b|^2 - 2q.b + |q|^2``), so
    scores differ between them in the last bits. ``batch_size`` defaults to None: batches
    of ~2^18 pixels whose activations stay in cache, which on CPU embeds ~1.5x faster per
    image than 16 images at 256 px (scores do not depend on it).
    """

    default_backbone = "efficientnet_lite0"
    #: the values of options whose defaults have changed, before the change: a study whose
    #: manifest does not record an option resumes with these (its numbers stay the same)
    legacy_defaults: ClassVar[dict[str, Any]] = {"coreset_method": "blocks", "search": "exact"}

    def __init__(
        self,
        *,
        backbone: str | None = None,
        weights: str = "imagenet",
        image_size: int = 256,
        seed: int = 0,
        batch_size: int | None = None,
        device: str = "cpu",
        layers: list[str] | None = None,
        coreset_ratio: float = 0.1,
        projection_dim: int = 256,
        num_neighbors: int = 9,
        sigma: float = 4.0,
        search: str = "auto",
        coreset_method: str = "pool",
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
        self.projection_dim = projection_dim
        self.num_neighbors = num_neighbors
        self.sigma = sigma
        self.search = search
        self.coreset_method = coreset_method

    @property
    def resolved_layers(self) -> list[str]:
        return backbones.resolve_layers(self.resolved_backbone, self.layers, "patchcore_layers")

    @property
    def resolved_search(self) -> str:
        """``search`` with ``"auto"`` resolved for the device the model runs on (fitted)
        or will run on: ``"bf16-recheck"`` where bf16 products are native, else
        ``"exact"``."""
        if self.search != "auto":
            return self.search
        if hasattr(self, "device_"):
            device = self.device_
        else:
            from shiftbench.models.device import resolve_device

            device = resolve_device(self.device)
        return "bf16-recheck" if has_fast_bf16(device) else "exact"

    def resolved_params(self) -> dict[str, Any]:
        """:meth:`get_params` with ``search`` resolved (:attr:`resolved_search`): what a
        study records, so that its resumed fits run the same search."""
        return {**self.get_params(), "search": self.resolved_search}

    def validate(self) -> None:
        super().validate()
        backbones.check_layers(self.resolved_backbone, self.resolved_layers)
        if not 0 < self.coreset_ratio <= 1:
            raise ShiftbenchError(f"coreset_ratio={self.coreset_ratio!r}: must be in (0, 1]")
        if self.num_neighbors < 1:
            raise ShiftbenchError(f"num_neighbors={self.num_neighbors!r}: must be >= 1")
        if self.search not in SEARCH_MODES:
            raise ShiftbenchError(
                f"search={self.search!r}: choose {', '.join(SEARCH_MODES)} (auto is the default)"
            )
        if self.coreset_method not in CORESET_METHODS:
            raise ShiftbenchError(
                f"coreset_method={self.coreset_method!r}: choose "
                f"{' or '.join(CORESET_METHODS)} (pool is the default)"
            )

    # ---------------------------------------------------------------- hooks
    def _build(self, pretrained: bool) -> None:
        weights = self.weights if pretrained else "random"
        self.extractor_ = backbones.create_feature_extractor(
            self.resolved_backbone,
            weights,
            self.resolved_layers,
            seed=self.seed,
            device=self._run_device,
        ).to(memory_format=torch.channels_last)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Locally aware patch features ``[B, D, h, w]`` of normalised images ``x``."""
        # channels-last runs this backbone's convolutions ~1.3x faster on CPU; pooling,
        # resizing and concatenation keep that layout, so flattening to patches afterwards
        # [N*h*w, D] needs no copy
        feats = self.extractor_(x.contiguous(memory_format=torch.channels_last))
        feats = [f.contiguous(memory_format=torch.channels_last) for f in feats]
        feats = [F.avg_pool2d(f, 3, stride=1, padding=1) for f in feats]
        size = feats[0].shape[-2:]
        feats = [feats[0]] + [
            F.interpolate(f, size=size, mode="bilinear", align_corners=False) for f in feats[1:]
        ]
        return torch.cat(feats, 1)

    def _fit(self, x: torch.Tensor) -> None:
        with torch.inference_mode():
            emb = torch.cat([self._flat(self.embed(b)) for b in self._batches(x)])
        gen = seeded_generator(self.seed)
        n_keep = max(1, int(emb.shape[0] * self.coreset_ratio))
        if n_keep < emb.shape[0]:
            idx = greedy_coreset(
                emb,
                n_keep,
                projection_dim=self.projection_dim,
                generator=gen,
                method=self.coreset_method,
            )
            emb = emb[idx]
        self.memory_bank_ = emb.contiguous().clone()
        self._index_bank()

    @staticmethod
    def _flat(emb: torch.Tensor) -> torch.Tensor:
        return emb.permute(0, 2, 3, 1).reshape(-1, emb.shape[1])

    def _score_batch(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._score_embedding(self.embed(x))

    def _embed_batch(self, x: torch.Tensor) -> torch.Tensor:  # the feature API
        return self.embed(x)

    def _score_embedding(self, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, d, h, w = emb.shape
        flat = self._flat(emb)
        if self.search_ == "bf16-recheck":
            dist, nn_idx = nearest_neighbour_bf16_recheck(flat, self.memory_bank_, self.bf16_index_)
        else:
            dist, nn_idx = nearest_neighbours(
                flat, self.memory_bank_, self.bank_sq_, bank_t=self.bank_t_
            )
        patch = dist[:, 0].view(b, h * w)
        nn_idx = nn_idx[:, 0].view(b, h * w)
        scores = self._reweight(patch, nn_idx, flat.view(b, h * w, d))
        maps = F.interpolate(
            patch.view(b, 1, h, w),
            size=(self.image_size,) * 2,
            mode="bilinear",
            align_corners=False,
        )
        maps = gaussian_blur(maps[:, 0], self.sigma)
        return scores, maps

    def _reweight(
        self, patch: torch.Tensor, nn_idx: torch.Tensor, flat: torch.Tensor
    ) -> torch.Tensor:
        """Image score: the max patch score times ``1 - softmax(...)[0]`` (paper eq. 7)."""
        rows = torch.arange(patch.shape[0], device=patch.device)
        worst = patch.argmax(1)
        s_star = patch[rows, worst]
        if self.num_neighbors == 1:
            return s_star
        m_test = flat[rows, worst]  # [B, D]
        m_star = self.memory_bank_[nn_idx[rows, worst]]  # [B, D]
        _, support = nearest_neighbours(
            m_star, self.memory_bank_, self.bank_sq_, k=self.num_neighbors, bank_t=self.bank_t_
        )
        d = torch.linalg.vector_norm(
            m_test[:, None, :] - self.memory_bank_[support], dim=2
        )  # [B, k]
        weight = 1.0 - torch.softmax(d.double(), dim=1)[:, 0]
        return weight * s_star.double()

    def _state(self) -> dict[str, Any]:
        return {"extractor": self.extractor_.state_dict(), "memory_bank": self.memory_bank_}

    def _load_state(self, state: dict[str, Any]) -> None:
        self.extractor_.load_state_dict(state["extractor"])
        self.memory_bank_ = state["memory_bank"].float().contiguous()
        self._index_bank()

    def _index_bank(self) -> None:
        """Search helpers derived from the memory bank (not saved: recomputed on load)."""
        self.bank_sq_ = (self.memory_bank_ * self.memory_bank_).sum(1)
        self.bank_t_ = self.memory_bank_.T.contiguous()
        self._index_search()

    def _move_to_device(self) -> None:
        super()._move_to_device()
        if not hasattr(self, "memory_bank_"):
            return
        # a fitted model moved (``to``, ``load_model``): the search and its index follow
        index = getattr(self, "bf16_index_", None)
        stale = index is not None and index.table.device != self.memory_bank_.device
        if stale or getattr(self, "search_", None) != self.resolved_search:
            self._index_search()

    def _index_search(self) -> None:
        """``search_`` (``search`` resolved for the bank's device) and its index."""
        self.search_ = self.resolved_search
        self.bf16_index_ = None
        if self.search_ == "bf16-recheck":
            self.bf16_index_ = bf16_index(self.memory_bank_)
            if self.search != "auto" and not has_fast_bf16(self._run_device):
                warnings.warn(
                    f"search='bf16-recheck': {self._run_device} has no native bf16 "
                    "products, so this search is slower than search='exact' or 'auto' (the "
                    "same nearest patches)",
                    RuntimeWarning,
                    stacklevel=2,
                )
