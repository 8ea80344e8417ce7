"""Vectorised stratified bootstrap of AUROC vs the obvious loop over sklearn.

    python benchmarks/bench_bootstrap.py [--n 1000] [--resamples 2000]

Both sides draw the same resample indices (same seed), so the replicates must agree; the
script checks that before printing timings.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import roc_auc_score

from shiftbench.analysis import stats


def _loop(labels, scores, **kw):
    return stats.bootstrap_ci(lambda y, s: roc_auc_score(y, s), labels, scores, **kw)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000, help="images")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, args.n)
    s = rng.normal(size=args.n) + y
    kw = {"n_resamples": args.resamples, "seed": 0}
    fast = min(
        _time(lambda: stats.bootstrap_ci(stats.auroc, y, s, **kw)) for _ in range(args.repeats)
    )
    paired = min(
        _time(
            lambda: stats.bootstrap_ci(
                stats.auroc, y, s, paired_with=s + rng.normal(size=args.n), **kw
            )
        )
        for _ in range(args.repeats)
    )
    t0 = time.perf_counter()
    slow_res = _loop(y, s, **kw)
    slow = time.perf_counter() - t0
    fast_res = stats.bootstrap_ci(stats.auroc, y, s, **kw)
    assert np.allclose(fast_res.replicates, slow_res.replicates, atol=1e-12)
    print(f"{args.resamples} AUROC resamples of {args.n} images")
    print(f"  vectorised         {fast * 1e3:8.1f} ms")
    print(f"  vectorised, paired {paired * 1e3:8.1f} ms")
    print(f"  sklearn loop       {slow * 1e3:8.1f} ms")
    print(f"  speed-up           {slow / fast:8.1f} x")


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
