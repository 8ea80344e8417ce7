"""Executors: the same results in worker processes and on Ray as in the driver, workers
killed mid-unit, units that fail, a killed driver resumed, a two-node Ray cluster."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shiftbench.errors import ShiftbenchError
from shiftbench.protocols import load_config
from shiftbench.protocols.executors.dispatch import FAULT_ENV
from shiftbench.protocols.runner import StudyRunner
from shiftbench.results import schema

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

FAST = {"patchcore": {"coreset_ratio": 0.1}, "ae": {"epochs": 2}}
EFFICIENCY = set(schema.EFFICIENCY_METRICS)
N_UNITS = 8  # 2 categories x 2 models x {clean, shift} fits


def _config(root, **over):
    base = dict(
        dataset="mvtec",
        root=str(root),
        categories="brick,washer",
        models="patchcore,ae",
        weights="random",
        image_size=64,
        protocol="all",
        seeds="0",
        workers=1,
        model_options=FAST,
        save_maps=True,
        save_models=True,
        cpus_per_unit=1,  # one torch thread per fit everywhere: bit-identical scores
    )
    base.update(over)
    return load_config(None, base)


def _run(root, out, *, resume=False, echo=None, **over) -> Path:
    runner = StudyRunner(
        _config(root, **over),
        out,
        resume=resume,
        progress=False,
        echo=echo or (lambda s: None),
    )
    return runner.run().path


def _assert_same(a: Path, b: Path, same_process: bool = True) -> None:
    """Bit-identical scores, metrics (but timings), maps and shift parameters."""
    pd.testing.assert_frame_equal(
        pd.read_parquet(a / "scores.parquet"),
        pd.read_parquet(b / "scores.parquet"),
        check_exact=True,
    )

    def quality(p):
        m = pd.read_parquet(p / "metrics.parquet")
        return m[~m["metric"].isin(EFFICIENCY)].reset_index(drop=True)

    pd.testing.assert_frame_equal(quality(a), quality(b), check_exact=True)
    pd.testing.assert_frame_equal(
        pd.read_parquet(a / "shift_params.parquet"), pd.read_parquet(b / "shift_params.parquet")
    )
    maps_a = sorted(p.relative_to(a) for p in (a / "maps").rglob("*.npz"))
    assert maps_a == sorted(p.relative_to(b) for p in (b / "maps").rglob("*.npz"))
    assert maps_a
    for rel in maps_a:
        x, y = np.load(a / rel), np.load(b / rel)
        assert np.array_equal(x["sample_id"], y["sample_id"])
        assert np.array_equal(x["maps"], y["maps"])
    if (a / "models").is_dir() and (b / "models").is_dir():  # --save-models: the same models
        names = sorted(p.name for p in (a / "models").iterdir())
        assert names == sorted(p.name for p in (b / "models").iterdir())
        for name in names:
            if name.endswith(".json"):
                meta_a, meta_b = (json.loads((p / "models" / name).read_text()) for p in (a, b))
                if not same_process:
                    meta_a.pop("file_bytes"), meta_b.pop("file_bytes")
                assert meta_a == meta_b
            elif same_process:  # torch.save records the file's temporary name (with a pid)
                assert (a / "models" / name).read_bytes() == (b / "models" / name).read_bytes()


def _executor_figures(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())["timing"]["executor"]


@pytest.fixture(scope="module")
def serial_run(tiny_synthetic, tmp_path_factory):
    path = _run(tiny_synthetic, tmp_path_factory.mktemp("serial") / "run")
    assert len(list((path / "units").iterdir())) == N_UNITS
    return path


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray instance (2 CPUs) shared by the tests that use Ray."""
    ray = pytest.importorskip("ray", reason="ray is not installed: pip install 'shiftbench[ray]'")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()


def _kill_when_hung(pid_file: Path, timeout: float = 600) -> tuple[threading.Thread, list]:
    """Kill -9 the worker that writes its pid to ``pid_file`` (the hang fault)."""
    killed: list[int] = []

    def kill():
        deadline = time.time() + timeout
        while time.time() < deadline:
            if pid_file.is_file():
                pid = int(pid_file.read_text())
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.1)

    thread = threading.Thread(target=kill, daemon=True)
    thread.start()
    return thread, killed


