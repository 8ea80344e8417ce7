"""Latency of ``shiftbench predict`` and of the web app's slider, per model.

Fits (once, reused from ``--run``) a one-category study at 256 px with ImageNet weights
and ``--save-models``, for native PatchCore and anomalib-padim, then measures:

- ``predict``: ``Predictor.predict(path)`` per image (read, resize, score, threshold), warm
  model in memory; and the ``shiftbench predict`` composite (matplotlib) per image;
- ``slider``: the HTTP request time of ``GET /api/predict`` (the endpoint the severity
  slider calls) against a real uvicorn server on loopback, model cache warm: shift at a new
  severity, score, render the heat-map and region PNGs. Target: < 300 ms for PatchCore.

    python benchmarks/bench_app.py                 # 2 torch threads, 20 images, 3 passes of 6 levels
    python benchmarks/bench_app.py --threads 2 --images 10

The machine's load average is printed; a loaded machine inflates every figure.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
# OpenMP threads that sleep rather than spin when idle: on a loaded (oversubscribed) machine
# spinning threads made single-image scoring in the main thread ~25x slower (measured:
# PatchCore 256 px, 2.8 s vs 0.11 s at load average 16 on 2 cores); set it before torch loads
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import json

import numpy as np
import pandas as pd
import torch


def stats(ms: list[float]) -> str:
    arr = np.asarray(ms)
    return (
        f"median {np.median(arr):7.1f} ms  p90 {np.percentile(arr, 90):7.1f} ms  "
        f"min {arr.min():7.1f} ms  (n={len(arr)})"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=Path("results/bench_app_256"))
    ap.add_argument("--models", default="patchcore,anomalib-padim")
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--perturb", default="gaussian_blur")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    models = tuple(m.strip() for m in args.models.split(","))

    from shiftbench.inference import Predictor
    from shiftbench.testing.runs import tiny_run

    t0 = time.perf_counter()
    run = tiny_run(args.run, None, image_size=args.image_size, models=models, weights="imagenet")
    print(
        f"run {run} ready in {time.perf_counter() - t0:.0f} s; torch threads {args.threads}; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    splits = pd.read_csv(run / "splits.csv")
    test = splits[(splits["split"] == "test") & (splits["seed"] == 0)].head(args.images)
    results = {}

    # -- predict ---------------------------------------------------------------------------
    for model in models:
        t0 = time.perf_counter()
        predictor = Predictor.from_run(run, "brick", model)
        load_ms = 1000 * (time.perf_counter() - t0)
        predictor.predict(test["image_path"].iloc[0])  # warm-up
        ms, comp = [], []
        for path in test["image_path"]:
            t0 = time.perf_counter()
            pred = predictor.predict(path)
            ms.append(1000 * (time.perf_counter() - t0))
        for path in test["image_path"].head(5):
            pred = predictor.predict(path)
            t0 = time.perf_counter()
            fig = predictor.composite(pred, Path("/tmp") / "bench_app_composite.png")
            comp.append(1000 * (time.perf_counter() - t0))
            del fig
        results[model] = {"load_ms": load_ms, "predict": ms, "composite": comp}
        print(f"{model:16s} load {load_ms:6.0f} ms | predict   {stats(ms)}")
        print(f"{'':16s}               | composite {stats(comp)}")

    # -- the slider endpoint over real HTTP ---------------------------------------------------
    import uvicorn

    from shiftbench.app.server import create_app

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app([run]), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"

    def post_open(sample_id: str) -> dict:
        data = urllib.parse.urlencode({"sample_id": sample_id}).encode()
        with urllib.request.urlopen(f"{base}/api/runs/{run.name}/open", data=data) as r:
            return json.loads(r.read())

    def get(params: dict) -> tuple[float, dict]:
        url = f"{base}/api/predict?{urllib.parse.urlencode(params)}"
        t0 = time.perf_counter()
        with urllib.request.urlopen(url) as r:
            body = json.loads(r.read())
        return 1000 * (time.perf_counter() - t0), body

    anomalous = test[test["label"] == 1]["sample_id"].iloc[0]
    token = post_open(anomalous)["token"]
    for model in models:
        q = {
            "run": run.name,
            "category": "brick",
            "model": model,
            "image": token,
            "perturb": args.perturb,
        }
        get({**q, "severity": 3})  # warm: model loaded into the server's cache
        ms, server_ms, score_ms = [], [], []
        for _ in range(args.passes):
            for severity in (0, 1, 2, 3, 4, 5):
                took, body = get({**q, "severity": severity})
                ms.append(took)
                server_ms.append(body["timing_ms"]["request"])
                score_ms.append(body["timing_ms"]["score"])
        results[model]["slider"] = ms
        print(f"{model:16s} slider -> heat-map (HTTP) {stats(ms)}")
        print(
            f"{'':16s}   of which server {statistics.median(server_ms):.1f} ms, "
            f"scoring {statistics.median(score_ms):.1f} ms (medians)"
        )
    server.should_exit = True
    thread.join(timeout=10)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
