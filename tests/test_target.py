"""A real target domain (--target-root) end to end on the synthetic data, and its bad input.

The target is the synthetic dataset "re-photographed": every image of a copy goes through a
gamma, a colour cast and a slight blur that no suite of the study knows about (masks
unchanged), as if the parts had been photographed again under a new lamp."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shiftbench.errors import ShiftbenchError
from shiftbench.protocols import load_config
from shiftbench.protocols.plan import CLEAN, Domain, plan_units
from shiftbench.protocols.runner import StudyRunner
from shiftbench.results import schema

CATS = ["brick", "washer"]
FAST = {"patchcore": {"coreset_ratio": 0.1}}
SUITE = "name: two\neach: true\nseverity: 3\nperturbations:\n  - cc_brightness\n"


def rephotograph(src: Path, dst: Path, categories=CATS) -> Path:
    """Copy ``categories`` of a dataset and re-photograph every image (not the masks)."""
    from PIL import Image, ImageFilter

    for cat in categories:
        shutil.copytree(src / cat, dst / cat)
    for path in sorted(dst.rglob("*.png")):
        if "ground_truth" in path.parts:
            continue
        x = np.asarray(Image.open(path).convert("RGB")).astype(np.float64) / 255.0
        x = x**0.7 * np.array([1.0, 0.92, 0.8])  # gamma, then a warm colour cast
        im = Image.fromarray(np.round(255 * np.clip(x, 0, 1)).astype(np.uint8))
        im.filter(ImageFilter.GaussianBlur(0.6)).save(path)
    return dst


def _config(source, **over):
    base = dict(
        dataset="mvtec", root=str(source), categories=",".join(CATS), models="patchcore",
        weights="random", image_size=64, protocol="all", seeds="0", workers=1,
        model_options=FAST,
    )  # fmt: skip
    base.update(over)
    return load_config(None, base)


def _runner(cfg, tmp_path):
    return StudyRunner(cfg, tmp_path / "run", progress=False, echo=lambda s: None)


@pytest.fixture(scope="module")
def lamp2(tiny_synthetic, tmp_path_factory):
    return rephotograph(Path(tiny_synthetic), tmp_path_factory.mktemp("target") / "lamp2")


@pytest.fixture(scope="module")
def study(tiny_synthetic, lamp2, tmp_path_factory):
    """--protocol all with the target and a one-member synthetic suite; counts the fits."""
    from shiftbench.models.base import AnomalyModel

    tmp = tmp_path_factory.mktemp("study")
    suite = tmp / "two.yaml"
    suite.write_text(SUITE)
    fits, original = [], AnomalyModel.fit

    def counting_fit(self, images):
        fits.append(np.asarray(images).copy())
        return original(self, images)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(AnomalyModel, "fit", counting_fit)
        cfg = _config(tiny_synthetic, suite=str(suite), target_root=str(lamp2))
        path = _runner(cfg, tmp).run().path
    return path, fits


def test_target_rows_beside_the_synthetic_ones(study):
    path, _ = study
    scores = pd.read_parquet(path / schema.SCORES)
    metrics = pd.read_parquet(path / schema.METRICS)
    for table in (scores, metrics):
        got = set(map(tuple, table[["protocol", "shift"]].dropna().drop_duplicates().values))
        assert got == {(p, s) for p in ("shift-noadapt", "shift-adapt")
                       for s in ("target:lamp2", "cc_brightness")}  # fmt: skip
    target = metrics[metrics["shift"] == "target:lamp2"]
    assert target["severity"].isna().all()  # a real shift has no level
    assert {"image_auroc", "pixel_aupro"} <= set(target["metric"])


def test_one_clean_fit_serves_clean_synthetic_and_target(study):
    path, fits = study
    units = sorted(p.name for p in (path / schema.UNITS).iterdir())
    assert units == sorted(
        f"{c}__patchcore__seed0__{f}"
        for c in CATS for f in ("clean", "shift-cc_brightness-sev3", "shift-target-lamp2")
    )  # fmt: skip
    assert len(fits) == 6
    scores = pd.read_parquet(path / schema.SCORES)
    test = scores[scores["split"] == "test"]
    for cat in CATS:
        c = test[test["category"] == cat]
        # the clean fit's validation threshold is frozen for every no-adapt condition
        clean_thr = c[c["protocol"] == "clean"]["threshold"].unique()
        assert len(clean_thr) == 1
        noadapt = c[c["protocol"] == "shift-noadapt"]
        assert set(noadapt["threshold"]) == set(clean_thr)


def test_target_test_images_are_the_target_split(study, lamp2):
    path, fits = study
    splits = pd.read_csv(path / schema.SPLITS)
    assert list(splits.columns) == [*schema.SPLIT_COLUMNS, schema.DOMAIN_COLUMN]
    tgt = splits[splits[schema.DOMAIN_COLUMN] == "target:lamp2"]
    src = splits[splits[schema.DOMAIN_COLUMN] == schema.SOURCE_DOMAIN]
    assert tgt["image_path"].str.startswith(str(lamp2)).all()
    assert not src["image_path"].str.startswith(str(lamp2)).any()
    scores = pd.read_parquet(path / schema.SCORES)
    for cat in CATS:
        t = tgt[tgt["category"] == cat]
        ids = {s: set(t[t["split"] == s]["sample_id"]) for s in ("train", "val", "test")}
        assert not (
            ids["train"] & ids["val"] or ids["train"] & ids["test"] or ids["val"] & ids["test"]
        )
        rows = scores[(scores["category"] == cat) & (scores["shift"] == "target:lamp2")]
        for protocol in ("shift-noadapt", "shift-adapt"):
            r = rows[(rows["protocol"] == protocol) & (rows["split"] == "test")]
            assert sorted(r["sample_id"]) == sorted(ids["test"])
        val = rows[(rows["protocol"] == "shift-adapt") & (rows["split"] == "val")]
        assert sorted(val["sample_id"]) == sorted(ids["val"])  # thresholds on the target
    # the target's adapt fits (third of each category's units) saw its own training split
    n_train = tgt[tgt["split"] == "train"].groupby("category").size()
    assert [len(f) for f in fits[2::3]] == [n_train[c] for c in CATS]
    n_clean = src[src["split"] == "train"].groupby("category").size()
    assert [len(f) for f in fits[0::3]] == [n_clean[c] for c in CATS]
    assert not np.array_equal(fits[0], fits[2])  # same ids, re-photographed pixels


def test_target_images_were_read_from_the_target(study):
    """Same sample ids (a re-photographed part keeps its name), other pixels: the clean
    fit scores the target's test images differently from the clean ones."""
    path, _ = study
    s = pd.read_parquet(path / schema.SCORES)
    s = s[(s["split"] == "test") & (s["protocol"].isin(["clean", "shift-noadapt"]))]
    clean = s[s["protocol"] == "clean"].set_index(["category", "sample_id"])["score"]
    target = s[s["shift"] == "target:lamp2"].set_index(["category", "sample_id"])["score"]
    common = clean.index.intersection(target.index)
    assert len(common) == len(target) > 0
    assert not np.allclose(clean.loc[common].to_numpy(), target.loc[common].to_numpy())


