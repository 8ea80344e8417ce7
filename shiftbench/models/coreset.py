"""Greedy k-center coresets (PatchCore's memory bank).

Both methods make the textbook greedy choices: start from a random point, then repeatedly
add the point farthest (Euclidean) from the chosen set. The textbook loop updates every
point's distance at every step, a memory-bound matrix-vector product per step; these two
avoid most of that work.

- ``"blocks"`` (the default before issue 19, which studies started then resume with):
  points live in blocks of 256 that remember how many centres they have seen and an upper
  bound of their largest distance. Only the block holding the current maximum must be up
  to date; the others catch up later, many centres at a time. Nearly every point still
  meets nearly every centre (~97% of the full distance matrix).
- ``"pool"`` (the default): per-point bounds instead of per-block ones. A pool of the
  points with the largest bounds (8,192) is kept exact at every step, one small
  matrix-vector product (on the CPU, the steps between two refreshes run as one loop
  compiled by numba, :func:`_pool_steps`, ~3x faster than torch calls from Python);
  every point outside it is known to be below the pool's threshold. When the pool's best
  falls below it, the next pool is made exact in large products, against only the centres
  each point has not yet met. About half the distance matrix, in large products. (bf16
  candidate products, exact by an error bound as in
  :func:`~shiftbench.models.neighbours.nearest_neighbour_bf16_recheck`, were measured
  here too: slower, since a refresh's products are small and 40% of their rows are far
  from every new centre, where the bound proves nothing and fp32 must decide anyway.)

Distances are fp32 in both, so the two pick the same points except where two candidates'
distances tie to fp32 rounding; a tie can change the order of later choices. Measured on
163,840 brick patches (10%): the same 16,384 points, in an order that first differs at
step 2,815 (the compiled steps and the torch ones: the same points, first differing at
step 8,550); see ``benchmarks/bench_patchcore.py`` for times.
"""

from __future__ import annotations

import math

import numpy as np
import torch

#: ``PatchCore(coreset_method=...)``
CORESET_METHODS = ("blocks", "pool")
_POOL = 8192  # points kept exact at every step by the "pool" method
_SLICE = 1024  # pool points made exact per product (sorted by the centres they have met)
_CENTRES = 1024  # centres per product


def greedy_coreset(
    features: torch.Tensor,
    n: int,
    *,
    projection_dim: int | None = 256,
    generator: torch.Generator | None = None,
    block_size: int = 256,
    method: str = "blocks",
) -> torch.Tensor:
    """Indices (``int64 [n]``) of a greedy k-center coreset of ``features [M, D]``.

    Distances are searched in a Gaussian random projection to ``projection_dim`` dimensions
    when ``D`` is larger (``None``/0: no projection). ``method``: ``"blocks"`` or
    ``"pool"`` (see the module docstring).
    """
    m = features.shape[0]
    if m == 0:
        raise ValueError("greedy_coreset: no features")
    if method not in CORESET_METHODS:
        raise ValueError(f"greedy_coreset: method={method!r}, choose {CORESET_METHODS}")
    n = max(1, min(int(n), m))
    z = features.float()
    if projection_dim and z.shape[1] > projection_dim:
        proj = torch.randn(z.shape[1], projection_dim, generator=generator) / math.sqrt(
            projection_dim
        )
        z = z @ proj.to(z.device)
    z = z.contiguous()
    start = int(torch.randint(m, (1,), generator=generator))
    if method == "pool":
        return _Pool(z, n).run(start)
    return _blocks(z, n, start, block_size)


