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
``s*`` with ``np.partition`` (linear time) and sorts just those ~30% of the normal pixels.
Between two consecutive distinct scores the FPR moves only by the normal pixels at the lower
score ``s``, so the area is ``sum_s 0.5 * (PRO(> s) + PRO(>= s)) * count_normal(s) /
n_normal``; regrouped by anomalous pixel it is ``sum_j w_j * (#normal < a_j + #normal ==
a_j / 2) / n_normal`` (``w_j`` = 1 / (region size * number of regions); summed per region as exact integers), a weighted
Mann-Whitney count read with ``np.searchsorted`` -- no pass over the curve's points at all.
The segment crossing the limit is added from its two end points.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from shiftbench.metrics._checks import MetricInputError, check_pixel_inputs, iter_images

__all__ = ["aupro", "pro_curve"]

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)
_CHUNK = 1 << 16


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
    normal, anomalous, region, sizes = _split_with_regions(maps, masks, func)
    n_normal, n_regions = normal.size, sizes.size

    # k = most normal pixels that may be flagged while FPR = k / n_normal stays <= limit,
    # decided with the same float comparison the official curve cut uses.
    k = min(int(limit * n_normal), n_normal)
    while k < n_normal and (k + 1) / n_normal <= limit:
        k += 1
    while k > 0 and k / n_normal > limit:
        k -= 1

    if k == n_normal:  # the limit is 1: the whole curve, no crossing segment
        normal.sort()
        _, twice_area = _region_ranks(normal, anomalous, region, sizes, -np.inf)
        return min(twice_area / (2 * n_normal * n_regions), 1.0) / limit

    # s_star: the (k+1)-th largest normal score, where the FPR first exceeds the limit.
    cut = n_normal - k - 1
    normal.partition(cut)
    top = normal[cut:]
    top.sort()
    s_star = top[0]
    n_star_top = int(np.searchsorted(top, s_star, side="right"))
    # Normal pixels tied with s_star but left below the cut still move the crossing point.
    n_star = n_star_top + sum(
        int(np.count_nonzero(normal[lo : min(lo + _CHUNK, cut)] == s_star))
        for lo in range(0, cut, _CHUNK)
    )
    # Whole segments: every normal level strictly above s_star.
    overlap_above, twice_area = _region_ranks(top[n_star_top:], anomalous, region, sizes, s_star)
    area = twice_area / (2 * n_normal * n_regions)
    # The crossing segment, from (x0, y0) just above s_star to (x1, y1) at s_star,
    # linearly interpolated at the limit as in the official ``trapezoid``.
    above = top.size - n_star_top
    x0, x1 = above / n_normal, (above + n_star) / n_normal
    y0 = overlap_above / n_regions
    at_or_above = np.bincount(region[anomalous >= s_star], minlength=n_regions)
    y1 = math.fsum(at_or_above / sizes) / n_regions
    if x0 < limit:
        y_lim = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
        area += 0.5 * (y_lim + y0) * (limit - x0)
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
    normal, anomalous, region, sizes = _split_with_regions(maps, masks, func)
    normal.sort()
    a_scores, a_tail = _tail_overlap(anomalous, 1.0 / sizes[region], sizes.size)
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
    """Return normal scores, anomalous scores, their region ids and the region sizes.

    Region ids are global (``0 .. R-1`` over all images, int32); ``sizes`` is int64 ``[R]``.
    """
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
    region_ids = np.empty(n_anomalous, dtype=np.int32)
    sizes = [np.zeros(0, np.int64)]
    i_n = i_a = n_regions = 0
    for _, mp, anom in iter_images(m, g, func):
        b = mp[~anom]
        normal[i_n : i_n + b.size] = b
        i_n += b.size
        if not anom.any():
            continue
        labels, n = ndimage.label(anom, structure=_EIGHT_CONNECTED)
        region = labels[anom]  # 1..n
        sizes.append(np.bincount(region, minlength=n + 1)[1:])
        anomalous[i_a : i_a + region.size] = mp[anom]
        region_ids[i_a : i_a + region.size] = region + (n_regions - 1)
        i_a += region.size
        n_regions += n
    return normal, anomalous, region_ids, np.concatenate(sizes)


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


def _region_ranks(normal_sorted, anomalous, region, sizes, floor) -> tuple[float, float]:
    """Return ``(sum_r c_r / size_r, sum_r n_r / size_r)`` over the regions ``r``.

    ``c_r`` counts the region's pixels scoring above ``floor``; ``n_r`` sums, over those
    pixels ``a``, ``2 #(normal < a) + #(normal == a)`` with ``normal_sorted`` (ascending, all
    above ``floor``). The second value is ``2 * n_normal * n_regions`` times the trapezoid area
    of the PRO curve over those normal levels: each level ``s`` with ``c`` pixels adds
    ``0.5 * (PRO(>s) + PRO(>=s)) * c / n_normal``, and regrouping that sum by anomalous pixel
    gives its weight ``1 / size_r`` times the normal pixels below it, ties counted 1/2 -- a
    weighted Mann-Whitney count. ``c_r`` and ``n_r`` are exact integers (float64 sums of
    integers below 2**53), so the only rounding is in the final ``fsum`` of ``R`` ratios.
    """
    n_regions = sizes.size
    counts = np.zeros(n_regions, dtype=np.float64)
    rank_sums = np.zeros(n_regions, dtype=np.float64)
    for lo in range(0, anomalous.size, _CHUNK):
        a = anomalous[lo : lo + _CHUNK]
        keep = a > floor
        a, r = a[keep], region[lo : lo + _CHUNK][keep]
        order = np.argsort(a)  # sorted needles make searchsorted cache-friendly
        a, r = a[order], r[order]
        ranks = np.searchsorted(normal_sorted, a, side="left")
        ranks += np.searchsorted(normal_sorted, a, side="right")
        rank_sums += np.bincount(r, weights=ranks, minlength=n_regions)
        counts += np.bincount(r, minlength=n_regions)
    return math.fsum(counts / sizes), math.fsum(rank_sums / sizes)
