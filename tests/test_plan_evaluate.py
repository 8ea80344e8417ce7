"""The study's plan (units, conditions, per-shift studies) and the pure evaluation of one
condition, each tested alone; then a per-shift study end to end."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    average_precision_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from shiftbench.protocols import load_config
from shiftbench.protocols.evaluate import Thresholds, calibrate, condition_metrics
from shiftbench.protocols.plan import CLEAN, Domain, plan_units


def _cfg(**over):
    return load_config(None, {"models": "patchcore,ae", "seeds": "0,1", **over})


def test_plan_one_clean_fit_serves_every_shift_and_level():
    cfg = _cfg(protocol="shift-noadapt", severity="1,3")
    units = plan_units(cfg, ["brick"], ["cc_contrast", "cc_brightness"])
    assert len(units) == 2 * 2  # seeds x models, clean fits only
    u = units[0]
    assert u.fit_domain == CLEAN and u.key == "brick__patchcore__seed0__clean"
    labels = [c.label for c in u.conditions]
    assert labels == [
        "clean",
        "shift-noadapt@cc_contrast@sev1",
        "shift-noadapt@cc_brightness@sev1",
        "shift-noadapt@cc_contrast@sev3",
        "shift-noadapt@cc_brightness@sev3",
    ]
    assert (Domain(3, "cc_contrast"), "test") in u.needs()
    assert (Domain(3, "cc_contrast"), "val") not in u.needs()  # thresholds from clean val


def test_plan_shift_adapt_fits_once_per_shift_and_level():
    cfg = _cfg(protocol="all", severity="1,3", models="patchcore", seeds="0")
    units = plan_units(cfg, ["brick"], ["a", "b"])
    keys = [u.key for u in units]
    assert keys == [
        "brick__patchcore__seed0__clean",
        "brick__patchcore__seed0__shift-a-sev1",
        "brick__patchcore__seed0__shift-b-sev1",
        "brick__patchcore__seed0__shift-a-sev3",
        "brick__patchcore__seed0__shift-b-sev3",
    ]
    adapt = units[1]
    assert adapt.fit_domain == Domain(1, "a")
    assert {c.threshold_domain for c in adapt.conditions} == {Domain(1, "a")}
    # without per-shift members the plan is the whole-suite one
    assert [u.key for u in plan_units(cfg, ["brick"])] == [
        "brick__patchcore__seed0__clean",
        "brick__patchcore__seed0__shift-sev1",
        "brick__patchcore__seed0__shift-sev3",
    ]


def test_plan_adaptations_are_conditions_of_the_clean_fit_in_a_sweep_of_shifts():
    cfg = _cfg(
        protocol="shift-noadapt,shift-adapt",
        severity="1,3",
        models="patchcore",
        seeds="0",
        adapt="refit,bank-extend,test-bn",
        adapt_k="1,4",
    )
    units = plan_units(cfg, ["brick"], ["a", "b"])
    clean, refits = units[0], units[1:]
    assert [u.fit_name for u in refits] == [
        "shift-a-sev1",
        "shift-b-sev1",
        "shift-a-sev3",
        "shift-b-sev3",
    ]
    assert all(u.adapt_columns for u in units)
    assert {(c.adaptation, c.k) for u in refits for c in u.conditions} == {("refit", 0)}
    adapted = [c for c in clean.conditions if c.adapted]
    # every (shift, level) x (bank-extend at each k, test-bn once)
    assert len(adapted) == 2 * 2 * (2 + 1)
    assert {c.label for c in adapted if c.shift == "a" and c.severity == 3} == {
        "shift-adapt+bank-extend-k1@a@sev3",
        "shift-adapt+bank-extend-k4@a@sev3",
        "shift-adapt+test-bn-k0@a@sev3",
    }
    # thresholds from clean validation images; k normals from Train-shift, never val/test
    assert {c.threshold_domain for c in adapted} == {CLEAN}
    needs = clean.needs()
    assert (Domain(3, "a"), "train") in needs and (Domain(3, "a"), "val") not in needs
    # refit alone keeps the old plan: no adapted condition, no clean fit without clean protocols
    only_refit = _cfg(protocol="shift-adapt", models="patchcore", seeds="0", adapt="refit")
    assert [u.fit_name for u in plan_units(only_refit, ["brick"])] == ["shift-sev3"]


def test_suite_prefix_each_sets_the_option():
    cfg = load_config(None, {"suite": "each:adshift"})
    assert cfg.suite == "adshift" and cfg.each is True
    assert load_config().each is None  # unset: the default study keeps its hash
    assert load_config().hash == "18d910686d"


def test_condition_metrics_match_sklearn_at_the_frozen_threshold():
    rng = np.random.default_rng(0)
    labels = np.array([0] * 12 + [1] * 8)
    scores = rng.normal(size=20) + labels
    maps = rng.random((20, 8, 8)).astype(np.float32)
    masks = np.zeros((20, 8, 8), np.uint8)
    masks[12:, 2:5, 2:5] = 255
    thr = Thresholds(image=0.4, pixel=0.7, has_pixels=True)
    got = condition_metrics(labels, scores, maps, masks, thr)
    pred = (scores >= 0.4).astype(int)
    assert got["image_auroc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert got["image_auprc"] == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    assert got["image_f1"] == pytest.approx(f1_score(labels, pred), abs=1e-12)
    assert got["image_precision"] == pytest.approx(precision_score(labels, pred), abs=1e-12)
    assert got["image_recall"] == pytest.approx(recall_score(labels, pred), abs=1e-12)
    assert got["pixel_auroc"] == pytest.approx(
        roc_auc_score(masks.ravel() > 0, maps.ravel()), abs=1e-9
    )
    assert got["pixel_f1"] == pytest.approx(f1_score(masks.ravel() > 0, maps.ravel() >= 0.7))
    # without masks on the validation side no pixel metric is reported
    no_pixels = condition_metrics(labels, scores, maps, masks, Thresholds(0.4, np.nan, False))
    assert "pixel_auroc" not in no_pixels and np.isnan(no_pixels["pixel_threshold"])


def test_calibrate_picks_the_f1_optimal_validation_threshold():
    labels = np.array([0, 0, 0, 1, 1])
    scores = np.array([0.1, 0.2, 0.6, 0.5, 0.9])
    maps = np.zeros((5, 4, 4), np.float32)
    masks = np.zeros((5, 4, 4), np.uint8)
    thr = calibrate(labels, scores, maps, masks, has_masks=False, map_range=True)
    # hand-worked: thresholds 0.5 (tp 2, fp 1: F1 0.8) and 0.9 (tp 1: F1 0.667)
    f1 = {t: f1_score(labels, scores >= t) for t in scores}
    assert f1[thr.image] == max(f1.values()) and thr.image == pytest.approx(0.5)
    assert not thr.has_pixels and np.isnan(thr.pixel)
    assert thr.map_range[0] == 0.0 and thr.map_range[1] > 0.0  # a flat map still has a scale


def test_per_shift_study_end_to_end(tiny_synthetic, tmp_path):
    """--suite each:adshift: one clean fit per category scores every member alone; the
    metrics of each shift recompute from its scores, and its twins come from that member
    only (the shift params name it)."""
    from shiftbench.analysis.report.summary import summary_table
    from shiftbench.protocols.runner import StudyRunner

    cfg = load_config(
        None,
        dict(
            dataset="mvtec",
            root=str(tiny_synthetic),
            categories="brick",
            models="patchcore",
            weights="random",
            image_size=64,
            suite="each:adshift",
            protocol="shift-noadapt",
            workers=1,
            model_options={"patchcore": {"coreset_ratio": 0.1}},
        ),
    )
    runner = StudyRunner(cfg, tmp_path / "each", progress=False, echo=lambda s: None)
    assert [u.key for u in runner.units] == ["brick__patchcore__seed0__clean"]
    path = runner.run().path
    members = ["cc_brightness", "cc_contrast", "cc_defocus_blur", "cc_gaussian_noise"]
    scores = pd.read_parquet(path / "scores.parquet")
    metrics = pd.read_parquet(path / "metrics.parquet")
    assert list(dict.fromkeys(scores["shift"].dropna())) == members
    assert scores.loc[scores["protocol"] == "clean", "shift"].isna().all()
    auroc = metrics[metrics["metric"] == "image_auroc"]
    for member in members:
        test = scores[(scores["shift"] == member) & (scores["split"] == "test")]
        got = auroc.loc[auroc["shift"] == member, "value"].item()
        assert got == pytest.approx(roc_auc_score(test["label"], test["score"]), abs=1e-12)
    # the shifted test images differ per member; validation (clean) scores do not
    t = {m: scores[(scores["shift"] == m) & (scores["split"] == "test")] for m in members}
    assert not np.allclose(t["cc_brightness"]["score"], t["cc_contrast"]["score"])
    v = scores[(scores["split"] == "val")].groupby("shift")["score"].apply(tuple)
    assert v.nunique() == 1
    params = pd.read_parquet(path / "shift_params.parquet")
    for member in members:
        rows = params[params["shift"] == member]
        assert set(rows["split"]) == {"test"}  # shift-noadapt shifts test images only
        assert all(set(json.loads(p)) == {member} for p in rows["params"])
    table = summary_table(metrics)
    assert list(table.columns) == ["clean", *[f"shift-noadapt@{m}" for m in members]]
