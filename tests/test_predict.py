"""Saved models in a run (results.models), the Predictor, `shiftbench predict`, and the
decompression-bomb check of the image readers."""

from __future__ import annotations

import json
import math
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from shiftbench.errors import ShiftbenchError


@pytest.fixture(scope="session")
def app_run(tiny_synthetic, tmp_path_factory):
    """One tiny finished run (64 px, random weights, brick, patchcore + ae) with saved
    models; shared by the predict, app API and browser tests."""
    from shiftbench.testing.runs import tiny_run

    return tiny_run(tmp_path_factory.getbasetemp() / "app_run", tiny_synthetic)


def bomb_png(path: Path, side: int = 20000) -> Path:
    """A valid grey 1-bit PNG of side x side px that is only a few KB on disk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    raw = (b"\x00" + b"\x00" * ((side + 7) // 8)) * side
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )
    return path


def _test_rows(run: Path) -> pd.DataFrame:
    splits = pd.read_csv(run / "splits.csv")
    return splits[(splits["split"] == "test") & (splits["seed"] == 0)]


# -- results.models ------------------------------------------------------------------------
def test_list_and_load_fitted(app_run):
    from shiftbench.inference.saved import load_fitted
    from shiftbench.models.base import AnomalyModel
    from shiftbench.results.models import list_fitted

    table = list_fitted(app_run)
    assert set(table["model"]) == {"patchcore", "ae"}
    assert set(table["fit"]) == {"clean"} and set(table["category"]) == {"brick"}
    assert (table["map_hi"] > table["map_lo"]).all()
    assert (table["file_bytes"] > 0).all() and (table["image_size"] == 64).all()
    # written by the runner (`shiftbench run --save-models`), sizes in the manifest
    manifest = json.loads((app_run / "manifest.json").read_text())
    assert set(manifest["saved_models"]) == set(table["unit"])
    metrics = pd.read_parquet(app_run / "metrics.parquet")
    for row in table.itertuples():
        sel = metrics[(metrics["model"] == row.model) & (metrics["metric"] == "image_threshold")]
        assert row.image_threshold == pytest.approx(sel["value"].iloc[0])
    model, meta = load_fitted(app_run, "brick", "ae")
    assert isinstance(model, AnomalyModel) and meta["selected"]["category"] == "brick"
    side = json.loads((app_run / "models" / f"{meta['unit']}.json").read_text())
    assert (
        side["format_version"] == 1
        and side["file_bytes"] == (app_run / "models" / f"{meta['unit']}.pt").stat().st_size
    )


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"category": "nope", "model": "ae"}, "saved categories: brick"),
        ({"category": "brick", "model": "nope"}, "saved models: ae, patchcore"),
        ({"category": "brick", "model": "ae", "seed": 7}, "saved seeds: 0"),
        ({"category": "brick", "model": "ae", "fit": "shift-sev3"}, "saved fits: clean"),
    ],
)
def test_load_fitted_unknown(app_run, kwargs, needle):
    from shiftbench.inference.saved import load_fitted

    with pytest.raises(ShiftbenchError, match=needle) as err:
        load_fitted(app_run, **kwargs)
    assert "\n" not in str(err.value)


def test_load_fitted_without_models(tmp_path, app_run):
    from shiftbench.inference.saved import load_fitted
    from shiftbench.results.models import list_fitted

    (tmp_path / "manifest.json").write_text("{}")
    assert list_fitted(tmp_path).empty
    with pytest.raises(ShiftbenchError, match="--save-models"):
        load_fitted(tmp_path, "brick", "ae")


def _copy_models(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src / "models", dst / "models")
    return dst


def test_load_fitted_damaged_and_newer(tmp_path, app_run):
    from shiftbench.inference.saved import load_fitted

    run = _copy_models(app_run, tmp_path)
    pt = next((run / "models").glob("*ae*.pt"))
    pt.write_bytes(pt.read_bytes()[:1000])
    with pytest.raises(ShiftbenchError, match="delete it and re-run") as err:
        load_fitted(run, "brick", "ae")
    assert str(pt) in str(err.value)
    side = pt.with_suffix(".json")
    meta = json.loads(side.read_text())
    meta["format_version"] = 99
    side.write_text(json.dumps(meta))
    with pytest.raises(ShiftbenchError, match="newer than this shiftbench"):
        load_fitted(run, "brick", "ae")
    side.write_text("{not json")
    with pytest.raises(ShiftbenchError, match="unreadable"):
        load_fitted(run, "brick", "patchcore")


def test_save_fitted_atomic_and_nan(tmp_path):
    from shiftbench.models import create_model
    from shiftbench.results.models import list_fitted, map_range, save_fitted

    rng = np.random.default_rng(0)
    model = create_model("ae", weights="random", image_size=32, seed=0, epochs=1)
    model.fit(rng.integers(0, 255, (4, 32, 32, 3), dtype=np.uint8))
    lo, hi = map_range(rng.random((2, 8, 8)))
    meta = {
        "unit": "x__ae__seed0__clean",
        "model": "ae",
        "seed": 0,
        "fit": "clean",
        "categories": {
            "x": {"image_threshold": 0.5, "pixel_threshold": float("nan"), "map_range": [lo, hi]}
        },
        "input": {"image_size": 32, "crop": None},
        "suite": None,
    }
    path = save_fitted(tmp_path, "x__ae__seed0__clean", model, meta)
    assert path.is_file() and not list((tmp_path / "models").glob(".*tmp"))
    side = json.loads(path.with_suffix(".json").read_text())
    assert side["categories"]["x"]["pixel_threshold"] is None
    assert math.isnan(list_fitted(tmp_path)["pixel_threshold"].iloc[0])
    with pytest.raises(ShiftbenchError):
        save_fitted(tmp_path, "../evil", model, meta)


# -- Predictor -------------------------------------------------------------------------------
def test_predict_matches_study_scores(app_run):
    """Prepared exactly like the study: the score of a test image is the run's score."""
    from shiftbench.inference import Predictor

    scores = pd.read_parquet(app_run / "scores.parquet")
    rows = _test_rows(app_run).head(3)
    for model in ("patchcore", "ae"):
        predictor = Predictor.from_run(app_run, "brick", model)
        for row in rows.itertuples():
            expected = scores[
                (scores["model"] == model)
                & (scores["protocol"] == "clean")
                & (scores["split"] == "test")
                & (scores["sample_id"] == row.sample_id)
            ]["score"].iloc[0]
            got = predictor.predict(row.image_path).score
            assert got == pytest.approx(expected, rel=1e-4, abs=1e-6), (model, row.sample_id)


