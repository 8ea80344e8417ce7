"""The run directory: one writer at a time, atomic units, clean resume."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

from shiftbench.errors import ShiftbenchError
from shiftbench.results import RunDir, atomic_write_npz, atomic_write_table


def _tables(n=3):
    scores = pd.DataFrame({"sample_id": [f"s{i}" for i in range(n)], "score": np.arange(n) / n})
    metrics = pd.DataFrame({"metric": ["image_auroc"], "value": [0.75]})
    return scores, metrics


def test_one_writer_at_a_time_and_lock_released_on_unlock(tmp_path):
    run = RunDir.create(tmp_path / "r")
    run.write_manifest({"status": "running"})
    with pytest.raises(ShiftbenchError, match="another shiftbench run is writing"):
        RunDir.open(tmp_path / "r")
    run.unlock()
    again = RunDir.open(tmp_path / "r")
    assert again.read_manifest() == {"status": "running"}
    again.unlock()


def test_an_existing_run_is_never_overwritten(tmp_path):
    run = RunDir.create(tmp_path / "r")
    run.write_manifest({})
    run.unlock()
    with pytest.raises(ShiftbenchError, match="--resume"):
        RunDir.create(tmp_path / "r")
    with pytest.raises(ShiftbenchError, match="holds no shiftbench run"):
        RunDir.open(tmp_path / "empty")


def test_units_are_whole_or_absent_and_resume_cleans_leftovers(tmp_path):
    run = RunDir.create(tmp_path / "r")
    scores, metrics = _tables()
    run.write_unit("a__m__seed0__clean", scores, metrics)
    assert run.unit_done("a__m__seed0__clean") and not run.unit_done("b__m__seed0__clean")
    # what a kill can leave behind: a staged unit, a unit folder without its metrics, a temp file
    (run.path / ".partial" / "b__m__seed0__clean").mkdir(parents=True)
    half = run.path / "units" / "c__m__seed0__clean"
    half.mkdir()
    scores.to_parquet(half / "scores.parquet")
    (run.path / ".metrics.parquet.x.tmp").write_text("junk")
    assert run.done_units() == ["a__m__seed0__clean"]
    run.clean_partial()
    assert not (run.path / ".partial").exists() and not half.exists()
    assert not list(run.path.glob("*.tmp"))
    pd.testing.assert_frame_equal(run.read_units("scores.parquet"), scores)
    run.unlock()


def test_atomic_writes_round_trip_and_leave_no_temp_files(tmp_path):
    table = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    for name in ("t.csv", "t.parquet"):
        atomic_write_table(tmp_path / "sub" / name, table)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "sub" / "t.csv"), table)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "sub" / "t.parquet"), table)
    maps = np.random.default_rng(0).random((2, 4, 4)).astype(np.float16)
    atomic_write_npz(tmp_path / "m.npz", maps=maps, sample_id=np.array(["p", "q"]))
    with np.load(tmp_path / "m.npz") as z:
        assert np.array_equal(z["maps"], maps) and list(z["sample_id"]) == ["p", "q"]
    with pytest.raises(ValueError, match=".csv or .parquet"):
        atomic_write_table(tmp_path / "t.xlsx", table)
    leftovers = [
        f for f in os.listdir(tmp_path) + os.listdir(tmp_path / "sub") if f.endswith(".tmp")
    ]
    assert leftovers == []
