"""Running a finished study again: shown, not computed again; ``--save-models`` added later
fits only the units whose models are missing, checked against the stored scores;
``--fresh`` computes it anew."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from _cli import run_main as _main

from shiftbench.errors import ShiftbenchError
from shiftbench.protocols.reuse import models_only, unit_difference
from shiftbench.results import schema


@pytest.fixture
def fits(monkeypatch):
    """The fits made, as a list of model class names."""
    from shiftbench.models.base import AnomalyModel

    made = []
    original = AnomalyModel.fit

    def counting_fit(self, images):
        made.append(type(self).__name__)
        return original(self, images)

    monkeypatch.setattr(AnomalyModel, "fit", counting_fit)
    return made


def _tables(path):
    """Every unit table of a run, as bytes (what a rerun must leave as it was)."""
    files = sorted(p for p in (path / "units").rglob("*") if p.is_file())
    return {p.relative_to(path): p.read_bytes() for p in files}


def test_a_finished_study_is_shown_then_models_are_added_then_fresh(
    tiny_synthetic, tmp_path, monkeypatch, capsys, fits
):
    monkeypatch.chdir(tmp_path)
    argv = ["run", "--dataset", "mvtec", "--root", str(tiny_synthetic)]
    argv += ["--categories", "brick,washer", "--weights", "random", "--image-size", "64"]
    argv += ["--protocol", "clean", "--model-option", "patchcore.coreset_ratio=0.1"]
    argv += ["--no-progress"]
    code, first, err = _main(argv, capsys)
    assert code == 0, err
    assert len(fits) == 2
    (run,) = (tmp_path / "results").iterdir()
    stored = _tables(run)
    summary = first[first.index("model") :]  # the summary table onwards

    # the same command again: the finished run is shown, nothing is fitted
    code, again, err = _main(argv, capsys)
    assert code == 0, err
    assert len(fits) == 2
    assert f"results/{run.name} holds this study, finished" in again
    assert "nothing computed again (--fresh runs it again)" in again
    assert summary in again  # the same summary, read from the run
    assert list((tmp_path / "results").iterdir()) == [run]

    # --save-models: only the fits whose models are missing run, into the same folder
    code, out, err = _main([*argv, "--save-models"], capsys)
    assert code == 0, err
    assert "without the models of 2 of 2 fits: adding them there" in out
    assert "fitting 2 finished fit(s) again to save their models" in out
    assert len(fits) == 4
    assert list((tmp_path / "results").iterdir()) == [run]
    assert _tables(run) == stored  # the stored results stay, byte for byte
    saved = sorted(p.name for p in (run / schema.MODELS).glob("*.pt"))
    assert saved == sorted(
        f"{k}.pt" for k in json.loads((run / "manifest.json").read_text())["units"]
    )
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == schema.STATUS_COMPLETE and manifest["config"]["save_models"]
    assert set(manifest["saved_models"]) >= {p[: -len(".pt")] for p in saved}
    assert summary in out

    # now with its models: shown again, nothing fitted
    code, out, err = _main([*argv, "--save-models"], capsys)
    assert code == 0 and len(fits) == 4 and "nothing computed again" in out

    # --fresh computes it into a new folder
    code, out, err = _main([*argv, "--fresh"], capsys)
    assert code == 0, err
    assert len(fits) == 6
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == [run.name, f"{run.name}-2"]


def _unit(score_shift=0.0, seconds=1.0):
    scores = pd.DataFrame(
        {"sample_id": ["a", "b", "c"], "score": np.array([0.1, 0.5, 0.9]) + score_shift}
    )
    metrics = pd.DataFrame(
        {
            "metric": ["image_auroc", "fit_seconds"],
            "value": [0.75 + score_shift, seconds],
        }
    )
    return scores, metrics


def test_unit_difference_ignores_timings_and_rounding_only():
    old = _unit()
    assert unit_difference(*old, *_unit(seconds=9.0)) == ""  # a timing is not a result
    assert unit_difference(*old, *_unit(score_shift=1e-9)) == ""  # thread-count rounding
    differs = unit_difference(*old, *_unit(score_shift=1e-3))
    assert differs.startswith("scores.score: largest difference 0.001")
    scores, metrics = _unit()
    renamed = scores.assign(sample_id=["a", "b", "x"])
    assert unit_difference(*old, renamed, metrics) == "scores.sample_id: values differ"
    assert unit_difference(*old, scores.iloc[:2], metrics).startswith("scores: 2 rows, stored 3")


def test_a_unit_that_scores_differently_keeps_no_model(tmp_path):
    from shiftbench.results import RunDir

    run = RunDir(tmp_path, None)
    scores, metrics = _unit()
    run.write_unit("u1", scores, metrics)
    (tmp_path / schema.MODELS).mkdir()
    for suffix in (schema.MODEL_SUFFIX, schema.MODEL_META_SUFFIX):
        (tmp_path / schema.MODELS / f"u1{suffix}").write_text("model")
    run.recheck = models_only(run)
    run.write_unit("u1", *_unit(seconds=5.0))  # the same results: the model stays
    assert (tmp_path / schema.MODELS / "u1.pt").is_file()
    with pytest.raises(ShiftbenchError, match="u1: fitted again to save its model, it scored"):
        run.write_unit("u1", *_unit(score_shift=0.01))
    assert not list((tmp_path / schema.MODELS).iterdir())
    stored = pd.read_parquet(tmp_path / "units" / "u1" / schema.UNIT_SCORES)
    pd.testing.assert_frame_equal(stored, scores)  # the stored results stay
