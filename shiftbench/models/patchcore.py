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
from dataclasses import dataclass, field
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


#: ``PatchCore(search=...)``: fp32 products over the whole bank (default), or a bfloat16
#: product whose candidates are re-checked in fp32 (the same nearest row, see below)
SEARCH_MODES = ("exact", "bf16-recheck")
#: unit roundoff of bfloat16 (8 significant bits, round to nearest)
_U_BF16 = 2.0**-8
#: query rows per bf16 product (a 256 x 16k block keeps AMX near its peak)
_BF16_CHUNK = 1024
#: bank columns per candidate group (strided: group g holds columns g, g + N/G, ...)
_BF16_GROUP = 32
_FAR = -1e30  # key of the padding columns


@dataclass
class Bf16Index:
    """The bank as ``search="bf16-recheck"`` reads it (see :func:`bf16_index`)."""

    mean: torch.Tensor  # [D], fp32: the bank's mean, subtracted from bank and queries
    table: torch.Tensor  # [K, N'], bf16: rows b' and -|b'|^2/2; padded to 32 x 64
    max_norm: float  # max |b'| over the centred bank rows
    max_half_sq: float  # max |b'|^2 / 2
    #: the search's work buffers, kept between calls (a fresh 32 MB block per call costs
    #: ~1/3 of the search in page faults)
    scratch: dict = field(default_factory=dict, repr=False)

    def buffers(self, rows: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """``(queries [rows, K], keys [rows, N'])`` in bf16, the queries' bias column 1."""
        k, n_cols = self.table.shape
        qa, out = self.scratch.get("buffers", (None, None))
        if qa is None or qa.shape[0] < rows or qa.device != device:
            qa = torch.zeros(rows, k, dtype=torch.bfloat16, device=device)
            out = torch.empty(rows, n_cols, dtype=torch.bfloat16, device=device)
            self.scratch["buffers"] = (qa, out)
        return qa, out


def bf16_index(bank: torch.Tensor) -> Bf16Index:
    """Index ``bank [N, D]`` for :func:`nearest_neighbour_bf16_recheck`.

    With centred rows ``b' = b - mean``, ``|q - b|^2 = |q'|^2 - 2 (q'.b' - |b'|^2/2)``, so
    the nearest row maximises the key ``[q', 1] . [b', -|b'|^2/2]``: one plain matrix
    product. Inner size padded to a multiple of 32 (AMX tiles), columns to a multiple of
    64 (padding keys: -1e30)."""
    n, d = bank.shape
    mean = bank.mean(0)
    centred = bank - mean
    half_sq = 0.5 * (centred * centred).sum(1)
    k = -(-(d + 1) // 32) * 32
    cols = -(-n // _BF16_GROUP) * _BF16_GROUP
    table = torch.zeros(k, cols, dtype=torch.bfloat16, device=bank.device)
    table[:d, :n] = centred.T
    table[d, :n] = -half_sq
    table[d, n:] = _FAR
    return Bf16Index(
        mean, table, float(centred.norm(dim=1).max()), float(half_sq.max()) if n else 0.0
    )


def nearest_neighbour_bf16_recheck(
    queries: torch.Tensor, bank: torch.Tensor, index: Bf16Index, chunk: int = _BF16_CHUNK
) -> tuple[torch.Tensor, torch.Tensor]:
    """The nearest bank row of each query, ``(distances [Q,1], indices [Q,1])``: the same
    row as an exact search, found with a bfloat16 product (AMX on recent Xeons).

    Error bound. A query's bf16 keys ``k~(b)`` (see :func:`bf16_index`) are within
    ``E = e (|q'| max|b'| + max|b'|^2/2)`` of the true keys, ``e = 1.05 (3u + 4u^2 +
    2K 2^-24)``, u = 2^-8: rounding ``q'`` and ``b'`` to bf16 moves each product term by
    at most ``(2u + u^2)|q'_i b'_i|`` (and ``sum |q'_i b'_i| <= |q'||b'|``), the fp32
    accumulation of K terms by ``K 2^-24`` of their sum, rounding the bias and the result
    to bf16 by ``u`` of each; the 5% covers higher-order terms and the fp32 centring
    (~D 2^-24). Positive bf16 values order like their bits read as int16, so the reductions
    are integer ones (~3x faster than bf16); a query whose line is not positive (its nearest
    row is farther than ``|q'|``, so the int16 order does not hold; rare) is searched with
    the exact fp32 search instead. The nearest row ``b*`` has the largest true key, so ``k~(b*) >= max k~ - 2E``:
    every row above that line is a candidate (found through the maxima of column groups),
    and the candidates' exact fp32 distances ``|q - b|`` pick the answer (ties: the lowest
    row). PatchCore banks give ~3 candidates per query (measured: mean 2.6, max 23 of
    16,384). Distances are the exact fp32 distances
    of the rows returned, computed as ``|q - b|`` (the exact search's ``|b|^2 - 2q.b +
    |q|^2`` may differ in the last bits).
    """
    n, d = bank.shape
    if n == 0:
        raise ValueError("nearest_neighbour_bf16_recheck: empty bank")
    mean, table = index.mean, index.table
    n_cols = table.shape[1]
    n_groups = n_cols // _BF16_GROUP
    e = 1.05 * (3 * _U_BF16 + 4 * _U_BF16**2 + 2 * table.shape[0] * 2.0**-24)
    dev = queries.device
    qa, out = index.buffers(min(chunk, queries.shape[0]), dev)
    qa[:, d] = 1.0
    dists, idxs = [], []
    for start in range(0, queries.shape[0], chunk):
        q = queries[start : start + chunk]
        c = q.shape[0]
        centred = q - mean
        scale = centred.norm(dim=1) * index.max_norm + index.max_half_sq
        qa[:c, :d] = centred
        key = torch.mm(qa[:c], table, out=out[:c]).view(torch.int16)
        group_max = key.view(c, _BF16_GROUP, n_groups).amax(1)  # [c, groups]
        top = group_max.amax(1).view(torch.bfloat16).float()
        line = top - 2 * e * scale
        exact = line <= 0  # int16 order is the float order only above 0
        line16 = (line - line.abs() * 2.0**-7).bfloat16().view(torch.int16)[:, None]
        r, g = torch.nonzero(group_max >= line16, as_tuple=True)
        flat = (r * n_cols + g)[:, None] + torch.arange(0, n_cols, n_groups, device=dev)
        hit = key.view(-1).take(flat) >= line16.index_select(0, r)
        p, t = torch.nonzero(hit, as_tuple=True)
        rows, cols = r.index_select(0, p), t * n_groups + g.index_select(0, p)
        keep = torch.nonzero((cols < n) & ~exact.index_select(0, rows))[:, 0]
        rows, cols = rows.index_select(0, keep), cols.index_select(0, keep)
        d2 = (q.index_select(0, rows) - bank.index_select(0, cols)).square_().sum(1)  # exact
        best = torch.full((c,), math.inf, device=dev).scatter_reduce_(0, rows, d2, "amin")
        col = torch.where(d2 == best[rows], cols, n)
        best_col = torch.full((c,), n, dtype=cols.dtype, device=dev)
        best_col.scatter_reduce_(0, rows, col, "amin")
        best.sqrt_()
        if bool(exact.any()):
            redo = torch.nonzero(exact)[:, 0]
            dist, i = nearest_neighbours(q[redo], bank)
            best[redo], best_col[redo] = dist[:, 0], i[:, 0]
        dists.append(best[:, None])
        idxs.append(best_col[:, None])
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
        if self.search == "bf16-recheck":
            self.bf16_index_ = bf16_index(self.memory_bank_)
