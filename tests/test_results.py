"""The run directory: one writer at a time, atomic units, clean resume."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from shiftbench.errors import ShiftbenchError
from shiftbench.results import (
    Run,
    RunDir,
    atomic_write_npz,
    atomic_write_table,
    load_run,
    schema,
    shift_params_frame,
)
from shiftbench.results.schema import FORMAT_VERSION
from shiftbench.testing.fake_run import write_run


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
    assert again.read_manifest() == {"format_version": FORMAT_VERSION, "status": "running"}
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


# ------------------------------------------------------------------ format: write -> read


def _unit(category, model="m", seed=0, n=4, severity=3.0):
    rows = []
    for protocol, sev in (("clean", np.nan), ("shift-noadapt", severity)):
        for split in ("val", "test"):
            for i in range(n):
                rows.append(
                    (category, model, seed, protocol, sev, split, f"{category}/{split}/{i}",
                     i % 2, "good" if i % 2 == 0 else "cut", i / n, 0.5, int(i / n >= 0.5), 0.25)
                )  # fmt: skip
    scores = pd.DataFrame(rows, columns=list(schema.SCORE_COLUMNS))
    metrics = pd.DataFrame(
        [
            (category, model, seed, p, sev, name, float(len(category) + k))
            for p, sev in (("shift-noadapt", severity), ("clean", np.nan))
            for k, name in enumerate(("image_auroc", "fit_seconds"))
        ],
        columns=list(schema.METRIC_COLUMNS),
    )
    return scores, metrics


def _splits(categories=("a", "bb"), n=4):
    return pd.DataFrame(
        [
            (0, f"{c}/{split}/{i}", c, split, i % 2, "good", f"/img/{c}{i}.png", None)
            for c in categories
            for split in ("val", "test")
            for i in range(n)
        ],
        columns=list(schema.SPLIT_COLUMNS),
    )


def _params(category, ids, severity=3):
    return shift_params_frame(
        0, category, ids, ["test"] * len(ids), "toy", "h" * 16, severity,
        [{"blur": {"sigma": 0.1 * i}} for i in range(len(ids))],
    )  # fmt: skip


def _fake(path, **kw):
    maps = np.random.default_rng(0).random((4, 8, 8)).astype(np.float32)
    return write_run(
        path,
        {f"{c}__m__seed0__clean": _unit(c) for c in ("bb", "a")},
        splits=_splits(),
        manifest={"command": "shiftbench run x", "seeds": [0]},
        shift_params=[
            (0, 3, c, _params(c, [f"{c}/test/{i}" for i in range(4)])) for c in ("a", "bb")
        ],
        maps=[("a", "m", 0, "clean", [f"a/test/{i}" for i in range(4)], maps)],
        protocols=["clean", "shift-noadapt"],
        **kw,
    )


def test_write_then_read_round_trip(tmp_path):
    path = _fake(tmp_path / "run")
    run = load_run(path)
    assert isinstance(run, Run) and run.format_version == FORMAT_VERSION
    assert run.manifest["status"] == schema.STATUS_COMPLETE and set(run.manifest) <= set(
        schema.MANIFEST_KEYS
    )
    assert RunDir.open_finished(path).manifest == run.manifest
    assert list(run.scores.columns) == list(schema.SCORE_COLUMNS) and len(run.scores) == 32
    assert list(run.splits.columns) == list(schema.SPLIT_COLUMNS)
    assert list(run.shift_params.columns) == list(schema.SHIFT_PARAM_COLUMNS)
    assert len(run.shift_params) == 8
    # metrics: the runner's order, plus the macro mean over the two categories
    m = run.metrics
    assert list(m.columns) == list(schema.METRIC_COLUMNS)
    assert list(m["category"].unique()) == ["a", "bb", "mean"]
    assert list(m[m["category"] == "a"]["protocol"]) == ["clean"] * 2 + ["shift-noadapt"] * 2
    mean = m[(m["category"] == "mean") & (m["metric"] == "image_auroc")]["value"]
    assert np.allclose(mean, (1 + 2) / 2)
    pd.testing.assert_frame_equal(pd.read_csv(path / schema.METRICS_CSV), m, check_dtype=False)
    assert run.map_names("a", "m", 0) == ["clean"] and run.map_names("bb", "m", 0) == []
    ids, maps = run.maps("a", "m", 0, "clean")
    assert ids == [f"a/test/{i}" for i in range(4)] and maps.dtype == np.float32
    assert maps.shape == (4, 8, 8)


def test_shift_params_merge_on_resume(tmp_path):
    run = RunDir.create(tmp_path / "r")
    first = _params("a", ["a/2", "a/0"])
    run.write_shift_params(0, 3, "a", first)
    again = _params("a", ["a/1", "a/0"]).assign(split="val")
    path = run.write_shift_params(0, 3, "a", again)
    assert path == run.path / "shift_params" / "seed0" / "sev3" / "a.parquet"
    got = pd.read_parquet(path)
    assert list(got["sample_id"]) == ["a/0", "a/1", "a/2"]
    assert list(got["split"]) == ["val", "val", "test"]  # a/0: the newest row wins
    assert list(got.index) == [0, 1, 2]
    run.unlock()


def test_a_run_without_format_version_is_version_1(tmp_path):
    path = _fake(tmp_path / "run")
    manifest = json.loads((path / "manifest.json").read_text())
    del manifest["format_version"]
    (path / "manifest.json").write_text(json.dumps(manifest))
    # an older run: no severity or defect columns, no metrics file
    scores = pd.read_parquet(path / "scores.parquet").drop(
        columns=["severity", "defect_type", "pixel_threshold"]
    )
    scores.to_parquet(path / "scores.parquet")
    (path / "metrics.parquet").unlink()
    run = load_run(path)
    assert run.format_version == 1 and run.metrics is None and len(run.scores) == 32


def test_a_newer_format_is_refused_naming_the_file_and_the_fix(tmp_path):
    path = _fake(tmp_path / "run")
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["format_version"] = FORMAT_VERSION + 1
    (path / "manifest.json").write_text(json.dumps(manifest))
    msg = rf"{path / 'manifest.json'}: run format version {FORMAT_VERSION + 1} .*upgrade shiftbench"
    with pytest.raises(ShiftbenchError, match=msg):
        load_run(path)
    with pytest.raises(ShiftbenchError, match="upgrade shiftbench"):
        RunDir.open(path)  # nor resumed by older code
    manifest["format_version"] = FORMAT_VERSION
    (path / "manifest.json").write_text(json.dumps(manifest))
    RunDir.open(path).unlock()  # the refusal released the writer lock


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda p: (p / "manifest.json").unlink(), r"manifest\.json: missing"),
        (lambda p: (p / "manifest.json").write_text("{oops"), r"manifest\.json: invalid JSON"),
        (lambda p: (p / "manifest.json").write_text("[1]"), r"manifest\.json: not a JSON object"),
        (lambda p: (p / "scores.parquet").unlink(), r"scores\.parquet: missing"),
        (
            lambda p: (p / "scores.parquet").write_bytes(b"PAR1 junk"),
            r"scores\.parquet: unreadable",
        ),
        (lambda p: (p / "metrics.parquet").unlink(), r"metrics\.parquet: missing"),
        (lambda p: (p / "splits.csv").write_bytes(b"\xff\xfe\x00"), r"splits\.csv: "),
        (
            lambda p: (p / "shift_params.parquet").write_text("x"),
            r"shift_params\.parquet: unreadable",
        ),
        (
            lambda p: (
                pd.read_parquet(p / "scores.parquet")
                .drop(columns=["score"])
                .to_parquet(p / "scores.parquet")
            ),
            r"scores\.parquet: missing columns score",
        ),
        (
            lambda p: (
                pd.read_parquet(p / "scores.parquet").iloc[:0].to_parquet(p / "scores.parquet")
            ),
            r"scores\.parquet: no rows",
        ),
    ],
)
def test_missing_or_damaged_files_are_one_line_errors(tmp_path, damage, match):
    path = _fake(tmp_path / "run")
    damage(path)
    with pytest.raises(ShiftbenchError, match=match) as exc:
        load_run(path)
    assert "\n" not in str(exc.value) and str(path) in str(exc.value)


def test_missing_run_unfinished_run_and_damaged_maps(tmp_path):
    with pytest.raises(ShiftbenchError, match="run directory not found"):
        load_run(tmp_path / "nope")
    run = RunDir.create(tmp_path / "r")
    run.write_manifest({"status": schema.STATUS_RUNNING})
    run.unlock()
    with pytest.raises(ShiftbenchError, match=r"not finished \(status 'running'\).*--resume"):
        load_run(tmp_path / "r")
    path = _fake(tmp_path / "run")
    done = load_run(path)
    with pytest.raises(ShiftbenchError, match=r"clean\.npz: missing.*--save-maps"):
        done.maps("bb", "m", 0, "clean")
    (path / "maps" / "a" / "m" / "seed0" / "clean.npz").write_bytes(b"not a zip")
    with pytest.raises(ShiftbenchError, match=r"clean\.npz: unreadable"):
        done.maps("a", "m", 0, "clean")


def test_schema_names_the_runners_files():
    assert str(schema.shift_params_path(1, 3, "bottle")) == "shift_params/seed1/sev3/bottle.parquet"
    assert str(schema.maps_path("bottle", "padim", 2, schema.map_name("shift-noadapt", 5.0))) == (
        "maps/bottle/padim/seed2/shift-noadapt-sev5.npz"
    )
    assert schema.map_name("clean") == "clean"
    assert set(schema.REPORT_MANIFEST_KEYS) <= set(schema.MANIFEST_KEYS)
    assert len(set(schema.METRIC_NAMES)) == len(schema.METRIC_NAMES) == 18
    with pytest.raises(ShiftbenchError, match="not a positive integer"):
        schema.format_version({"format_version": "2"}, "m.json")


# -- run directory hygiene: close(), file modes, reusing the folder of a run that failed early


def test_close_removes_the_lock_file_and_an_empty_partial_folder(tmp_path):
    run = RunDir.create(tmp_path / "r")
    run.write_manifest({"status": "running"})
    run.write_unit("a__m__seed0__clean", *_tables())  # leaves .partial/ empty behind
    assert (run.path / ".lock").is_file() and (run.path / ".partial").is_dir()
    run.close()
    run.close()  # twice is harmless
    assert sorted(p.name for p in run.path.iterdir()) == ["manifest.json", "units"]
    again = RunDir.open(tmp_path / "r")  # the lock is free
    (again.path / ".partial" / "staged").mkdir(parents=True)
    again.close()  # a staged unit is not thrown away by close()
    assert (again.path / ".partial" / "staged").is_dir() and not (again.path / ".lock").exists()


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_every_file_of_a_run_follows_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        run = RunDir.create(tmp_path / "r")
        run.write_manifest({"status": "running"})
        run.write_splits(pd.DataFrame({c: ["x"] for c in schema.SPLIT_COLUMNS}))
        run.write_unit("a__m__seed0__clean", *_tables())
        atomic_write_table(run.path / "t.parquet", _tables()[0])
        atomic_write_npz(run.path / "m.npz", a=np.zeros(2))
        files = [p for p in run.path.rglob("*") if p.is_file()]
        run.unlock()
    finally:
        os.umask(old)
    assert len(files) >= 7
    modes = {p.relative_to(tmp_path).as_posix(): oct(p.stat().st_mode & 0o777) for p in files}
    assert set(modes.values()) == {oct(0o666 & ~umask)}, modes


def _failed_early(path, **extra):
    """What a run that failed before its first unit leaves: manifest (running), splits,
    maybe some shift params and an empty .partial/, and its lock file."""
    run = RunDir.create(path)
    run.write_manifest({"status": "running", **extra})
    run.write_splits(pd.DataFrame({c: ["x"] for c in schema.SPLIT_COLUMNS}))
    (path / "shift_params" / "seed0").mkdir(parents=True)
    (path / ".partial" / "a__m__seed0__clean").mkdir(parents=True)
    run.unlock()
    return path


def test_a_run_that_failed_before_its_first_unit_can_be_reused(tmp_path):
    path = _failed_early(tmp_path / "r")
    assert RunDir.is_empty_failed(path)
    with pytest.raises(ShiftbenchError, match="--resume"):  # still refused by default
        RunDir.create(path)
    run = RunDir.create(path, reuse_empty=True)
    assert [p.name for p in path.iterdir()] == [".lock"]  # leftovers gone, lock held
    with pytest.raises(ShiftbenchError, match="another shiftbench run is writing"):
        RunDir.create(path, reuse_empty=True)
    run.unlock()


def test_only_a_run_without_any_finished_unit_counts_as_empty(tmp_path):
    assert not RunDir.is_empty_failed(tmp_path / "missing")
    done = _failed_early(tmp_path / "done")
    run = RunDir.open(done)
    run.write_unit("a__m__seed0__clean", *_tables())
    run.unlock()
    assert not RunDir.is_empty_failed(done)
    with pytest.raises(ShiftbenchError, match="--resume"):
        RunDir.create(done, reuse_empty=True)
    assert RunDir(done, None).unit_done("a__m__seed0__clean")  # nothing was removed
    finished = _failed_early(tmp_path / "finished")
    RunDir(finished, None).write_manifest({"status": "complete"})
    assert not RunDir.is_empty_failed(finished)
    mine = _failed_early(tmp_path / "mine")
    (mine / "notes.txt").write_text("a file the user put there")
    assert not RunDir.is_empty_failed(mine)
    broken = _failed_early(tmp_path / "broken")
    (broken / "manifest.json").write_text("{not json")
    assert not RunDir.is_empty_failed(broken)