# -- the same results wherever units run ---------------------------------------------------
def test_process_matches_serial(tiny_synthetic, serial_run, tmp_path):
    path = _run(tiny_synthetic, tmp_path / "process", executor="process", jobs=2)
    _assert_same(serial_run, path)
    figures = _executor_figures(path)
    assert figures["name"] == "process" and figures["slots"] == 2
    assert figures["workers"] >= 1 and figures["nodes"] == 1
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["config"]["executor"] == "process"
    # how units run is not what they compute: same study, same hash
    assert (
        manifest["config_hash"]
        == json.loads((serial_run / "manifest.json").read_text())["config_hash"]
    )


def test_ray_matches_serial_without_image_cache(tiny_synthetic, serial_run, tmp_path, ray_local):
    # no cache: every worker shifts its own twins (deterministic: the same bytes)
    path = _run(tiny_synthetic, tmp_path / "ray", executor="ray", image_cache=False)
    _assert_same(serial_run, path)
    assert _executor_figures(path)["name"] == "ray"


def test_ray_ship_images_matches_serial(tiny_synthetic, serial_run, tmp_path, ray_local):
    path = _run(tiny_synthetic, tmp_path / "ship", executor="ray", ship_images=True)
    _assert_same(serial_run, path)


# -- faults ----------------------------------------------------------------------------------
@pytest.mark.parametrize("executor", ["process", "ray"])
def test_killed_worker_is_retried(
    tiny_synthetic, serial_run, tmp_path, monkeypatch, request, executor
):
    if executor == "ray":
        request.getfixturevalue("ray_local")
    pid_file = tmp_path / "worker.pid"
    monkeypatch.setenv(FAULT_ENV, f"hang:brick__ae__seed0__clean:{pid_file}")
    thread, killed = _kill_when_hung(pid_file)
    path = _run(tiny_synthetic, tmp_path / "killed", executor=executor, jobs=2)
    thread.join(timeout=5)
    assert killed, "the worker never reached the unit that hangs"
    _assert_same(serial_run, path)


