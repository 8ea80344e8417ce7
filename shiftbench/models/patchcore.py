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

The coreset search is exact greedy k-center with lazily updated blocks (see
:func:`greedy_coreset`): matrix-matrix products instead of anomalib's one full pass over all
points per step (see ``benchmarks/bench_patchcore.py`` for the figures).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from shiftbench.errors import ShiftbenchError
from shiftbench.models import backbones
from shiftbench.models.base import AnomalyModel, gaussian_blur, seeded_generator
from shiftbench.models.registry import register_model

# query rows per distance block: a block of chunk x bank floats that stays in cache makes
# the min/top-k pass over it ~2x cheaper than streaming a large block from memory
_NN_CHUNK = 96


def greedy_coreset(
    features: torch.Tensor,
    n: int,
    *,
    projection_dim: int | None = 256,
    generator: torch.Generator | None = None,
    block_size: int = 256,
) -> torch.Tensor:
    """Indices (``int64 [n]``) of a greedy k-center coreset of ``features [M, D]``.

    Starts from a random point, then repeatedly adds the point farthest (Euclidean) from
    the chosen set, searched in a Gaussian random projection to ``projection_dim``
    dimensions when ``D`` is larger (``None``/0: no projection).

    Same choices as the textbook loop, which updates every point's distance at every step
    (a memory-bound matrix-vector product). Here points live in blocks that remember how
    many centres they have seen and an upper bound of their largest distance; only the
    block holding the current maximum must be up to date, so the others catch up later,
    many centres at a time, in one matrix-matrix product (compute-bound, ~10x faster).
    """
    m = features.shape[0]
    if m == 0:
        raise ValueError("greedy_coreset: no features")
    n = max(1, min(int(n), m))
    z = features.float()
    if projection_dim and z.shape[1] > projection_dim:
        proj = torch.randn(z.shape[1], projection_dim, generator=generator) / math.sqrt(
            projection_dim
        )
        z = z @ proj.to(z.device)
    z = z.contiguous()
    sq = (z * z).sum(1)
    n_blocks = -(-m // block_size)
    dev = z.device
    centres = torch.empty(n, z.shape[1], dtype=z.dtype, device=dev)
    centres_sq = torch.empty(n, dtype=z.dtype, device=dev)
    min_d2 = torch.full((m,), math.inf, dtype=z.dtype, device=dev)  # sq. distance to centres seen
    seen = [0] * n_blocks  # centres each block has been compared with
    bound = torch.full((n_blocks,), math.inf, dtype=z.dtype, device=dev)  # >= max min_d2 in block
    chosen = torch.empty(n, dtype=torch.long)
    start = int(torch.randint(m, (1,), generator=generator))
    chosen[0], centres[0], centres_sq[0] = start, z[start], sq[start]
    for k in range(1, n):
        while True:
            b = int(torch.argmax(bound))
            lo, hi = b * block_size, min(m, (b + 1) * block_size)
            if seen[b] == k:
                break
            block = min_d2[lo:hi]
            for c0 in range(seen[b], k, 1024):  # caps the temporary at block x 1024 floats
                c1 = min(k, c0 + 1024)
                d2 = torch.addmm(centres_sq[None, c0:c1], z[lo:hi], centres[c0:c1].T, alpha=-2.0)
                torch.minimum(block, d2.amin(1).add_(sq[lo:hi]), out=block)
            bound[b] = block.max()
            seen[b] = k
        j = lo + int(torch.argmax(min_d2[lo:hi]))
        chosen[k], centres[k], centres_sq[k] = j, z[j], sq[j]
    return chosen


def nearest_neighbours(
    queries: torch.Tensor,
    bank: torch.Tensor,
    bank_sq: torch.Tensor | None = None,
    k: int = 1,
    bank_t: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean ``k`` nearest bank rows of each query: ``(distances [Q,k], indices [Q,k])``.

    ``bank_sq`` (squared row norms) and ``bank_t`` (``bank.T`` made contiguous, ~8% faster
    products) may be passed precomputed."""
    if bank_sq is None:
        bank_sq = (bank * bank).sum(1)
    if bank_t is None:
        bank_t = bank.T
    k = min(k, bank.shape[0])
    dists, idxs = [], []
    for start in range(0, queries.shape[0], _NN_CHUNK):
        q = queries[start : start + _NN_CHUNK]
        # |b|^2 - 2 q.b ranks the bank like |q - b|^2; |q|^2 is added to the k winners only
        d2 = torch.addmm(bank_sq[None, :], q, bank_t, beta=1.0, alpha=-2.0)
        if k == 1:
            v, i = d2.min(1, keepdim=True)
        else:
            v, i = d2.topk(k, dim=1, largest=False)
        v.add_((q * q).sum(1, keepdim=True))
        dists.append(v.clamp_min_(0).sqrt_())
        idxs.append(i)
    return torch.cat(dists), torch.cat(idxs)


#: ``PatchCore(search=...)``: exact fp32 products (default) or bf16 candidates re-ranked in fp32
SEARCH_MODES = ("exact", "bf16-recheck")
#: candidates per query that ``search="bf16-recheck"`` re-ranks in fp32
_RECHECK_K = 4
_BF16_CHUNK = 512


def bf16_index(bank: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The bank as ``search="bf16-recheck"`` reads it: ``(mean [D], centred bank.T in
    bfloat16 [D, N], squared norms of the centred rows in bfloat16 [1, N])``."""
    mean = bank.mean(0)
    centred = bank - mean
    return mean, centred.T.contiguous().bfloat16(), (centred * centred).sum(1).bfloat16()[None]


def nearest_neighbour_bf16_recheck(
    queries: torch.Tensor,
    bank: torch.Tensor,
    index: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    k: int = _RECHECK_K,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The nearest bank row of each query, ``(distances [Q,1], indices [Q,1])``.

    A bfloat16 product (centred features) ranks the bank approximately; its ``k`` best
    rows are re-ranked by exact fp32 distances ``|q - b|``. The answer is the exact nearest
    row whenever that row is among the ``k`` candidates (bf16 distances are off by up to
    ~2^-8 of ``|q||b|``); otherwise a row whose distance is within about that error of the
    nearest (measured: all of 20,480 texture patches exact; 99.6% of queries on a test set
    built of near-ties). Distances are always exact fp32 distances of the row returned.
    """
    mean, bank_t16, sq16 = index
    k = min(k, bank.shape[0])
    dists, idxs = [], []
    for start in range(0, queries.shape[0], _BF16_CHUNK):
        q = queries[start : start + _BF16_CHUNK]
        approx = torch.addmm(sq16, (q - mean).bfloat16(), bank_t16, alpha=-2.0)
        cand = approx.topk(k, dim=1, largest=False, sorted=False).indices  # [c, k]
        d2 = (q[:, None, :] - bank[cand]).square_().sum(2)  # exact, [c, k]
        v, j = d2.min(1, keepdim=True)
        dists.append(v.sqrt_())
        idxs.append(cand.gather(1, j))
    return torch.cat(dists), torch.cat(idxs)


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
    smoothing in px at model input size, default 4), ``search`` (``"exact"``, the default:
    fp32 distances to the whole bank; ``"bf16-recheck"``, opt-in: a bfloat16 product — AMX
    on recent Xeons — picks 4 candidates per patch, re-ranked by exact fp32 distances;
    approximate: the nearest patch unless the true one falls outside those 4, see
    :func:`nearest_neighbour_bf16_recheck` and ``benchmarks/bench_patchcore.py``; the fit
    is unchanged). ``batch_size`` defaults to None: batches
    of ~2^18 pixels whose activations stay in cache, which on CPU embeds ~1.5x faster per
    image than 16 images at 256 px (scores do not depend on it).
    """

    default_backbone = "efficientnet_lite0"

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
        search: str = "exact",
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

    @property
    def resolved_layers(self) -> list[str]:
        return backbones.resolve_layers(self.resolved_backbone, self.layers, "patchcore_layers")

    def validate(self) -> None:
        super().validate()
        backbones.check_layers(self.resolved_backbone, self.resolved_layers)
        if not 0 < self.coreset_ratio <= 1:
            raise ShiftbenchError(f"coreset_ratio={self.coreset_ratio!r}: must be in (0, 1]")
        if self.num_neighbors < 1:
            raise ShiftbenchError(f"num_neighbors={self.num_neighbors!r}: must be >= 1")
        if self.search not in SEARCH_MODES:
            raise ShiftbenchError(
                f"search={self.search!r}: choose {' or '.join(SEARCH_MODES)} (exact is the default)"
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
            idx = greedy_coreset(emb, n_keep, projection_dim=self.projection_dim, generator=gen)
            emb = emb[idx]
        self.memory_bank_ = emb.contiguous().clone()
        self._index_bank()

    @staticmethod
    def _flat(emb: torch.Tensor) -> torch.Tensor:
        return emb.permute(0, 2, 3, 1).reshape(-1, emb.shape[1])

    def _score_batch(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        emb = self.embed(x)
        b, d, h, w = emb.shape
        flat = self._flat(emb)
        if self.search == "bf16-recheck":
            index = (self.bank_mean_, self.bank_t16_, self.bank_sq16_)
            dist, nn_idx = nearest_neighbour_bf16_recheck(flat, self.memory_bank_, index)
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
        if self.search == "bf16-recheck":
            self.bank_mean_, self.bank_t16_, self.bank_sq16_ = bf16_index(self.memory_bank_)