def test_manifest_counts_the_target(study, lamp2):
    path, _ = study
    manifest = json.loads((path / schema.MANIFEST).read_text())
    rec = manifest["target"]
    assert set(rec) == set(schema.TARGET_KEYS)
    assert rec["shift"] == "target:lamp2" and rec["root"] == str(lamp2) and rec["has_train"]
    splits = pd.read_csv(path / schema.SPLITS)
    tgt = splits[splits[schema.DOMAIN_COLUMN] == "target:lamp2"]
    want = tgt.groupby(["split", "label"]).size()
    got = {(s, int(k)): n for s, d in rec["counts"]["0"].items() for k, n in d.items()}
    assert got == {(s, int(k)): int(n) for (s, k), n in want.items()}


def test_report_has_the_syn2real_table(study, tmp_path):
    from shiftbench.analysis.report.build import build_report

    path, _ = study
    rep = build_report(path, "latex,markdown", n_resamples=200, figures=["syn2real"], out=tmp_path)
    table = pd.read_csv(tmp_path / schema.TABLES / "syn2real.csv")
    assert list(table[["target", "shift"]].itertuples(index=False, name=None)) == [
        ("target:lamp2", "cc_brightness")
    ]
    assert table["n_points"].tolist() == [2]
    assert (tmp_path / schema.TABLES / "syn2real.tex").is_file()
    md = (tmp_path / schema.TABLES / "syn2real.md").read_text()
    assert "Caution: 2 points, too few" in md.splitlines()[0]  # the caption
    assert "Too few to mean much: only 2" in md
    assert (tmp_path / schema.FIGURES / "syn2real.png").is_file()
    assert any(w.startswith("syn2real: Too few") for w in rep.warnings)
    robust = pd.read_csv(tmp_path / schema.TABLES / "robustness.csv")
    assert len(robust) == 1  # the target is not averaged into the synthetic summary
    # the target's own table: its AUROCs as metrics.parquet holds them
    t = pd.read_csv(tmp_path / schema.TABLES / "target_lamp2.csv").set_index("category")
    m = pd.read_parquet(path / schema.METRICS)
    m = m[m["metric"] == "image_auroc"]
    for cat in [*CATS, schema.MEAN_CATEGORY]:
        c = m[m["category"] == cat]
        on = c[c["shift"] == "target:lamp2"].set_index("protocol")["value"]
        assert t.loc[cat, "clean"] == pytest.approx(c[c["protocol"] == "clean"]["value"].item())
        assert t.loc[cat, "shift-noadapt"] == pytest.approx(on["shift-noadapt"])
        assert t.loc[cat, "d_adapt_noadapt"] == pytest.approx(
            on["shift-adapt"] - on["shift-noadapt"]
        )
    assert "(1 shifts pooled)" in (tmp_path / schema.TABLES / "image_auroc.md").read_text()


