"""The study runner end to end on tiny synthetic data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from shiftbench.protocols import load_config
from shiftbench.protocols.runner import StudyRunner
from shiftbench.results import schema

EFFICIENCY = set(schema.EFFICIENCY_METRICS)
FAST = {"patchcore": {"coreset_ratio": 0.1}, "ae": {"epochs": 2}}


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
    )
    base.update(over)
    return load_config(None, base)


@pytest.fixture(scope="module")
def study(tiny_synthetic, tmp_path_factory):
    """One in-process run of --protocol all, 2 categories x 2 models, counting fits."""
    from shiftbench.models.base import AnomalyModel

    fits = []
    original = AnomalyModel.fit

    def counting_fit(self, images):
        fits.append((type(self).__name__, len(images)))
        return original(self, images)

    out = tmp_path_factory.mktemp("runs") / "study"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(AnomalyModel, "fit", counting_fit)
        runner = StudyRunner(
            _config(tiny_synthetic, save_maps=True), out, progress=False, echo=lambda s: None
        )
        path = runner.run().path
    return path, fits


def test_exactly_two_fits_per_category_model_seed(study):
    path, fits = study
    assert len(fits) == 2 * 2 * 2  # categories x models x {clean, shift}
    units = sorted(p.name for p in (path / "units").iterdir())
    assert len(units) == 8 and sum(u.endswith("__clean") for u in units) == 4


def test_image_metrics_recompute_from_scores(study):
    path, _ = study
    scores = pd.read_parquet(path / "scores.parquet")
    metrics = pd.read_parquet(path / "metrics.parquet")
    assert set(metrics["protocol"]) == {"clean", "shift-noadapt", "shift-adapt"}
    checked = 0
    for (cat, model, seed, proto), g in scores[scores["split"] == "test"].groupby(
        ["category", "model", "seed", "protocol"]
    ):
        m = metrics[
            (metrics["category"] == cat)
            & (metrics["model"] == model)
            & (metrics["seed"] == seed)
            & (metrics["protocol"] == proto)
        ]
        value = m.set_index("metric")["value"]
        y, s, d = g["label"].to_numpy(), g["score"].to_numpy(), g["decision"].to_numpy()
        assert (d == (s >= g["threshold"].iloc[0])).all()
        assert value["image_auroc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
        assert value["image_auprc"] == pytest.approx(average_precision_score(y, s), abs=1e-12)
        assert value["image_f1"] == pytest.approx(f1_score(y, d, zero_division=0), abs=1e-12)
        assert value["image_precision"] == pytest.approx(
            precision_score(y, d, zero_division=0), abs=1e-12
        )
        assert value["image_recall"] == pytest.approx(recall_score(y, d), abs=1e-12)
        assert value["image_accuracy"] == pytest.approx(accuracy_score(y, d), abs=1e-12)
        oracle = max(f1_score(y, s >= t) for t in np.unique(s))
        assert value["image_f1_max_oracle"] == pytest.approx(oracle, abs=1e-12)
        assert EFFICIENCY <= set(value.index)
        assert {"pixel_auroc", "pixel_aupro", "pixel_f1"} <= set(value.index)
        checked += 1
    assert checked == 2 * 2 * 3
    mean = metrics[metrics["category"] == "mean"]
    per_cat = (
        metrics[metrics["category"] != "mean"]
        .groupby(["model", "seed", "protocol", "metric"])["value"]
        .mean()
    )
    merged = mean.set_index(["model", "seed", "protocol", "metric"])["value"]
    assert np.allclose(merged.sort_index(), per_cat.loc[merged.sort_index().index])


def test_thresholds_are_f1_optimal_on_the_protocols_validation_scores(study):
    path, _ = study
    scores = pd.read_parquet(path / "scores.parquet")
    for key, g in scores.groupby(["category", "model", "seed", "protocol"]):
        val = g[g["split"] == "val"]
        y, s = val["label"].to_numpy(), val["score"].to_numpy()
        t = g["threshold"].iloc[0]
        assert (g["threshold"] == t).all()
        best = max(f1_score(y, s >= c) for c in np.unique(s))
        assert f1_score(y, s >= t) == pytest.approx(best, abs=1e-12), key
    # shift-noadapt reuses the clean fit's validation scores and threshold
    a = scores[(scores["protocol"] == "clean")].set_index(
        ["category", "model", "split", "sample_id"]
    )
    b = scores[(scores["protocol"] == "shift-noadapt")].set_index(
        ["category", "model", "split", "sample_id"]
    )
    val_idx = a.index[a.index.get_level_values("split") == "val"]
    assert np.array_equal(a.loc[val_idx, "score"], b.loc[val_idx, "score"])
    assert np.array_equal(a["threshold"], b.loc[a.index, "threshold"])
    # ... while its test scores are on shifted images
    test_idx = a.index[a.index.get_level_values("split") == "test"]
    assert not np.allclose(a.loc[test_idx, "score"], b.loc[test_idx, "score"])


def test_test_images_never_in_train_or_val(study):
    path, _ = study
    splits = pd.read_csv(path / "splits.csv")
    scores = pd.read_parquet(path / "scores.parquet")
    for (seed, cat), g in splits.groupby(["seed", "category"]):
        test_ids = set(g.loc[g["split"] == "test", "sample_id"])
        assert not test_ids & set(g.loc[g["split"].isin(["train", "val"]), "sample_id"])
        sc = scores[(scores["seed"] == seed) & (scores["category"] == cat)]
        assert set(sc.loc[sc["split"] == "test", "sample_id"]) == test_ids
        assert not set(sc.loc[sc["split"] == "val", "sample_id"]) & test_ids


def test_manifest_and_shift_params(study):
    path, _ = study
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["config"]["models"] == ["patchcore", "ae"]
    assert manifest["suite"]["name"] == "mvtec-shift" and len(manifest["suite"]["hash"]) >= 8
    assert set(manifest["split_hashes"]) == {"0"} and "torch" in manifest["versions"]
    params = pd.read_parquet(path / "shift_params.parquet")
    splits = pd.read_csv(path / "splits.csv")
    used = splits[splits["split"].isin(["train", "val", "test"])]
    assert set(params["sample_id"]) == set(used["sample_id"])
    assert all(isinstance(json.loads(p), dict) for p in params["params"])


def _cli(*args, **kw):
    return subprocess.run(
        [sys.executable, "-m", "shiftbench.cli.main", *args], capture_output=True, text=True, **kw
    )


def _base_args(root, out):
    return [
        "run",
        "--dataset",
        "mvtec",
        "--root",
        str(root),
        "--categories",
        "brick,washer",
        "--models",
        "patchcore",
        "--weights",
        "random",
        "--image-size",
        "64",
        "--protocol",
        "all",
        "--workers",
        "1",
        "--out",
        str(out),
        "--no-progress",
    ]


def _quality(path):
    m = pd.read_parquet(path / "metrics.parquet")
    return (
        m[~m["metric"].isin(EFFICIENCY)]
        .sort_values(["category", "model", "seed", "protocol", "metric"])
        .reset_index(drop=True)
    )


def test_kill_9_then_resume_gives_identical_metrics(tiny_synthetic, tmp_path):
    full = tmp_path / "full"
    p = _cli(*_base_args(tiny_synthetic, full))
    assert p.returncode == 0, p.stderr
    assert "image_auroc" in p.stdout and "shift-noadapt" in p.stdout

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "shiftbench.cli.main", *_base_args(tiny_synthetic, killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        if any((killed / "units").glob("*/scores.parquet")) or proc.poll() is not None:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = list((killed / "units").glob("*/scores.parquet"))
    assert 1 <= len(done) < 4, "the kill should land mid-way through the 4 fits"
    assert not (killed / "metrics.parquet").exists()

    again = _cli(*_base_args(tiny_synthetic, killed))
    assert again.returncode == 2 and "--resume" in again.stderr  # never overwrite a run
    resumed = _cli(*_base_args(tiny_synthetic, killed), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert f"{len(done)} of 4 fits already done" in resumed.stdout
    pd.testing.assert_frame_equal(_quality(full), _quality(killed))


def test_second_writer_is_refused(tiny_synthetic, tmp_path):
    from shiftbench.results import RunDir

    run = RunDir.create(tmp_path / "busy")
    (tmp_path / "busy" / "manifest.json").write_text("{}")
    p = _cli(*_base_args(tiny_synthetic, tmp_path / "busy"), "--resume")
    run.unlock()
    assert p.returncode == 2 and "another shiftbench run is writing" in p.stderr


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--categories", "nope"], "category 'nope' not found"),
        (["--models", "nomodel"], "nomodel"),
        (["--suite", "nosuite"], "nosuite"),
        (["--protocol", "sideways"], "--protocol sideways: unknown"),
        (["--weights", "/no/such/weights.pth"], "/no/such/weights.pth"),
        (["--severity", "2,7"], "--severity 7: levels run from 0"),
    ],
)
def test_bad_input_fails_fast_with_one_line(tiny_synthetic, tmp_path, extra, message):
    out = tmp_path / "bad"
    p = _cli(*_base_args(tiny_synthetic, out), *extra)
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert not out.exists(), "nothing is written before the inputs are checked"


def test_suite_file_with_unknown_perturbation(tiny_synthetic, tmp_path):
    suite = tmp_path / "mine.yaml"
    suite.write_text("name: mine\nperturbations:\n  - name: warp_drive\n")
    p = _cli(*_base_args(tiny_synthetic, tmp_path / "o"), "--suite", str(suite))
    assert (
        p.returncode == 2 and "warp_drive" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    )


def test_bad_root_and_dry_run(tiny_synthetic, tmp_path):
    p = _cli("run", "--dataset", "mvtec", "--root", str(tmp_path / "missing"))
    assert p.returncode == 2 and "dataset root not found" in p.stderr
    p = _cli(*_base_args(tiny_synthetic, tmp_path / "dry"), "--dry-run", "--seeds", "0,1")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("8 fits: 2 seed(s) x 2 group(s) x 1 model(s) x 2 domain(s)")
    assert not (tmp_path / "dry").exists()


def test_study_file_and_cli_override(tiny_synthetic, tmp_path):
    study = tmp_path / "study.yaml"
    study.write_text(
        f"dataset: mvtec\nroot: {tiny_synthetic}\nmodels: [patchcore]\nseeds: [3, 4]\nimage_size: 64\n"
    )
    cfg = load_config(study, {"seeds": "5"})
    assert (
        cfg.seeds == [5]
        and cfg.models == ["patchcore"]
        and cfg.image_size == 64
        and cfg.protocol == "shift-noadapt"
    )
    study.write_text("modles: [patchcore]\n")
    p = _cli("run", "--config", str(study), "--dry-run")
    assert p.returncode == 2 and "unknown option 'modles'" in p.stderr


def test_global_model_pools_categories(tiny_synthetic, tmp_path):
    cfg = _config(tiny_synthetic, models="patchcore", protocol="clean", global_model=True)
    runner = StudyRunner(cfg, tmp_path / "g", progress=False, echo=lambda s: None)
    assert [u.key for u in runner.units] == ["global__patchcore__seed0__clean"]
    path = runner.run().path
    m = pd.read_parquet(path / "metrics.parquet")
    assert set(m["category"]) == {"brick", "washer", "mean"}


def test_saved_maps_are_float16_test_maps(study):
    path, _ = study
    splits = pd.read_csv(path / "splits.csv")
    test_ids = sorted(
        splits.loc[(splits["category"] == "washer") & (splits["split"] == "test"), "sample_id"]
    )
    for proto in ("clean", "shift-noadapt", "shift-adapt"):
        with np.load(path / "maps" / "washer" / "ae" / "seed0" / f"{proto}.npz") as f:
            assert sorted(f["sample_id"]) == test_ids
            assert f["maps"].dtype == np.float16 and f["maps"].shape == (len(test_ids), 64, 64)


def test_severity_sweep_end_to_end(tiny_synthetic, tmp_path):
    """--severity 1,4: one clean fit serves clean and shift-noadapt at both levels;
    shift-adapt fits once per level; the report draws the severity curves."""
    from shiftbench.analysis.report.build import build_report
    from shiftbench.analysis.report.summary import summary_table

    cfg = _config(tiny_synthetic, categories="brick", models="patchcore", severity="4,1")
    assert cfg.severity == [1, 4] and cfg.severities == [1, 4]
    runner = StudyRunner(cfg, tmp_path / "sweep", progress=False, echo=lambda s: None)
    assert [u.key for u in runner.units] == [
        "brick__patchcore__seed0__clean",
        "brick__patchcore__seed0__shift-sev1",
        "brick__patchcore__seed0__shift-sev4",
    ]
    path = runner.run().path
    scores = pd.read_parquet(path / "scores.parquet")
    assert scores.loc[scores["protocol"] == "clean", "severity"].isna().all()
    for proto in ("shift-noadapt", "shift-adapt"):
        assert sorted(scores.loc[scores["protocol"] == proto, "severity"].unique()) == [1.0, 4.0]

    def rows(proto, split, sev=None):
        r = scores[(scores["protocol"] == proto) & (scores["split"] == split)]
        r = r if sev is None else r[r["severity"] == sev]
        return r.set_index("sample_id").sort_index()

    # the no-adaptation threshold comes from clean validation scores at every level ...
    for sev in (1.0, 4.0):
        noadapt = rows("shift-noadapt", "val", sev)
        assert np.array_equal(noadapt["score"], rows("clean", "val")["score"])
        assert (noadapt["threshold"] == rows("clean", "val")["threshold"].iloc[0]).all()
    # ... while each level's test images (and adapted fits) differ
    assert not np.allclose(
        rows("shift-noadapt", "test", 1.0)["score"], rows("shift-noadapt", "test", 4.0)["score"]
    )
    assert not np.allclose(
        rows("shift-adapt", "val", 1.0)["score"], rows("shift-adapt", "val", 4.0)["score"]
    )
    metrics = pd.read_parquet(path / "metrics.parquet")
    auroc = metrics[(metrics["metric"] == "image_auroc") & (metrics["category"] == "brick")]
    assert len(auroc) == 5  # clean + 2 protocols x 2 levels
    g = rows("shift-noadapt", "test", 4.0)
    got = auroc[(auroc["protocol"] == "shift-noadapt") & (auroc["severity"] == 4.0)]["value"]
    assert got.item() == pytest.approx(roc_auc_score(g["label"], g["score"]), abs=1e-12)
    table = summary_table(metrics)
    assert list(table.columns) == [
        "clean",
        "shift-noadapt@1",
        "shift-noadapt@4",
        "shift-adapt@1",
        "shift-adapt@4",
    ]
    params = pd.read_parquet(path / "shift_params.parquet")
    assert sorted(params["severity"].unique()) == [1, 4]
    assert params.groupby("severity")["sample_id"].nunique().nunique() == 1

    out = build_report(path, "markdown", n_resamples=200, figures=("severity",))
    assert (path / "figures" / "severity_image_auroc.png").is_file()
    assert not any("severity" in x for x in out.skipped)
    md = (path / "tables" / "image_auroc.md").read_text()
    assert "brick" in md and "Shift (adapt.)" in md
    assert "suite mvtec-shift, severity 4" in md  # the level a table shows is named


@pytest.mark.parametrize("bad", ["7", "-1", ""])
def test_bad_severity_is_one_clear_error(bad):
    from shiftbench.errors import ShiftbenchError

    with pytest.raises(ShiftbenchError, match=r"^severity"):
        load_config(None, {"severity": bad})
