"""Benchmark pixel metrics: shiftbench vs a sort-everything implementation vs anomalib.

Times ``shiftbench.metrics.aupro`` and ``pixel_auroc`` on synthetic anomaly maps
(default: 100 maps of 256x256 and 40 maps of 1024x1024, float32, uint8 0/255 masks) side by
side with

- ``straightforward_aupro``: the official MVTec AD evaluation algorithm written plainly
  (argsort of every pixel, cumulative sums, one point per distinct score, official
  trapezoid) but with float64 FPRs, so its value is the exact definition;
- ``sklearn.metrics.roc_auc_score`` on the flattened pixels;
- ``anomalib.metrics.AUPRO(fpr_limit=0.3)`` (anomalib 2.7, imported lazily; float32 inside).

Peak memory is measured with ``tracemalloc`` in a separate, untimed call (numpy reports its
buffers to tracemalloc; torch does not, so anomalib's memory is not shown) and compared with
the input size ``maps.nbytes + masks.nbytes``.

Run: ``python benchmarks/bench_metrics.py`` (about 3 minutes on one core), or
``python benchmarks/bench_metrics.py --sets 20x128 --no-anomalib`` for a quick look;
``--repeat 3`` reports the best of three timings for every contender.

The straightforward version accumulates PRO with a float64 cumulative sum over every pixel;
on 6.6 Mpx that drifts by ~1e-13 from the exact value, which ``aupro`` (exact integer counts
per region) reproduces to the last digit of a long-double evaluation.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from bisect import bisect
from types import SimpleNamespace

import cv2
import numpy as np
from scipy import ndimage

from shiftbench.metrics import aupro, pixel_auroc

FPR_LIMIT = 0.3


def make_maps(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` smooth float32 maps ``[n, size, size]`` and 0/255 masks; half the images normal."""
    rng = np.random.default_rng(seed)
    maps = np.empty((n, size, size), np.float32)
    masks = np.zeros((n, size, size), np.uint8)
    sigma = size / 64
    for i in range(n):
        noise = rng.standard_normal((size, size)).astype(np.float32)
        smooth = cv2.GaussianBlur(noise, (0, 0), sigma)
        maps[i] = smooth / smooth.std()  # same difficulty at every resolution
        if i % 2:
            for _ in range(rng.integers(1, 4)):
                centre = tuple(int(c) for c in rng.integers(size // 8, size - size // 8, 2))
                axes = tuple(int(a) for a in rng.integers(size // 64 + 1, size // 6, 2))
                cv2.ellipse(masks[i], centre, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1)
            bump = cv2.GaussianBlur((masks[i] > 0).astype(np.float32), (0, 0), 2 * sigma)
            maps[i] += 2.0 * bump
    return maps, masks


def _official_trapezoid(x: np.ndarray, y: np.ndarray, x_max: float) -> float:
    """``generic_util.trapezoid`` of the MVTec AD evaluation code."""
    correction = 0.0
    if x_max not in x:
        ins = bisect(x, x_max)
        y_interp = y[ins - 1] + (y[ins] - y[ins - 1]) * (x_max - x[ins - 1]) / (x[ins] - x[ins - 1])
        correction = 0.5 * (y_interp + y[ins - 1]) * (x_max - x[ins - 1])
    mask = x <= x_max
    x, y = x[mask], y[mask]
    return float(np.sum(0.5 * (y[1:] + y[:-1]) * (x[1:] - x[:-1])) + correction)


def straightforward_aupro(maps: np.ndarray, masks: np.ndarray, fpr_limit: float = FPR_LIMIT):
    """The official ``compute_pro`` + ``trapezoid``, sorting every pixel (float64 FPR)."""
    structure = np.ones((3, 3), dtype=int)
    fp_change = np.zeros(maps.shape, np.float64)
    pro_change = np.zeros(maps.shape, np.float64)
    n_regions = 0
    for i, gt in enumerate(masks):
        labeled, n = ndimage.label(gt != 0, structure)
        n_regions += n
        fp_change[i][labeled == 0] = 1
        sizes = np.bincount(labeled.ravel())
        region = labeled > 0
        pro_change[i][region] = 1.0 / sizes[labeled[region]]
    n_ok = fp_change.sum()
    scores = maps.ravel()
    order = np.argsort(scores)[::-1]
    scores = scores[order]
    fprs = np.cumsum(fp_change.ravel()[order]) / n_ok
    pros = np.cumsum(pro_change.ravel()[order]) / n_regions
    keep = np.append(np.diff(scores) != 0, True)
    fprs = np.minimum(fprs[keep], 1.0)
    pros = np.minimum(pros[keep], 1.0)
    x = np.concatenate(([0.0], fprs, [1.0]))
    y = np.concatenate(([0.0], pros, [1.0]))
    return _official_trapezoid(x, y, fpr_limit) / fpr_limit


def sklearn_pixel_auroc(maps: np.ndarray, masks: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(masks.ravel() != 0, maps.ravel()))


def anomalib_aupro(maps: np.ndarray, masks: np.ndarray, fpr_limit: float = FPR_LIMIT) -> float:
    import torch
    from anomalib.metrics import AUPRO

    metric = AUPRO(fields=["anomaly_map", "gt_mask"], fpr_limit=fpr_limit)
    batch = SimpleNamespace(
        anomaly_map=torch.from_numpy(maps), gt_mask=torch.from_numpy(masks != 0).int()
    )
    metric.update(batch)
    return float(metric.compute())


def _timed(fn, *args, repeat: int = 1) -> tuple[float, float]:
    """Value and the best wall time of ``repeat`` calls (the machine is shared)."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        value = fn(*args)
        best = min(best, time.perf_counter() - t0)
    return value, best


def _peak_bytes(fn, *args) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        fn(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def run_set(
    n: int, size: int, *, with_anomalib: bool, with_memory: bool, repeat: int = 1
) -> list[dict]:
    maps, masks = make_maps(n, size)
    input_bytes = maps.nbytes + masks.nbytes
    print(
        f"\n== {n} maps of {size}x{size} ({maps.size / 1e6:.1f} Mpx, input "
        f"{input_bytes / 2**20:.0f} MiB, {np.count_nonzero(masks) / masks.size:.1%} anomalous)"
    )
    rows = []
    contenders = [
        ("aupro", "shiftbench", aupro),
        ("aupro", "straightforward", straightforward_aupro),
    ]
    if with_anomalib:
        import torch

        torch.set_num_threads(1)
        anomalib_aupro(maps[:1, :32, :32], masks[:1, :32, :32])  # pay the import once
        contenders.append(("aupro", "anomalib AUPRO", anomalib_aupro))
    contenders += [
        ("pixel_auroc", "shiftbench", pixel_auroc),
        ("pixel_auroc", "sklearn", sklearn_pixel_auroc),
    ]
    for metric, who, fn in contenders:
        value, seconds = _timed(fn, maps, masks, repeat=repeat)
        traced = who != "anomalib AUPRO" and with_memory
        peak = _peak_bytes(fn, maps, masks) if traced else None
        rows.append(dict(metric=metric, who=who, value=value, seconds=seconds, peak=peak))
        mem = f"{peak / 2**20:8.0f} MiB ({peak / input_bytes:4.2f}x input)" if peak else "   n/a"
        print(f"{metric:12s} {who:16s} {value:.12f} {seconds:8.2f} s  peak {mem}")
    by = {(r["metric"], r["who"]): r for r in rows}
    ours, plain = by["aupro", "shiftbench"], by["aupro", "straightforward"]
    print(
        f"aupro: {plain['seconds'] / ours['seconds']:.1f}x faster than straightforward, "
        f"|diff| = {abs(ours['value'] - plain['value']):.1e}"
    )
    if with_anomalib:
        anom = by["aupro", "anomalib AUPRO"]
        print(
            f"aupro: {anom['seconds'] / ours['seconds']:.1f}x faster than anomalib, "
            f"|diff| = {abs(ours['value'] - anom['value']):.1e} (anomalib computes in float32)"
        )
    ours, sk = by["pixel_auroc", "shiftbench"], by["pixel_auroc", "sklearn"]
    print(
        f"pixel_auroc: {sk['seconds'] / ours['seconds']:.1f}x faster than sklearn, "
        f"|diff| = {abs(ours['value'] - sk['value']):.1e}"
    )
    if with_memory:
        for metric, other in (("aupro", "straightforward"), ("pixel_auroc", "sklearn")):
            a, b = by[metric, "shiftbench"]["peak"], by[metric, other]["peak"]
            print(f"{metric}: peak memory {b / a:.1f}x lower than {other}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=["100x256", "40x1024"], help="NxSIZE")
    parser.add_argument("--no-anomalib", action="store_true", help="skip anomalib's AUPRO")
    parser.add_argument("--no-memory", action="store_true", help="skip the tracemalloc runs")
    parser.add_argument("--repeat", type=int, default=1, help="best of N timings (all sides)")
    args = parser.parse_args()
    for spec in args.sets:
        n, size = (int(v) for v in spec.lower().split("x"))
        run_set(
            n,
            size,
            with_anomalib=not args.no_anomalib,
            with_memory=not args.no_memory,
            repeat=args.repeat,
        )


if __name__ == "__main__":
    main()