def test_predict_fields_shift_and_mask(app_run):
    from shiftbench.inference import Predictor
    from shiftbench.transforms import shift

    predictor = Predictor.from_run(app_run, "brick", "patchcore", seed=0, fit="clean")
    row = _test_rows(app_run).dropna(subset=["mask_path"]).iloc[0]
    pred = predictor.predict(row.image_path, row.mask_path)
    assert pred.map.shape == (64, 64) and pred.image.shape == (64, 64, 3)
    assert pred.decision == int(pred.score >= pred.threshold)
    assert pred.mask is not None and pred.iou is not None and 0 <= pred.iou <= 1
    d = pred.to_dict()
    json.dumps(d)
    assert set(d) >= {"score", "threshold", "decision", "pixel_iou", "pixel_f1", "timing_ms"}
    # the shifted prediction is the prediction of the shifted image
    shifted = predictor.predict(
        row.image_path, perturb="gaussian_blur", severity=4, shift_seed=1, image_id=row.sample_id
    )
    manual = shift(
        predictor.prepare(row.image_path), "gaussian_blur", 4, seed=1, image_id=row.sample_id
    )
    assert np.array_equal(shifted.image, manual)
    assert shifted.perturbation["params"] and shifted.perturbation["severity"] == 4
    assert predictor.predict(manual, prepared=True).score == pytest.approx(shifted.score)
    with pytest.raises(ShiftbenchError, match="unknown perturbation"):
        predictor.predict(row.image_path, perturb="no_such_thing")


@pytest.mark.parametrize("kind", ["grey", "grey16", "rgba", "jpeg", "big"])
def test_predict_image_modes(app_run, tmp_path, kind):
    from shiftbench.inference import Predictor

    predictor = Predictor.from_run(app_run, "brick", "ae")
    rng = np.random.default_rng(1)
    if kind == "grey":
        img, name = Image.fromarray(rng.integers(0, 255, (50, 70), dtype=np.uint8)), "a.png"
    elif kind == "grey16":
        img, name = Image.fromarray(rng.integers(0, 65535, (40, 40), dtype=np.uint16)), "a.png"
    elif kind == "rgba":
        img, name = Image.fromarray(rng.integers(0, 255, (30, 90, 4), dtype=np.uint8)), "a.png"
    elif kind == "jpeg":
        img, name = Image.fromarray(rng.integers(0, 255, (80, 60, 3), dtype=np.uint8)), "a.jpg"
    else:
        img, name = Image.fromarray(rng.integers(0, 255, (300, 500, 3), dtype=np.uint8)), "a.png"
    path = tmp_path / name
    img.save(path)
    for source in (path, path.read_bytes(), np.asarray(img)):
        pred = predictor.predict(source)
        assert pred.image.shape == (64, 64, 3) and np.isfinite(pred.score)


