"""Where does a study's time go? Total wall time versus time inside model fit/score.

Runs the demo study (or the options given) and reads the timing the runner records in the
manifest. Target: everything other than fit/score (I/O, shifting, metrics, bookkeeping)
under 15% of the total.

Each measurement is a fresh process, like a user's ``shiftbench run``. By default two are
made against one empty image cache: ``cold`` (the first study on these images: every PNG
is decoded and every twin shifted) and ``warm`` (any later study on them: both come back
from the cache). ``--cache off`` measures with the cache disabled.

    python benchmarks/bench_study.py [--protocol all] [--models patchcore] [--image-size 256]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def measure(args: argparse.Namespace) -> None:
    """One study in this process; prints one JSON line of figures."""
    from shiftbench.data.synthetic import default_synthetic_root

    root = default_synthetic_root()  # the dataset itself is set-up, not study time
    os.environ["SHIFTBENCH_CACHE"] = args.cache_dir  # the image cache under test
    t_import = time.perf_counter()
    import albumentations  # noqa: F401  - library imports are a per-process cost, not study work
    import timm  # noqa: F401
    import torch  # noqa: F401

    import shiftbench.metrics  # noqa: F401  - pulls in scikit-learn
    import shiftbench.models  # noqa: F401
    from shiftbench.protocols import load_config
    from shiftbench.protocols.runner import StudyRunner

    t_import = time.perf_counter() - t_import
    cfg = load_config(
        None,
        {
            "protocol": args.protocol,
            "root": str(root),
            "models": args.models,
            "weights": args.weights,
            "image_size": args.image_size,
            "image_cache": args.cache != "off",
        },
    )
    out = Path(tempfile.mkdtemp()) / "bench-study"
    load = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    runner = StudyRunner(cfg, out, progress=False, echo=lambda s: None)
    t_prepare = time.perf_counter() - t0  # the runner checks its inputs when built
    path = runner.run().path
    total, cpu = time.perf_counter() - t0, time.process_time() - c0
    timing = json.loads((path / "manifest.json").read_text())["timing"]
    print(
        json.dumps(
            {
                "protocol": cfg.protocol,
                "models": cfg.models,
                "fits": len(runner.units),
                "imports": t_import,
                "total": total,
                "prepare": t_prepare,
                "shift": timing["shift_seconds"],
                "fit": timing["fit_seconds"],
                "score": timing["score_seconds"],
                "cpu": cpu,
                "load": [load, os.getloadavg()[0]],
            }
        )
    )


def cpu_name() -> str:
    """The CPU's model name and core count (Linux), for the record."""
    try:
        text = Path("/proc/cpuinfo").read_text()
        name = next(ln.split(":", 1)[1].strip() for ln in text.splitlines() if "model name" in ln)
    except (OSError, StopIteration):
        import platform

        name = platform.processor() or "unknown CPU"
    return f"{name}, {os.cpu_count()} cores"


def report(label: str, r: dict) -> None:
    other = r["total"] - r["fit"] - r["score"]
    rest = other - r["shift"]
    print(f"[{label}] protocol={r['protocol']} models={','.join(r['models'])} fits={r['fits']}")
    print(f"  {cpu_name()}; load average {r['load'][0]:.1f} before, {r['load'][1]:.1f} after")
    print(f"  (library imports before the study: {r['imports']:.2f} s, not counted)")
    print(f"  total wall time         {r['total']:8.2f} s")
    print(f"    prepare (load, check) {r['prepare']:8.2f} s")
    print(f"    shifting images       {r['shift']:8.2f} s")
    print(f"    model fit             {r['fit']:8.2f} s")
    print(f"    model score           {r['score']:8.2f} s")
    print(
        f"  everything else         {other:8.2f} s  = {100 * other / r['total']:5.1f}% of total"
        " (target < 15%)"
    )
    print(f"    of which not shifting {rest:8.2f} s  = {100 * rest / r['total']:5.1f}% of total")
    print(f"  process CPU time        {r['cpu']:8.2f} s  (wall inflates with the load; CPU less)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--protocol", default="shift-noadapt")
    ap.add_argument("--models", default=None)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--image-size", type=int, default=None)
    ap.add_argument("--cache", choices=["both", "cold", "warm", "off"], default="both")
    ap.add_argument("--cache-dir", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        measure(args)
        return
    cache_dir = tempfile.mkdtemp(prefix="bench-study-cache-")
    modes = {"both": ["cold", "warm"], "warm": ["cold", "warm"]}.get(args.cache, [args.cache])
    for mode in modes:
        cmd = [sys.executable, __file__, "--child", "--cache", mode, "--cache-dir", cache_dir]
        for opt in ("protocol", "models", "weights", "image_size"):
            if getattr(args, opt) is not None:
                cmd += [f"--{opt.replace('_', '-')}", str(getattr(args, opt))]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        if args.cache == "warm" and mode == "cold":
            continue  # the cold run only filled the cache
        report(mode, result)


if __name__ == "__main__":
    main()
