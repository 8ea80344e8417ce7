"""Adaptation strategies in a study: conditions, columns, target images, thresholds, bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from shiftbench.errors import ShiftbenchError
from shiftbench.protocols import load_config
from shiftbench.protocols.runner import StudyRunner
from shiftbench.results import schema

STRATEGIES = "refit,bank-extend,recalibrate,test-bn"
KS = (1, 4)


def _config(root, **over):
    base = dict(
        dataset="mvtec",
        root=str(root),
        categories="brick",
        models="patchcore",
        weights="random",
        image_size=64,
        protocol="all",
        seeds="0",
        workers=1,
        model_options={"patchcore": {"coreset_ratio": 0.1}},
    )
    base.update(over)
    return load_config(None, base)


def _run(config, out):
    return StudyRunner(config, out, progress=False, echo=lambda s: None).run().path


@pytest.fixture(scope="module")
def default_run(tiny_synthetic, tmp_path_factory):
    return _run(_config(tiny_synthetic), tmp_path_factory.mktemp("runs") / "default")


@pytest.fixture(scope="module")
def adapt_run(tiny_synthetic, tmp_path_factory):
    """Two seeds, four strategies, k = 1, 4, saved models; every image that scoring reads
    while a ``recalibrate`` condition is evaluated is recorded."""
    import shiftbench.protocols.adapting as adapting
    from shiftbench.adaptation.threshold import Recalibrate
    from shiftbench.models.base import AnomalyModel
    from shiftbench.protocols.images import SplitImages

    spy = {"on": False, "pixels": [], "scored": [], "picked": []}
    evaluate, pixels = adapting._evaluate_adapted, SplitImages.pixels
    score, pick = AnomalyModel.score, Recalibrate.pick_threshold

    def evaluate_spy(cat, unit, c, strategy, *args):
        spy["on"] = c.adaptation == "recalibrate"
        try:
            return evaluate(cat, unit, c, strategy, *args)
        finally:
            spy["on"] = False

    def pixels_spy(self, domain, split):
        if spy["on"]:
            spy["pixels"].append((domain, split))
        return pixels(self, domain, split)

    def score_spy(self, images):
        out = score(self, images)
        if spy["on"]:
            spy["scored"].append((len(images), out[0]))
        return out

    def pick_spy(self, scores, maps):
        spy["picked"].append((scores, pick(self, scores, maps)))
        return spy["picked"][-1][1]

    config = _config(tiny_synthetic, seeds="0,1", adapt=STRATEGIES, adapt_k="1,4", save_models=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(adapting, "_evaluate_adapted", evaluate_spy)
        mp.setattr(SplitImages, "pixels", pixels_spy)
        mp.setattr(AnomalyModel, "score", score_spy)
        mp.setattr(Recalibrate, "pick_threshold", pick_spy)
        path = _run(config, tmp_path_factory.mktemp("runs") / "adapt")
    return path, spy


def test_refit_is_bit_identical_to_todays_shift_adapt(default_run, adapt_run):
    path, _ = adapt_run
    before = pd.read_parquet(default_run / schema.SCORES)
    after = pd.read_parquet(path / schema.SCORES)
    after = after[(after["seed"] == 0) & after["adaptation"].isin(["none", "refit"])]
    after = after.drop(columns=[schema.ADAPTATION_COLUMN, schema.K_COLUMN])
    pd.testing.assert_frame_equal(before, after.reset_index(drop=True))
    # a default study has neither the columns nor the targets table
    assert schema.ADAPTATION_COLUMN not in before.columns
    assert not (default_run / schema.ADAPT_TARGETS).exists()
    manifest = json.loads((default_run / schema.MANIFEST).read_text())
    assert schema.ADAPTATION_KEY not in manifest and manifest["config"]["adapt"] is None


def test_every_strategy_and_k_is_a_condition_with_columns_after_severity(adapt_run):
    path, _ = adapt_run
    scores = pd.read_parquet(path / schema.SCORES)
    metrics = pd.read_parquet(path / schema.METRICS)
    for table, nxt in ((scores, "split"), (metrics, "metric")):
        cols = list(table.columns)
        at = cols.index("severity")
        assert cols[at + 1 : at + 4] == [schema.ADAPTATION_COLUMN, schema.K_COLUMN, nxt]
    cells = set(
        map(tuple, metrics[["protocol", "adaptation", "k"]].drop_duplicates().to_numpy().tolist())
    )
    expected = {("clean", "none", 0), ("shift-noadapt", "none", 0), ("shift-adapt", "refit", 0)}
    expected |= {("shift-adapt", s, k) for s in ("bank-extend", "recalibrate") for k in KS}
    expected |= {("shift-adapt", "test-bn", 0)}
    assert cells == expected


def test_normal_k_targets_are_train_normals_disjoint_from_val_and_test_for_every_seed(adapt_run):
    path, _ = adapt_run
    targets = pd.read_parquet(path / schema.ADAPT_TARGETS)
    assert list(targets.columns) == list(schema.ADAPT_TARGET_COLUMNS)
    splits = pd.read_csv(path / schema.SPLITS)
    normal_k = targets[targets["adaptation"] != "test-bn"]
    assert set(normal_k["seed"]) == {0, 1}
    for (seed, _strategy, k), group in normal_k.groupby(["seed", "adaptation", "k"]):
        assert len(group) == k
        own = splits[splits["seed"] == seed].set_index("sample_id")
        rows = own.loc[group["sample_id"]]
        assert (rows["split"] == "train").all() and (rows["label"] == 0).all()
        held_out = set(own.index[own["split"].isin(["val", "test"])])
        assert not set(group["sample_id"]) & held_out
    # nested budgets, the same parts for every strategy; seeds draw differently
    ids = normal_k.groupby(["seed", "adaptation", "k"])["sample_id"].apply(set)
    for seed in (0, 1):
        assert ids[seed, "bank-extend", 1] <= ids[seed, "bank-extend", 4]
        assert ids[seed, "bank-extend", 4] == ids[seed, "recalibrate", 4]


def test_transductive_rows_are_marked_and_read_the_test_images(adapt_run):
    path, _ = adapt_run
    manifest = json.loads((path / schema.MANIFEST).read_text())
    record = manifest[schema.ADAPTATION_KEY]
    assert set(record) == set(STRATEGIES.split(","))
    assert record["test-bn"]["transductive"] is True
    assert record["test-bn"]["target_data"] == "unlabelled-test"
    assert not any(record[s]["transductive"] for s in ("refit", "bank-extend", "recalibrate"))
    assert "Val-shift" in record["refit"]["threshold"]
    targets = pd.read_parquet(path / schema.ADAPT_TARGETS)
    splits = pd.read_csv(path / schema.SPLITS)
    test_ids = set(splits[(splits["seed"] == 0) & (splits["split"] == "test")]["sample_id"])
    tbn = targets[(targets["adaptation"] == "test-bn") & (targets["seed"] == 0)]
    assert set(tbn["sample_id"]) == test_ids


def test_recalibrate_reads_no_anomalous_image(adapt_run):
    """While a recalibrate condition is evaluated, no validation image is read and the
    model scores only the k target normals; its threshold is the rule on their scores."""
    path, spy = adapt_run
    assert spy["pixels"] and all(split != "val" for _, split in spy["pixels"])
    assert sorted(n for n, _ in spy["scored"]) == sorted(2 * list(KS))  # 2 seeds
    for scores, _ in spy["picked"]:
        assert any(np.array_equal(scores, s) for _, s in spy["scored"])
    scores = pd.read_parquet(path / schema.SCORES)
    recal = scores[scores["adaptation"] == "recalibrate"]
    assert set(recal["split"]) == {"test"}  # no validation rows: none was used
    picked = sorted(image for _, (image, _) in spy["picked"])
    assert sorted(recal.groupby(["seed", "k"])["threshold"].first()) == picked


def test_adaptation_costs_and_forward_passes_saved(adapt_run):
    path, _ = adapt_run
    m = pd.read_parquet(path / schema.METRICS)
    m = m[(m["category"] == "brick") & (m["seed"] == 0)]
    value = m.set_index(["adaptation", "k", "metric"])["value"]
    splits = pd.read_csv(path / schema.SPLITS)
    n = splits[splits["seed"] == 0].groupby("split").size()
    assert value["refit", 0, "target_images"] == n["train"]
    assert value["refit", 0, "adapt_seconds"] == value["refit", 0, "fit_seconds"]
    for k in KS:
        assert value["bank-extend", k, "target_images"] == k
        assert value["bank-extend", k, "forward_passes_saved"] == n["val"] + n["test"]
        assert value["recalibrate", k, "forward_passes_saved"] == n["test"]
        assert value["bank-extend", k, "adapt_seconds"] > 0
    assert value["test-bn", 0, "target_images"] == n["test"]
    assert value["test-bn", 0, "forward_passes_saved"] == 0
    assert ("none", 0, "adapt_seconds") not in value.index


def test_adapted_models_are_saved_under_their_strategy_and_k(adapt_run):
    from shiftbench.inference.saved import load_fitted

    path, _ = adapt_run
    clean, _ = load_fitted(path, "brick", "patchcore", 0)
    model, meta = load_fitted(path, "brick", "patchcore", 0, fit="bank-extend-k4-shift-sev3")
    assert meta["adaptation"] == {"strategy": "bank-extend", "k": 4}
    patches = (64 // 8) ** 2  # a 64 px image has 8 x 8 patches at stride 8
    assert len(model.memory_bank_) == len(clean.memory_bank_) + 4 * patches
    scores = pd.read_parquet(path / schema.SCORES)
    row = scores[(scores["adaptation"] == "bank-extend") & (scores["k"] == 4)]
    assert meta["selected"]["image_threshold"] == row[row["seed"] == 0]["threshold"].iloc[0]


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"adapt": "bank-extnd"}, "did you mean 'bank-extend'"),
        ({"adapt": "bank-extend", "protocol": "shift-noadapt"}, "add shift-adapt to --protocol"),
        ({"adapt_k": "0"}, "at least 1"),
    ],
)
def test_bad_adapt_options_are_one_line_errors(tiny_synthetic, over, message):
    with pytest.raises(ShiftbenchError, match=message) as err:
        _config(tiny_synthetic, **over)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"adapt": "bank-extend", "models": "ae"}, "bank-extend: does not apply to model 'ae'"),
        ({"adapt": "bank-extend", "adapt_k": "1,99"}, "adapt_k 99: larger than the"),
    ],
)
def test_bad_adapt_study_fails_before_any_work(tiny_synthetic, tmp_path, over, message):
    config = _config(tiny_synthetic, model_options={"ae": {"epochs": 1}}, **over)
    with pytest.raises(ShiftbenchError, match=message) as err:
        StudyRunner(config, tmp_path / "x", progress=False, echo=lambda s: None)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "x").exists()


def test_default_adapt_is_the_old_study(tiny_synthetic):
    old = _config(tiny_synthetic)
    same = _config(tiny_synthetic, adapt="refit")
    assert same.adapt is None and same.hash == old.hash


def test_dry_run_lists_the_adapted_conditions(tiny_synthetic, tmp_path):
    config = _config(tiny_synthetic, adapt="bank-extend,bn-adapt", adapt_k="2")
    text = StudyRunner(config, tmp_path / "r", progress=False, echo=lambda s: None).describe()
    assert "shift-adapt+bank-extend-k2@sev3" in text and "shift-adapt+bn-adapt-k2@sev3" in text
    assert "__shift-sev3" not in text  # no refit unit when refit is not named


@pytest.mark.slow
def test_process_executor_and_resume_give_the_serial_numbers(tiny_synthetic, tmp_path):
    """Adapted conditions (and their target table) are the same run serially, in worker
    processes, and after a resume that re-runs the clean unit."""
    common = dict(adapt="bank-extend,recalibrate", adapt_k="2", cpus_per_unit=1)
    serial = _run(_config(tiny_synthetic, **common), tmp_path / "serial")
    process = _run(
        _config(tiny_synthetic, executor="process", jobs=2, **common), tmp_path / "process"
    )
    for name in (schema.SCORES, schema.ADAPT_TARGETS):
        pd.testing.assert_frame_equal(
            pd.read_parquet(serial / name), pd.read_parquet(process / name)
        )
    import shutil

    clean = next(p for p in (serial / "units").iterdir() if p.name.endswith("__clean"))
    shutil.rmtree(clean)
    before = pd.read_parquet(serial / schema.SCORES)
    StudyRunner(
        _config(tiny_synthetic, **common), serial, resume=True, progress=False, echo=lambda s: None
    ).run()
    pd.testing.assert_frame_equal(before, pd.read_parquet(serial / schema.SCORES))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["anomalib-padim", "anomalib-patchcore"])
def test_bank_extend_on_anomalib_models_equals_a_refit_on_clean_plus_the_k_images(name):
    """PaDiM: the pooled Gaussian is the Gaussian of the refit (float tolerance);
    anomalib PatchCore with an exact bank: the same bank, the same scores."""
    from shiftbench.adaptation import AdaptTarget, get_adaptation
    from shiftbench.models import create_model
    from shiftbench.testing.models import synthetic_images

    opts = {"coreset_ratio": 1.0} if name == "anomalib-patchcore" else {}
    train = synthetic_images(6, 32, 32, seed=0)
    target = synthetic_images(3, 32, 32, seed=2)
    test = synthetic_images(4, 32, 32, seed=1)

    def make():
        return create_model(name, weights="random", image_size=32, seed=0, **opts)

    extended = get_adaptation("bank-extend").adapt(make().fit(train), AdaptTarget(target))
    refit = make().fit(np.concatenate([train, target]))
    s_ext, m_ext = extended.score(test)
    s_ref, m_ref = refit.score(test)
    # PaDiM's clean covariance is recovered by inverting anomalib's fp32 inverse (with 6
    # images and 100 channels it is nearly singular but for the 0.01 I): agreement to fp32
    # precision times that condition number; PatchCore's bank is exact
    rtol = 1e-3 if name == "anomalib-padim" else 1e-5
    np.testing.assert_allclose(s_ext, s_ref, rtol=rtol)
    np.testing.assert_allclose(m_ext, m_ref, rtol=10 * rtol, atol=1e-3)


def test_a_study_file_names_strategies_and_units_pickle(tiny_synthetic, tmp_path):
    import pickle

    from shiftbench.protocols.plan import plan_units

    study = tmp_path / "study.yaml"
    study.write_text("protocol: all\nadapt: [refit, bank-extend]\nadapt_k: [16, 1]\n")
    config = load_config(study, {"root": str(tiny_synthetic), "dataset": "mvtec"})
    assert config.adapt == ["refit", "bank-extend"] and config.adapt_k == [1, 16]
    units = plan_units(config, ["brick"])
    assert pickle.loads(pickle.dumps(units)) == units  # process and Ray executors ship them
