"""Where does a study's time go? Total wall time versus time inside model fit/score.

Runs the demo study (or the options given) in-process and reads the timing the runner
records in the manifest. Target: everything other than fit/score (I/O, shifting, metrics,
bookkeeping) under 15% of the total.

    python benchmarks/bench_study.py [--protocol all] [--models patchcore] [--image-size 256]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from shiftbench.protocols import load_config
from shiftbench.protocols.runner import StudyRunner


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--protocol", default="shift-noadapt")
    ap.add_argument("--models", default=None)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--image-size", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    from shiftbench.data.synthetic import default_synthetic_root

    default_synthetic_root()  # the dataset cache is set-up, not study time
    t_import = time.perf_counter()
    import albumentations  # noqa: F401  - library imports are a per-process cost, not study work
    import timm  # noqa: F401
    import torch  # noqa: F401

    import shiftbench.metrics  # noqa: F401  - pulls in scikit-learn
    import shiftbench.models  # noqa: F401

    t_import = time.perf_counter() - t_import
    cfg = load_config(
        None,
        {
            "protocol": args.protocol,
            "models": args.models,
            "weights": args.weights,
            "image_size": args.image_size,
        },
    )
    out = args.out or Path(tempfile.mkdtemp()) / "bench-study"
    t0 = time.perf_counter()
    runner = StudyRunner(cfg, out, progress=False, echo=lambda s: None)
    runner.prepare()
    t_prepare = time.perf_counter() - t0
    path = runner.run()
    total = time.perf_counter() - t0
    timing = json.loads((path / "manifest.json").read_text())["timing"]
    inside = timing["fit_seconds"] + timing["score_seconds"]
    other = total - inside
    print(f"study: protocol={cfg.protocol} models={','.join(cfg.models)} fits={len(runner.units)}")
    print(f"(library imports before the study: {t_import:.2f} s, not counted)")
    print(f"total wall time         {total:8.2f} s")
    print(f"  prepare (load, check) {t_prepare:8.2f} s")
    print(f"  shifting images       {timing['shift_seconds']:8.2f} s")
    print(f"  model fit             {timing['fit_seconds']:8.2f} s")
    print(f"  model score           {timing['score_seconds']:8.2f} s")
    print(
        f"everything else         {other:8.2f} s  = {100 * other / total:5.1f}% of total (target < 15%)"
    )


if __name__ == "__main__":
    main()