def test_composite_png(app_run, tmp_path):
    from shiftbench.inference import Predictor

    predictor = Predictor.from_run(app_run, "brick", "patchcore")
    row = _test_rows(app_run).dropna(subset=["mask_path"]).iloc[0]
    pred = predictor.predict(row.image_path, row.mask_path, perturb="mvtec-shift", severity=2)
    fig = predictor.composite(pred)
    assert len([a for a in fig.axes if a.get_label() != "<colorbar>"]) == 4
    assert any("fixed scale" in a.get_ylabel() for a in fig.axes)
    out = predictor.composite(pred, tmp_path / "c.png")
    assert Image.open(tmp_path / "c.png").size[0] > 600
    assert "threshold" in out._suptitle.get_text()


# -- CLI ----------------------------------------------------------------------------------------
def test_predict_cli(app_run, tmp_path, capsys):
    from shiftbench.cli.main import main

    rows = _test_rows(app_run).dropna(subset=["mask_path"]).head(2)
    args = [
        "predict",
        str(app_run),
        *rows["image_path"],
        "--category",
        "brick",
        "--model",
        "patchcore",
        "--perturb",
        "gaussian_blur",
        "--severity",
        "2",
        "--shift-seed",
        "3",
        "--out",
        str(tmp_path / "out"),
    ]
    for m in rows["mask_path"]:
        args += ["--mask", m]
    main(args)
    out = tmp_path / "out"
    assert len(list(out.glob("*.png"))) == 2
    records = json.loads((out / "predictions.json").read_text())
    assert len(records) == 2 and all(r["pixel_iou"] is not None for r in records)
    assert all(r["perturbation"]["severity"] == 2 for r in records)
    table = pd.read_csv(out / "predictions.csv")
    assert list(table["decision"]) == [r["decision"] for r in records]
    assert {"score", "threshold", "pixel_iou", "pixel_f1", "ms_total"} <= set(table.columns)


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--model", "nope"], "saved models"),
        (["--model", "ae", "--mask", "a.png", "--mask", "b.png"], "--mask: 2 masks for 1 images"),
        (["--model", "ae", "--perturb", "nope"], "unknown perturbation"),
    ],
)
def test_predict_cli_errors(app_run, tmp_path, capsys, extra, needle):
    from shiftbench.cli.main import main

    image = _test_rows(app_run)["image_path"].iloc[0]
    with pytest.raises(SystemExit) as exit_:
        main(
            ["predict", str(app_run), image, "--category", "brick", *extra, "--out", str(tmp_path)]
        )
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


def test_predict_cli_bomb(app_run, tmp_path, capsys):
    from shiftbench.cli.main import main

    bomb = bomb_png(tmp_path / "bomb.png")
    assert bomb.stat().st_size < 500_000
    with pytest.raises(SystemExit):
        main(
            [
                "predict",
                str(app_run),
                str(bomb),
                "--category",
                "brick",
                "--model",
                "ae",
                "--out",
                str(tmp_path / "o"),
            ]
        )
    err = capsys.readouterr().err.strip()
    assert "bomb.png" in err and "20000x20000" in err and len(err.splitlines()) == 1


# -- the readers refuse decompression bombs -------------------------------------------------------
def test_read_image_refuses_bomb(tmp_path):
    from shiftbench.data import io
    from shiftbench.data.cache import read_batch

    bomb = bomb_png(tmp_path / "huge.png")
    for read in (io.read_image, io.read_mask, lambda p: read_batch([p], 32, cache=False)):
        with pytest.raises(ShiftbenchError, match="huge.png: image of 20000x20000 px") as err:
            read(bomb)
        assert "decompression bomb" in str(err.value)
    data = bomb.read_bytes()
    with pytest.raises(ShiftbenchError, match="upload: image of 20000x20000 px"):
        io.decode_image_bytes(data)
    small = tmp_path / "small.png"
    Image.new("RGB", (100, 100)).save(small)
    with pytest.raises(ShiftbenchError, match="over the limit of 5,000 pixels"):
        io.decode_image_bytes(small.read_bytes(), max_pixels=5000)


