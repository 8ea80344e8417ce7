"""Cold-start latency: ``shiftbench predict`` on one image, and the web app's first prediction.

Each figure is a fresh Python process (what a user waits for), repeated ``--repeats``
times; medians are printed with the machine's load average. Measures, per model:

- ``predict``: wall time of ``python -m shiftbench.cli.main predict RUN IMAGE ...`` (one
  image, composite + JSON/CSV), and where its time goes: the cumulative import time of
  torch, timm, pandas, matplotlib, albumentations, anomalib (``python -X importtime``);
- ``app``: in a fresh process, the app as ``shiftbench app`` builds it (``preload`` when the
  code has it), a user-like pause (``--pause`` s: the page loads, an image is picked), then
  the page's first requests (models, perturbations, scores, open) and the first
  ``/api/predict``: the time from the click to the verdict.

    python benchmarks/bench_predict.py --run results/bench_app_256
    PYTHONPATH=/path/to/old/checkout python benchmarks/bench_predict.py ...   # before/after

The run is made with :func:`shiftbench.testing.runs.tiny_run` when missing (random
weights, ``--image-size`` px, ``--models``).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

HEAVY = ("torch", "timm", "torchvision", "pandas", "matplotlib", "albumentations", "anomalib")

APP_SCRIPT = r"""
import inspect, json, sys, time
t0 = time.perf_counter()
from fastapi.testclient import TestClient
from shiftbench.app.server import create_app
run, model, pause = sys.argv[1], sys.argv[2], float(sys.argv[3])
kw = {"preload": True} if "preload" in inspect.signature(create_app).parameters else {}
client = TestClient(create_app([run], **kw))
started = time.perf_counter() - t0
time.sleep(pause)  # the user opens the page and picks an image
rid = client.get("/api/runs").json()[0]["id"]
t1 = time.perf_counter()
client.get(f"/api/runs/{rid}/models"); client.get("/api/perturbations")
rows = client.get(f"/api/runs/{rid}/scores").json()["rows"]
page = time.perf_counter() - t1
token = client.post(f"/api/runs/{rid}/open", data={"sample_id": rows[0]["sample_id"]}).json()["token"]
t2 = time.perf_counter()
r = client.get("/api/predict", params={"run": rid, "category": rows[0]["category"],
                                        "model": model, "image": token})
assert r.status_code == 200, r.text
first = time.perf_counter() - t2
t3 = time.perf_counter()
client.get("/api/predict", params={"run": rid, "category": rows[0]["category"], "model": model,
                                   "image": token, "perturb": "gaussian_blur", "severity": 4})
print(json.dumps({"start": started, "page": page, "first": first,
                  "second": time.perf_counter() - t3}))
"""


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def imports_of(stderr: str) -> dict[str, float]:
    """Cumulative seconds of each heavy top-level import in ``-X importtime`` output (the
    first, outermost time a package is imported)."""
    out: dict[str, float] = {}
    for line in stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)([\w.]+)$", line)
        if m and m.group(3) in HEAVY and m.group(3) not in out:
            out[m.group(3)] = int(m.group(1)) / 1e6
    return out


def child_cpu() -> float:
    """User + system CPU seconds of the finished child processes so far (less sensitive
    than wall time to the other jobs of a shared machine)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def bench_predict(run: Path, image: str, model: str, repeats: int) -> None:
    walls, cpus, imports = [], [], []
    for i in range(repeats):
        with tempfile.TemporaryDirectory() as out:
            cmd = [sys.executable, *(["-X", "importtime"] if i == 0 else []), "-m",
                   "shiftbench.cli.main", "predict", str(run), image, "--category", "brick",
                   "--model", model, "--out", out]  # fmt: skip
            t0, c0 = time.perf_counter(), child_cpu()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            took, cpu = time.perf_counter() - t0, child_cpu() - c0
            if proc.returncode:
                raise SystemExit(proc.stderr[-2000:])
            if i == 0:
                imports.append(imports_of(proc.stderr))
            else:  # importtime's own bookkeeping slows the run a little: not timed
                walls.append(took)
                cpus.append(cpu)
    shown = ", ".join(f"{k} {v:.2f} s" for k, v in sorted(imports[0].items(), key=lambda x: -x[1]))
    print(f"predict {model:16s} wall median {median(walls):5.2f} s, CPU {median(cpus):5.2f} s "
          f"({', '.join(f'{w:.2f}' for w in walls)}); imports: {shown}")  # fmt: skip


def bench_app(run: Path, model: str, repeats: int, pause: float) -> None:
    import json

    rows = []
    for _ in range(repeats):
        proc = subprocess.run(
            [sys.executable, "-c", APP_SCRIPT, str(run), model, str(pause)],
            capture_output=True,
            text=True,
        )
        if proc.returncode:
            raise SystemExit(proc.stderr[-2000:])
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    med = {k: median([r[k] for r in rows]) for k in rows[0]}
    firsts = ", ".join(f"{r['first']:.2f}" for r in rows)
    print(
        f"app     {model:16s} start {med['start']:.2f} s; after a {pause:g} s pause: page "
        f"requests {med['page']:.2f} s, first prediction {med['first']:.2f} s "
        f"({firsts}), next (shifted) {med['second']:.2f} s"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=Path("results/bench_predict_128"))
    ap.add_argument("--models", default="patchcore,anomalib-padim")
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--pause", type=float, default=4.0)
    ap.add_argument("--only", choices=("predict", "app"), default=None)
    args = ap.parse_args()
    models = tuple(m.strip() for m in args.models.split(","))
    from shiftbench.models.device import _cpu_name
    from shiftbench.testing.runs import tiny_run

    run = tiny_run(args.run, None, image_size=args.image_size, models=models)
    import pandas as pd

    splits = pd.read_csv(run / "splits.csv")
    image = splits[splits["split"] == "test"]["image_path"].iloc[0]
    where = subprocess.run(  # what the timed processes import (from the current folder)
        [sys.executable, "-c", "import shiftbench; print(shiftbench.__file__)"],
        capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    print(f"shiftbench from {Path(where).parent}; CPU {_cpu_name()}, "
          f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    for model in models:
        if args.only in (None, "predict"):
            bench_predict(run, image, model, args.repeats + 1)
        if args.only in (None, "app"):
            bench_app(run, model, args.repeats, args.pause)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