def _blocks(z: torch.Tensor, n: int, start: int, block_size: int) -> torch.Tensor:
    m = z.shape[0]
    sq = (z * z).sum(1)
    n_blocks = -(-m // block_size)
    dev = z.device
    centres = torch.empty(n, z.shape[1], dtype=z.dtype, device=dev)
    centres_sq = torch.empty(n, dtype=z.dtype, device=dev)
    min_d2 = torch.full((m,), math.inf, dtype=z.dtype, device=dev)  # sq. distance to centres seen
    seen = [0] * n_blocks  # centres each block has been compared with
    bound = torch.full((n_blocks,), math.inf, dtype=z.dtype, device=dev)  # >= max min_d2 in block
    chosen = torch.empty(n, dtype=torch.long)
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


class _Pool:
    """The ``"pool"`` method's state; :meth:`run` returns the chosen indices."""

    def __init__(self, z: torch.Tensor, n: int) -> None:
        m, d = z.shape
        dev = z.device
        self.z, self.n = z, n
        self.sq = (z * z).sum(1)
        # centre rows [-2c, |c|^2]: a product with [p, 1] gives |c|^2 - 2p.c, no bias copy
        self.centres = torch.empty(n, d + 1, dtype=z.dtype, device=dev)
        self.bound = torch.full((m,), math.inf, dtype=z.dtype, device=dev)  # >= sq. distance
        self.seen = torch.zeros(m, dtype=torch.long, device=dev)  # centres each point has met
        # on the CPU, numpy views make the per-step copies ~5x cheaper than torch's setitem
        self.host = (
            (z.numpy(), self.sq.numpy(), self.centres.numpy()) if dev.type == "cpu" else None
        )

    def run(self, start: int) -> torch.Tensor:
        z, sq, n = self.z, self.sq, self.n
        chosen = np.empty(n, np.int64)
        self._add(0, start, chosen)
        self.bound[start] = -math.inf  # chosen
        members, values, threshold = self._next_pool(1)
        steps = _compiled_steps() if self.host is not None else None
        if steps is not None:  # the sequential steps in one compiled loop per pool
            host_z, host_sq, host_centres = self.host
            k = 1
            while True:
                pool_z = z.index_select(0, members)
                pool_sq = sq.index_select(0, members)
                k = steps(
                    host_z, host_sq, host_centres, chosen, members.numpy(), pool_z.numpy(),
                    pool_sq.numpy(), values.numpy(), k, n, threshold,
                )  # fmt: skip
                if k == n:
                    return torch.from_numpy(chosen)
                self.bound[members] = values  # the pool's exact values become bounds again
                self.seen[members] = k
                members, values, threshold = self._next_pool(k)
        pool_z, pool_sq = z.index_select(0, members), sq.index_select(0, members)
        for k in range(1, n):
            j = int(torch.argmax(values))
            if float(values[j]) < threshold:  # a point outside the pool may be farther
                self.bound[members] = values  # the pool's exact values become bounds again
                self.seen[members] = k
                members, values, threshold = self._next_pool(k)
                pool_z, pool_sq = z.index_select(0, members), sq.index_select(0, members)
                j = int(torch.argmax(values))
            p = int(members[j])
            self._add(k, p, chosen)
            d2 = torch.addmv(pool_sq, pool_z, z[p], alpha=-2.0).add_(sq[p])
            torch.minimum(values, d2, out=values)
            values[j] = -math.inf  # chosen (its own distance may round above 0)
        return torch.from_numpy(chosen)

    def _add(self, k: int, p: int, chosen: np.ndarray) -> None:
        chosen[k] = p
        if self.host is not None:
            z, sq, centres = self.host
            centres[k, :-1], centres[k, -1] = -2 * z[p], sq[p]
        else:
            self.centres[k, :-1], self.centres[k, -1] = -2 * self.z[p], self.sq[p]

    def _next_pool(self, k: int) -> tuple[torch.Tensor, torch.Tensor, float]:
        """``(members, exact squared distances, threshold)``: the points with the largest
        bounds made exact; every point outside has a bound below ``threshold``."""
        while True:
            top_bound, top = self.bound.topk(min(_POOL, len(self.bound)))
            threshold = float(top_bound[-1])
            top = top[torch.argsort(self.seen[top])]  # similar histories share products
            exact = torch.cat(
                [self._exact(top[s : s + _SLICE], k) for s in range(0, len(top), _SLICE)]
            )
            self.bound[top] = exact
            self.seen[top] = k
            keep = exact >= threshold
            if bool(keep.any()):
                return top[keep], exact[keep], threshold

    def _exact(self, idx: torch.Tensor, k: int) -> torch.Tensor:
        """Squared distances of points ``idx`` to centres ``0..k-1`` (bounds updated with
        the centres each has not met)."""
        best = self.bound.index_select(0, idx)
        first = int(self.seen[idx[0]])  # idx is sorted by seen
        if first >= k:
            return best
        pts = torch.ones(len(idx), self.z.shape[1] + 1, dtype=self.z.dtype, device=self.z.device)
        pts[:, :-1] = self.z.index_select(0, idx)
        pts_sq = self.sq.index_select(0, idx)
        for c0 in range(first, k, _CENTRES):
            d2 = torch.mm(pts, self.centres[c0 : min(k, c0 + _CENTRES)].T)
            torch.minimum(best, d2.amin(1).add_(pts_sq), out=best)
        return best


def _pool_steps(z, sq, centres, chosen, members, pool_z, pool_sq, values, k, n, threshold):
    """The pool method's greedy steps from step ``k`` on, in place: each adds the pool's
    farthest point and lowers every pool member's squared distance to it. Stops before a
    step whose best is below ``threshold`` (the pool must be refreshed) or at ``n``;
    returns the step it stopped at. Compiled by numba (:func:`_compiled_steps`)."""
    m, d = pool_z.shape
    j = 0
    for i in range(1, m):  # the first maximum, as torch.argmax
        if values[i] > values[j]:
            j = i
    while k < n:
        if not values[j] >= threshold:  # a point outside the pool may be farther
            return k
        p = members[j]
        chosen[k] = p
        for t in range(d):
            centres[k, t] = -2.0 * z[p, t]
        centres[k, d] = sq[p]
        values[j] = -np.inf  # chosen (its own distance may round above 0)
        best, j = -np.inf, 0
        for i in range(m):
            acc = np.float32(0.0)
            for t in range(d):
                acc += pool_z[i, t] * z[p, t]
            d2 = pool_sq[i] - np.float32(2.0) * acc + sq[p]
            if d2 < values[i]:
                values[i] = d2
            if values[i] > best:
                best, j = values[i], i
        k += 1
    return k


_STEPS: list = []  # the compiled _pool_steps, or None without numba (filled on first use)


def _compiled_steps():
    """:func:`_pool_steps` compiled by numba (a few seconds once, then cached on disk), or
    None when numba is not installed: the steps then run as torch calls from Python."""
    if not _STEPS:
        try:
            import numba
        except ImportError:
            _STEPS.append(None)
        else:
            # reassociation lets the dot products use SIMD lanes; no finite-math flags:
            # chosen points hold -inf
            flags = {"fastmath": {"reassoc", "contract"}, "nogil": True}
            try:
                steps = numba.njit(cache=True, **flags)(_pool_steps)
            except RuntimeError:  # no writable cache folder: compile in every process
                steps = numba.njit(**flags)(_pool_steps)
            _STEPS.append(steps)
    return _STEPS[0]