def test_run_refuses_bomb_in_dataset(tiny_synthetic, tmp_path, capsys):
    """`shiftbench run` on a dataset holding a decompression bomb: one error line naming
    the file, no traceback."""
    import shutil

    from shiftbench.cli.main import main

    root = tmp_path / "ds"
    shutil.copytree(Path(tiny_synthetic) / "brick", root / "brick")
    victim = sorted((root / "brick" / "train" / "good").glob("*.png"))[0]
    bomb_png(victim)
    with pytest.raises(SystemExit) as exit_:
        main(
            [
                "run",
                "--dataset",
                "mvtec",
                "--root",
                str(root),
                "--categories",
                "brick",
                "--models",
                "ae",
                "--weights",
                "random",
                "--image-size",
                "32",
                "--protocol",
                "clean",
                "--no-image-cache",
                "--no-progress",
                "--out",
                str(tmp_path / "run"),
            ]
        )
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and str(victim) in err and "20000x20000" in err
    assert "Traceback" not in err and len(err.splitlines()) == 1


# -- small images, --device ---------------------------------------------------------------------
def test_small_image_warns(app_run, tmp_path, capsys):
    """A 1x1 PNG is scored (upscaled to the model's input), with a warning naming both sizes;
    an image with both sides at least half the input is not."""
    from shiftbench.cli.main import main
    from shiftbench.inference import Predictor

    predictor = Predictor.from_run(app_run, "brick", "ae")
    dot = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), (90, 60, 40)).save(dot)
    for source in (dot, dot.read_bytes(), Image.open(dot), np.zeros((1, 1, 3), np.uint8)):
        (warning,) = predictor.predict(source).warnings
        assert "1x1 px" in warning and "64x64 px" in warning
    assert predictor.predict(np.zeros((20, 90, 3), np.uint8)).warnings  # one side too small
    assert predictor.predict(np.zeros((32, 40, 3), np.uint8)).warnings == []
    assert predictor.predict(np.zeros((1, 1, 3), np.uint8), prepared=False).to_dict()["warnings"]
    main(["predict", str(app_run), str(dot), "--category", "brick", "--model", "ae",
          "--out", str(tmp_path / "o"), "--device", "cpu"])  # fmt: skip
    err = capsys.readouterr().err
    assert "warning: dot.png: the image is 1x1 px" in err and "64x64 px" in err
    (record,) = json.loads((tmp_path / "o" / "predictions.json").read_text())
    assert record["warnings"] and record["device"] == "cpu"


@pytest.mark.parametrize(
    ("device", "needle"),
    [
        ("gpu", "--device 'gpu': unknown device; use auto, cpu, cuda, cuda:N or mps"),
        ("cuda:x", "--device 'cuda:x': unknown device"),
    ],
)
def test_predict_cli_bad_device(app_run, tmp_path, capsys, device, needle):
    from shiftbench.cli.main import main

    image = _test_rows(app_run)["image_path"].iloc[0]
    with pytest.raises(SystemExit) as exit_:
        main(["predict", str(app_run), image, "--category", "brick", "--model", "ae",
              "--out", str(tmp_path), "--device", device])  # fmt: skip
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


def test_predict_cli_device_cuda(app_run, tmp_path, capsys):
    """``--device cuda``: the scores of the CPU within float tolerance on a GPU; without
    one, a one-line error naming --device and the fix."""
    import torch

    from shiftbench.cli.main import main

    image = _test_rows(app_run)["image_path"].iloc[0]
    args = ["predict", str(app_run), image, "--category", "brick", "--model", "patchcore"]
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit):
            main([*args, "--out", str(tmp_path / "g"), "--device", "cuda"])
        err = capsys.readouterr().err.strip()
        assert "--device 'cuda': torch sees no CUDA GPU" in err and "--device cpu" in err
        return
    main([*args, "--out", str(tmp_path / "c"), "--device", "cpu"])
    main([*args, "--out", str(tmp_path / "g"), "--device", "cuda"])
    (cpu,) = json.loads((tmp_path / "c" / "predictions.json").read_text())
    (gpu,) = json.loads((tmp_path / "g" / "predictions.json").read_text())
    assert cpu["device"] == "cpu" and gpu["device"] == "cuda:0"
    assert gpu["score"] == pytest.approx(cpu["score"], rel=1e-3)