def test_failing_unit_stops_the_study_then_resume_finishes(
    tiny_synthetic, serial_run, tmp_path, monkeypatch
):
    out = tmp_path / "failing"
    bad = "washer__patchcore__seed0__clean"  # the fifth unit: brick's are done or running
    monkeypatch.setenv(FAULT_ENV, f"fail:{bad}")
    lines: list[str] = []
    with pytest.raises(ShiftbenchError, match="injected failure"):
        _run(tiny_synthetic, out, executor="process", jobs=2, echo=lines.append)
    assert any(bad in line and "--resume" in line for line in lines), lines
    done = sorted(p.name for p in (out / "units").iterdir())
    assert 1 <= len(done) < N_UNITS and bad not in done
    assert not (out / "metrics.parquet").exists()
    assert json.loads((out / "manifest.json").read_text())["status"] == "running"

    monkeypatch.delenv(FAULT_ENV)
    lines.clear()
    path = _run(tiny_synthetic, out, resume=True, executor="process", jobs=2, echo=lines.append)
    assert f"{len(done)} of {N_UNITS} fits already done" in " ".join(lines)
    _assert_same(serial_run, path)


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_killed_driver_resumes_and_leaves_no_workers(tiny_synthetic, serial_run, tmp_path):
    out = tmp_path / "driver"
    args = [
        sys.executable,
        "-m",
        "shiftbench.cli.main",
        "run",
        "--dataset=mvtec",
        f"--root={tiny_synthetic}",
        "--categories=brick,washer",
        "--models=patchcore,ae",
        "--weights=random",
        "--image-size=64",
        "--protocol=all",
        "--workers=1",
        "--model-option=patchcore.coreset_ratio=0.1",
        "--model-option=ae.epochs=2",
        "--save-maps",
        "--save-models",
        "--cpus-per-unit=1",
        "--executor=process",
        "--jobs=2",
        f"--out={out}",
        "--no-progress",
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline:
        if any((out / "units").glob("*/scores.parquet")) or proc.poll() is not None:
            break
        time.sleep(0.05)
    workers = _children(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = list((out / "units").glob("*/scores.parquet"))
    assert 1 <= len(done) < N_UNITS, "the kill should land mid-way through the fits"
    assert workers, "the driver had no worker processes"
    deadline = time.time() + 30  # orphaned workers notice their driver is gone and exit
    while time.time() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.2)
    assert not any(_alive(p) for p in workers)

    resumed = subprocess.run([*args, "--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "fits already done" in resumed.stdout
    _assert_same(serial_run, out, same_process=False)  # another driver process


# -- options -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "over, message",
    [
        ({"executor": "dask"}, "executor 'dask': unknown"),
        ({"executor": "process", "gpus_per_unit": 0.5}, "fractional GPUs need --executor ray"),
        ({"ray_address": "auto"}, "only used with --executor ray"),
        ({"cpus_per_unit": 0}, "cpus_per_unit 0.0: give a number > 0"),
        ({"jobs": 0}, "jobs 0: too small"),
    ],
)
def test_bad_executor_options(tiny_synthetic, over, message):
    with pytest.raises(ShiftbenchError, match=message):
        _config(tiny_synthetic, **over)


def test_executor_flags_in_run_help():
    p = subprocess.run(
        [sys.executable, "-m", "shiftbench.cli.main", "run", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert p.returncode == 0, p.stderr
    for flag in (
        "--executor",
        "--jobs",
        "--ray-address",
        "--cpus-per-unit",
        "--gpus-per-unit",
        "--ship-images",
    ):
        assert flag in p.stdout


# -- a real two-node Ray cluster on loopback ---------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_node_ray_cluster(tiny_synthetic, serial_run, tmp_path):
    pytest.importorskip("ray", reason="ray is not installed: pip install 'shiftbench[ray]'")
    ray_cli = shutil.which("ray", path=str(Path(sys.executable).parent))
    if ray_cli is None:
        pytest.skip("the `ray` command is not installed beside this Python")
    port = _free_port()
    address = f"127.0.0.1:{port}"
    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths
    # a throw-away cluster on loopback: no token authentication (Ray >= 2.5x turns it on;
    # every node and the driver would then need the same token)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    common = ["--block", "--disable-usage-stats", "--num-cpus=1", "--node-ip-address=127.0.0.1"]
    nodes = [
        subprocess.Popen(
            [ray_cli, "start", "--head", f"--port={port}", f"--temp-dir={temp}", *common,
             "--include-dashboard=false"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
    ]  # fmt: skip
    try:
        probe = (
            "import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False); "
            "print(sum(n['Alive'] for n in ray.nodes()))"
        )

        def alive_nodes() -> int:
            p = subprocess.run(
                [sys.executable, "-c", probe, address], capture_output=True, text=True, env=env
            )
            return int(p.stdout.strip() or 0) if p.returncode == 0 else 0

        deadline = time.time() + 120
        while time.time() < deadline and alive_nodes() < 1:
            time.sleep(1)
        nodes.append(
            subprocess.Popen(
                [ray_cli, "start", f"--address={address}", *common, '--resources={"node2": 1}'],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
        )  # fmt: skip
        while time.time() < deadline and alive_nodes() < 2:
            time.sleep(1)
        assert alive_nodes() == 2, "the two-node cluster did not come up"

        out = tmp_path / "cluster"
        p = subprocess.run(
            [
                sys.executable, "-m", "shiftbench.cli.main", "run", "--dataset=mvtec",
                f"--root={tiny_synthetic}", "--categories=brick,washer",
                "--models=patchcore,ae", "--weights=random", "--image-size=64",
                "--protocol=all", "--workers=1", "--model-option=patchcore.coreset_ratio=0.1",
                "--model-option=ae.epochs=2", "--save-maps", "--save-models", "--cpus-per-unit=1",
                "--executor=ray", f"--ray-address={address}", f"--out={out}", "--no-progress",
            ],
            capture_output=True, text=True, env=env, timeout=900,
        )  # fmt: skip
        assert p.returncode == 0, p.stderr[-3000:]
        _assert_same(serial_run, out, same_process=False)  # another driver process
        figures = _executor_figures(out)
        assert figures["name"] == "ray" and figures["slots"] == 2
        assert figures["nodes"] == 2, figures  # one fit at a time per node: both worked
    finally:
        for node in reversed(nodes):  # --block: each stops the Ray processes it started
            node.send_signal(signal.SIGTERM)
        for node in nodes:
            try:
                node.wait(timeout=60)
            except subprocess.TimeoutExpired:
                node.kill()
        shutil.rmtree(temp, ignore_errors=True)