# -- planning and splits without fitting ------------------------------------------------
def test_plan_shares_the_clean_fit_with_the_target():
    cfg = load_config(None, {"suite": "each:adshift", "protocol": "all"})
    units = plan_units(cfg, ["a"], ["m1"], ["target:x"])
    clean = [u for u in units if u.fit_domain == CLEAN]
    assert len(clean) == 1
    labels = [c.label for c in clean[0].conditions]
    assert labels == ["clean", "shift-noadapt@m1@sev3", "shift-noadapt@target:x"]
    target = [u for u in units if u.fit_domain.is_target]
    assert [u.key for u in target] == ["a__patchcore__seed0__shift-target-x"]
    assert (
        Domain(None, "target:x").is_clean is False and str(Domain(None, "target:x")) == "target:x"
    )
    assert not plan_units(cfg, ["a"], [], ["target:x"])[0].conditions[1].severity  # target alone


def test_without_a_target_nothing_changes(tiny_synthetic, tmp_path):
    from shiftbench.results import RunDir

    cfg = _config(tiny_synthetic)
    assert "target_root" not in cfg.hash_payload()  # old studies keep their hash and folder
    runner = _runner(cfg, tmp_path)
    assert schema.DOMAIN_COLUMN not in runner.splits.columns
    path = RunDir.create(tmp_path / "splits").write_splits(runner.splits)
    want = runner.splits[list(schema.SPLIT_COLUMNS)].to_csv(index=False)
    assert path.read_text() == want


def test_target_without_training_images_runs_noadapt_only(tiny_synthetic, lamp2, tmp_path):
    noisy = tmp_path / "testonly"
    shutil.copytree(lamp2, noisy)
    for cat in CATS:
        shutil.rmtree(noisy / cat / "train")
    with pytest.raises(ShiftbenchError, match="shift-adapt cannot fit on the target") as err:
        _runner(_config(tiny_synthetic, target_root=str(noisy)), tmp_path)
    assert "\n" not in str(err.value) and err.value.param == "target_root"
    runner = _runner(
        _config(tiny_synthetic, target_root=str(noisy), protocol="shift-noadapt"), tmp_path
    )
    tgt = runner.splits[runner.splits[schema.DOMAIN_COLUMN] == "target:testonly"]
    assert set(tgt["split"]) == {"test"} and len(tgt) > 0
    assert not any(u.fit_domain.is_target for u in runner.units)
    assert any(c.shift == "target:testonly" for u in runner.units for c in u.conditions)


def test_target_splits_are_seeded_like_the_source(tiny_synthetic, lamp2, tmp_path):
    from shiftbench.data import load_dataset, make_splits

    cfg = _config(tiny_synthetic, target_root=str(lamp2), seeds="0,1", suite="none")
    runner = _runner(cfg, tmp_path)
    table = load_dataset("mvtec", lamp2, CATS)
    for seed in (0, 1):
        got = runner.splits[(runner.splits["seed"] == seed)
                            & (runner.splits[schema.DOMAIN_COLUMN] == "target:lamp2")]  # fmt: skip
        want = make_splits(table, seed)
        assert dict(zip(got["sample_id"], got["split"], strict=True)) == dict(
            zip(want["sample_id"], want["split"], strict=True)
        )
    assert {c.shift for u in runner.units for c in u.conditions} == {None, "target:lamp2"}


