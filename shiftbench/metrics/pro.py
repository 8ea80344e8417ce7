"""Per-region overlap (PRO) curve and its normalised area (AUPRO), official MVTec AD definition.

Definition (Bergmann et al., MVTec AD evaluation code ``generic_util.trapezoid`` and
``pro_curve_util.compute_pro``):

- Regions are the connected components of each ground-truth mask, 8-connectivity; holes in
  a defect are normal pixels. Every region of every image counts once (equal weight).
- For a threshold ``t`` (rule ``map >= t``): FPR = flagged normal pixels / all normal pixels
  of all images (fully normal images included); PRO = mean over regions of the fraction of
  the region flagged.
- Every distinct score value is a threshold (tied scores give one point); the curve starts at
  (0, 0) and ends at (1, 1).
- AUPRO = trapezoid area up to ``fpr_limit``, the curve linearly interpolated at the limit,
  divided by ``fpr_limit`` (a perfect map scores 1.0, a constant map 0.15 at 0.3).

Differences from the official script, deliberate: FPR is float64 (it uses float32 after the
cumulative sum) and counts are exact integers, so this matches the definition to ~1e-15.

Speed: only the curve below ``fpr_limit`` matters, and it depends only on the normal pixels
scoring at or above the score ``s*`` where the FPR crosses the limit. :func:`aupro` finds
``s*`` with ``np.partition`` (linear time), sorts just those ~30% of the normal pixels and
the anomalous pixels above ``s*``, and integrates level by level: between two consecutive
distinct scores the FPR moves only by the normal pixels at the lower score, so the area is
``sum_s 0.5 * (PRO(> s) + PRO(>= s)) * count_normal(s) / n_normal`` over the distinct normal
scores ``s``, with PRO read from a sorted cumulative sum of the anomalous pixels.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from shiftbench.metrics._checks import MetricInputError, check_pixel_inputs, iter_images

__all__ = ["aupro", "pro_curve"]

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)
_CHUNK = 1 << 20


def aupro(maps, masks, fpr_limit: float = 0.3) -> float:
    """Normalised area under the PRO curve up to ``fpr_limit`` (official MVTec AD AUPRO).

    Args:
        maps: ``[N, H, W]`` anomaly maps, higher = more anomalous.
        masks: ``[N, H, W]`` ground truth; any non-zero pixel is anomalous.
        fpr_limit: integration limit on the pixel false-positive rate, in (0, 1].

    Returns:
        Area divided by ``fpr_limit``, in [0, 1].

    Raises:
        MetricInputError: no anomalous region, no normal pixel, NaN/inf in a map, shapes that
            differ, or ``fpr_limit`` outside (0, 1].

    Extra memory is about one copy of the normal pixels plus a few arrays the size of the
    anomalous pixels.
    """
    func = "aupro"
    limit = float(fpr_limit)
    if not 0.0 < limit <= 1.0:
        raise MetricInputError(f"{func}: fpr_limit must be in (0, 1], got {fpr_limit!r}")
    normal, anomalous, weights, n_regions = _split_with_regions(maps, masks, func)
    n_normal = normal.size

    # k = most normal pixels that may be flagged while FPR = k / n_normal stays <= limit,
    # decided with the same float comparison the official curve cut uses.
    k = min(int(limit * n_normal), n_normal)
    while k < n_normal and (k + 1) / n_normal <= limit:
        k += 1
    while k > 0 and k / n_normal > limit:
        k -= 1

    if k < n_normal:
        # s_star: the (k+1)-th largest normal score, where the FPR first exceeds the limit.
        cut = n_normal - k - 1
        normal.partition(cut)
        top = normal[cut:]
        top.sort()
        s_star = top[0]
        # Normal pixels tied with s_star left below the cut still move the crossing point.
        n_tied_below = sum(
            int(np.count_nonzero(normal[lo : min(lo + _CHUNK, cut)] == s_star))
            for lo in range(0, cut, _CHUNK)
        )
    else:
        normal.sort()
        top, s_star, n_tied_below = normal, normal[0], 0

    keep = anomalous >= s_star
    a_scores, a_tail = _tail_overlap(anomalous[keep], weights[keep], n_regions)
    del anomalous, weights, keep

    area = 0.0
    n_top = top.size
    for lo, hi in _tie_aligned_chunks(top):
        v = top[lo:hi]
        starts = np.flatnonzero(np.r_[True, v[1:] != v[:-1]])
        ends = np.r_[starts[1:], v.size]
        levels = v[starts]
        above = n_top - (lo + ends)  # normal pixels strictly above each level
        count = ends - starts
        if lo == 0:
            count[0] += n_tied_below
        fpr_before = above / n_normal
        fpr_after = (above + count) / n_normal
        np.minimum(fpr_after, 1.0, out=fpr_after)
        pro_before = a_tail[np.searchsorted(a_scores, levels, side="right")]
        pro_after = a_tail[np.searchsorted(a_scores, levels, side="left")]
        if lo == 0 and k < n_normal:
            # The lowest level crosses the limit: interpolate there, as the official code.
            x0, x1 = fpr_before[0], fpr_after[0]
            y0, y1 = pro_before[0], pro_after[0]
            if x0 < limit:
                y_lim = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
                area += 0.5 * (y_lim + y0) * (limit - x0)
            fpr_before, fpr_after = fpr_before[1:], fpr_after[1:]
            pro_before, pro_after = pro_before[1:], pro_after[1:]
        area += float(np.sum(0.5 * (pro_after + pro_before) * (fpr_after - fpr_before)))
    return area / limit


def pro_curve(maps, masks) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The full PRO curve, one point per distinct score, as in the official evaluation.

    Returns ``(fpr, pro, thresholds)``, float64 ``[K + 2]``, FPR non-decreasing: the first
    point (0, 0) has threshold ``+inf`` (nothing flagged), then one point per distinct score
    in decreasing order (rule ``map >= threshold``), then the closing point (1, 1) with
    threshold ``-inf``. ``fpr`` and ``pro`` are clipped to at most 1. Integrating it with the
    official trapezoid rule gives :func:`aupro`; this materialises O(pixels) arrays, use
    :func:`aupro` for the number.
    """
    func = "pro_curve"
    normal, anomalous, weights, n_regions = _split_with_regions(maps, masks, func)
    normal.sort()
    a_scores, a_tail = _tail_overlap(anomalous, weights, n_regions)
    thresholds = np.union1d(normal, a_scores)[::-1]
    flagged = normal.size - np.searchsorted(normal, thresholds, side="left")
    fpr = np.minimum(flagged / normal.size, 1.0)
    pro = a_tail[np.searchsorted(a_scores, thresholds, side="left")]
    thr = thresholds.astype(np.float64)
    return (
        np.concatenate(([0.0], fpr, [1.0])),
        np.concatenate(([0.0], pro, [1.0])),
        np.concatenate(([np.inf], thr, [-np.inf])),
    )


def _split_with_regions(maps, masks, func: str):
    """Normal scores, anomalous scores, their region weights ``1 / region size``, #regions."""
    m, g = check_pixel_inputs(maps, masks, func)
    n_anomalous = int(np.count_nonzero(g))
    n_normal = g.size - n_anomalous
    if n_anomalous == 0:
        raise MetricInputError(
            f"{func}: masks have no anomalous region; PRO is undefined "
            "(pass the maps of a set that contains defects)"
        )
    if n_normal == 0:
        raise MetricInputError(f"{func}: masks have no normal pixel; the FPR is undefined")
    normal = np.empty(n_normal, dtype=m.dtype)
    anomalous = np.empty(n_anomalous, dtype=m.dtype)
    weights = np.empty(n_anomalous, dtype=np.float64)
    i_n = i_a = n_regions = 0
    for _, mp, anom in iter_images(m, g, func):
        b = mp[~anom]
        normal[i_n : i_n + b.size] = b
        i_n += b.size
        if not anom.any():
            continue
        labels, n = ndimage.label(anom, structure=_EIGHT_CONNECTED)
        region = labels[anom]
        sizes = np.bincount(region, minlength=n + 1)
        anomalous[i_a : i_a + region.size] = mp[anom]
        weights[i_a : i_a + region.size] = 1.0 / sizes[region]
        i_a += region.size
        n_regions += n
    return normal, anomalous, weights, n_regions


def _tail_overlap(scores: np.ndarray, weights: np.ndarray, n_regions: int):
    """Sort anomalous pixels ascending; ``tail[i]`` = PRO when flagging ``scores[i:]``.

    ``tail`` has one extra trailing 0 so that ``tail[np.searchsorted(scores, t)]`` is the PRO
    at any threshold ``t``. The sum runs from the highest score down, the order of the
    official cumulative sum.
    """
    order = np.argsort(scores, kind="stable")
    scores = scores[order]
    tail = np.zeros(scores.size + 1, dtype=np.float64)
    np.cumsum(weights[order][::-1], out=tail[-2::-1] if scores.size else tail[:0])
    tail /= n_regions
    np.minimum(tail, 1.0, out=tail)
    return scores, tail


def _tie_aligned_chunks(v: np.ndarray):
    """Yield ``(lo, hi)`` chunks of the sorted ``v`` that never split a run of equal values."""
    lo = 0
    while lo < v.size:
        hi = lo + _CHUNK
        if hi >= v.size:
            hi = v.size
        else:
            hi = int(np.searchsorted(v, v[hi], side="left"))
            if hi <= lo:
                hi = int(np.searchsorted(v, v[lo], side="right"))
        yield lo, hi
        lo = hi