# -- bad input: one line each ---------------------------------------------------------------
def _error(cfg, tmp_path) -> str:
    with pytest.raises(ShiftbenchError) as err:
        _runner(cfg, tmp_path)
    text = str(err.value)
    assert "\n" not in text
    return text


def test_target_without_test_images(tiny_synthetic, lamp2, tmp_path):
    bad = tmp_path / "notest"
    shutil.copytree(lamp2, bad)
    shutil.rmtree(bad / "washer" / "test")
    text = _error(_config(tiny_synthetic, target_root=str(bad)), tmp_path)
    assert text.startswith("target_root") and "test" in text and "washer" in text


def test_target_category_missing_from_the_source(tiny_synthetic, lamp2, tmp_path):
    bad = tmp_path / "extra"
    shutil.copytree(lamp2, bad)
    shutil.copytree(bad / "brick", bad / "gizmo")
    cfg = _config(tiny_synthetic, target_root=str(bad), categories=None)
    text = _error(cfg, tmp_path)
    assert "'gizmo' is not a category of the source" in text


def test_target_lacking_a_study_category(tiny_synthetic, lamp2, tmp_path):
    cfg = _config(tiny_synthetic, target_root=str(lamp2), categories="brick,grass")
    assert "has no category 'grass'" in _error(cfg, tmp_path)


def test_target_image_of_another_size_than_its_mask(tiny_synthetic, lamp2, tmp_path):
    from PIL import Image

    bad = tmp_path / "sizes"
    shutil.copytree(lamp2, bad)
    image = sorted((bad / "brick" / "test").glob("[!g]*/*.png"))[0]
    Image.open(image).resize((48, 48)).save(image)
    text = _error(_config(tiny_synthetic, target_root=str(bad)), tmp_path)
    assert text.startswith("target_root") and str(image) in text and "mask size" in text


def test_target_root_is_the_source_root(tiny_synthetic, tmp_path):
    text = _error(_config(tiny_synthetic, target_root=str(tiny_synthetic)), tmp_path)
    assert "is the source dataset's root" in text


def test_target_options_need_a_target_root():
    with pytest.raises(ShiftbenchError, match="target_name 'x': only used with --target-root"):
        load_config(None, {"target_name": "x"})
    with pytest.raises(ShiftbenchError, match="suite none: no shift to run"):
        load_config(None, {"suite": "none"})


def test_cli_names_the_flag(tiny_synthetic, capsys):
    from shiftbench.cli.main import main

    argv = ["run", "--dataset", "mvtec", "--root", str(tiny_synthetic), "--weights", "random",
            "--target-root", str(tiny_synthetic), "--dry-run"]  # fmt: skip
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.startswith("error: --target-root ") and "is the source dataset's root" in err


def test_load_run_keeps_the_target_rows_apart(study):
    """Readers of ``run.splits`` (per-defect tables, qualitative grids, the app) look
    images up by sample id: they see the source's rows only, as before."""
    from shiftbench.results import load_run

    path, _ = study
    run = load_run(path)
    assert schema.DOMAIN_COLUMN not in run.splits.columns
    assert not run.splits.duplicated(["seed", "sample_id"]).any()
    assert set(run.target_splits[schema.DOMAIN_COLUMN]) == {"target:lamp2"}
    assert len(run.splits) + len(run.target_splits) == len(pd.read_csv(path / schema.SPLITS))


def test_target_in_another_layout(tiny_synthetic, lamp2, tmp_path):
    """--target-dataset: an MVTec-layout source with a target laid out as MVTec AD 2."""
    ad2 = tmp_path / "ad2"
    n_bad = {}
    for cat in CATS:
        base, out = lamp2 / cat, ad2 / cat
        shutil.copytree(base / "train" / "good", out / "train" / "good")
        shutil.copytree(base / "test" / "good", out / "test_public" / "good")
        (out / "test_public" / "bad").mkdir(parents=True)
        (out / "test_public" / "ground_truth" / "bad").mkdir(parents=True)
        bad = sorted(p for p in (base / "test").glob("*/*.png") if p.parent.name != "good")
        for i, image in enumerate(bad):
            shutil.copy(image, out / "test_public" / "bad" / f"{i:03d}.png")
            mask = base / "ground_truth" / image.parent.name / f"{image.stem}_mask.png"
            shutil.copy(mask, out / "test_public" / "ground_truth" / "bad" / f"{i:03d}_mask.png")
        n_bad[cat] = len(bad)
    cfg = _config(tiny_synthetic, target_root=str(ad2), target_dataset="mvtec2")
    runner = _runner(cfg, tmp_path)
    tgt = runner.splits[runner.splits[schema.DOMAIN_COLUMN] == "target:ad2"]
    for cat in CATS:
        t = tgt[tgt["category"] == cat]
        assert (t["label"] == 1).sum() == n_bad[cat]
        assert set(t[t["label"] == 1]["defect_type"]) == {"bad"}
        assert set(t["split"]) == {"train", "val", "test"}
    assert sum(u.fit_domain.is_target for u in runner.units) == len(CATS)
    with pytest.raises(ShiftbenchError, match="target_dataset 'mvtec2': only used with"):
        load_config(None, {"target_dataset": "mvtec2"})


@pytest.mark.slow
def test_process_executor_matches_serial_on_a_target(tiny_synthetic, lamp2, tmp_path):
    """Workers read the target's rows from the split table they are sent: their scores are
    the serial runner's, bit for bit (one torch thread per fit on both sides)."""
    over = dict(categories="brick", suite="none", protocol="all", cpus_per_unit=1,
                target_root=str(lamp2))  # fmt: skip
    serial = _runner(_config(tiny_synthetic, **over), tmp_path / "s").run().path
    cfg = _config(tiny_synthetic, executor="process", jobs=2, **over)
    process = _runner(cfg, tmp_path / "p").run().path
    key = ["category", "model", "seed", "protocol", "shift", "split", "sample_id"]
    a = pd.read_parquet(serial / schema.SCORES).sort_values(key).reset_index(drop=True)
    b = pd.read_parquet(process / schema.SCORES).sort_values(key).reset_index(drop=True)
    assert (a["shift"] == "target:lamp2").sum() > 0
    pd.testing.assert_frame_equal(a, b)


def test_adaptation_strategies_on_a_real_target(tiny_synthetic, lamp2, tmp_path):
    """--adapt with a real target: every (strategy, k) is a condition of the clean fit on
    the target, k normals drawn from the target's training split, and every row keeps its
    columns (a target study is per-shift: the clean rows too have a ``shift`` column). The
    target has fewer images than the source, so its rows cannot pass for the source's."""
    target = tmp_path / "lamp2"
    shutil.copytree(lamp2, target)
    for cat in CATS:  # drop a normal training image and a normal test image
        for split in ("train", "test"):
            sorted((target / cat / split / "good").iterdir())[0].unlink()
    cfg = _config(tiny_synthetic, suite="none", target_root=str(target),
                  protocol="shift-noadapt,shift-adapt", adapt="refit,bank-extend",
                  adapt_k="1")  # fmt: skip
    result = _runner(cfg, tmp_path).run()
    m = pd.read_parquet(result.path / "metrics.parquet")
    assert m["adaptation"].map(type).eq(str).all() and m["metric"].map(type).eq(str).all()
    auroc = m[(m["metric"] == "image_auroc") & (m["category"] != "mean")]
    assert auroc["value"].notna().all()
    cols = [auroc["protocol"], auroc["shift"].fillna(""), auroc["adaptation"], auroc["k"]]
    got = set(zip(*cols, strict=True))
    shift = "target:lamp2"
    assert got == {("clean", "", "none", 0), ("shift-noadapt", shift, "none", 0),
                   ("shift-adapt", shift, "refit", 0), ("shift-adapt", shift, "bank-extend", 1)}  # fmt: skip
    targets = pd.read_parquet(result.path / "adaptation_targets.parquet")
    splits = pd.read_csv(result.path / "splits.csv")
    mine = splits[splits["domain"] == shift]
    train = mine[mine["split"] == "train"]
    assert set(targets["sample_id"]) <= set(train["sample_id"])
    # the adapted rows are the target's own test images, with their labels
    s = pd.read_parquet(result.path / "scores.parquet")
    for cat in CATS:
        test = mine[(mine["split"] == "test") & (mine["category"] == cat)]
        want = dict(zip(test["sample_id"], test["label"], strict=True))
        got = s[
            (s["adaptation"] == "bank-extend") & (s["split"] == "test") & (s["category"] == cat)
        ]
        assert dict(zip(got["sample_id"], got["label"], strict=True)) == want
