"""Dataset loaders on small fixture trees, including the bad inputs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shiftbench.data import load_dataset, read_image, read_mask, write_image
from shiftbench.data.datasets import COLUMNS
from shiftbench.errors import ShiftbenchError


def _img(path: Path, size=(16, 16), value=128):
    write_image(path, np.full((*size, 3), value, np.uint8))


def _mask(path: Path, size=(16, 16)):
    m = np.zeros(size, np.uint8)
    m[4:8, 4:8] = 255
    write_image(path, m)


@pytest.fixture
def mvtec_tree(tmp_path):
    root = tmp_path / "mvtec"
    for cat in ("carpet", "zipper"):
        for i in range(5):
            _img(root / cat / "train" / "good" / f"{i:03d}.png")
        for i in range(2):
            _img(root / cat / "test" / "good" / f"{i:03d}.png")
        for defect in ("cut", "hole"):
            for i in range(2):
                _img(root / cat / "test" / defect / f"{i:03d}.png")
                _mask(root / cat / "ground_truth" / defect / f"{i:03d}_mask.png")
    return root


def test_mvtec_table_columns_labels_and_masks(mvtec_tree):
    table = load_dataset("mvtec", mvtec_tree)
    assert list(table.columns) == COLUMNS
    assert set(table["category"]) == {"carpet", "zipper"}
    carpet = table[table["category"] == "carpet"]
    assert (carpet["orig_split"] == "train").sum() == 5
    assert (carpet["label"] == 1).sum() == 4
    anomalous = carpet[carpet["label"] == 1]
    assert all(Path(p).name.endswith("_mask.png") for p in anomalous["mask_path"])
    assert carpet.loc[carpet["label"] == 0, "mask_path"].isna().all()
    assert table["sample_id"].is_unique
    assert "carpet/test/cut/001" in set(table["sample_id"])


def test_mvtec_category_filter_and_unknown_category(mvtec_tree):
    assert set(load_dataset("mvtec", mvtec_tree, ["zipper"])["category"]) == {"zipper"}
    with pytest.raises(
        ShiftbenchError, match=r"category 'leather' not found; available: carpet, zipper"
    ):
        load_dataset("mvtec", mvtec_tree, ["leather"])


def test_missing_root(tmp_path):
    with pytest.raises(ShiftbenchError, match="dataset root not found"):
        load_dataset("mvtec", tmp_path / "nowhere")


def test_anomalous_image_without_mask_names_the_file(mvtec_tree):
    (mvtec_tree / "carpet" / "ground_truth" / "cut" / "001_mask.png").unlink()
    with pytest.raises(
        ShiftbenchError, match=r"carpet/test/cut/001.png: anomalous image without a mask"
    ):
        load_dataset("mvtec", mvtec_tree)


def test_mask_size_mismatch_names_the_mask(mvtec_tree):
    _mask(mvtec_tree / "zipper" / "ground_truth" / "hole" / "000_mask.png", size=(8, 8))
    with pytest.raises(ShiftbenchError, match=r"000_mask.png: mask size 8x8 differs from image"):
        load_dataset("mvtec", mvtec_tree)


def test_unreadable_image_names_the_file(mvtec_tree):
    bad = mvtec_tree / "carpet" / "train" / "good" / "002.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ShiftbenchError, match=r"002.png: unreadable image"):
        load_dataset("mvtec", mvtec_tree)
    with pytest.raises(ShiftbenchError, match="unreadable image"):
        read_image(bad)


def test_empty_category(tmp_path):
    root = tmp_path / "ds"
    (root / "empty" / "train" / "good").mkdir(parents=True)
    (root / "empty" / "test" / "good").mkdir(parents=True)
    with pytest.raises(ShiftbenchError, match="no normal images"):
        load_dataset("mvtec", root)


def test_mvtec2_layout(tmp_path):
    base = tmp_path / "mvtec2" / "can"
    for i in range(4):
        _img(base / "train" / "good" / f"{i}.png")
    _img(base / "validation" / "good" / "v0.png")
    _img(base / "test_public" / "good" / "g0.png")
    for i in range(3):
        _img(base / "test_public" / "bad" / f"b{i}.png")
        _mask(base / "test_public" / "ground_truth" / "bad" / f"b{i}_mask.png")
    table = load_dataset("mvtec2", tmp_path / "mvtec2")
    assert table.groupby("orig_split").size().to_dict() == {"test": 4, "train": 4, "validation": 1}
    assert (table["defect_type"] == "bad").sum() == 3


def test_btad_layout(tmp_path):
    base = tmp_path / "btad" / "01"
    for i in range(3):
        _img(base / "train" / "ok" / f"{i:04d}.bmp")
        _img(base / "test" / "ok" / f"{i:04d}.bmp")
        _img(base / "test" / "ko" / f"{i:04d}.bmp")
        _mask(base / "ground_truth" / "ko" / f"{i:04d}.png")
    table = load_dataset("btad", tmp_path / "btad")
    assert len(table) == 9 and (table["label"] == 1).sum() == 3
    assert table["mask_path"].dropna().str.endswith(".png").all()


def test_visa_csv_layout(tmp_path):
    root = tmp_path / "visa"
    rows = []
    for i in range(3):
        _img(root / "candle" / "Data" / "Images" / "Normal" / f"{i}.JPG")
        rows.append(("candle", "train", "normal", f"candle/Data/Images/Normal/{i}.JPG", ""))
        _img(root / "candle" / "Data" / "Images" / "Anomaly" / f"{i}.JPG")
        _mask(root / "candle" / "Data" / "Masks" / "Anomaly" / f"{i}.png")
        rows.append(
            (
                "candle",
                "test",
                "anomaly",
                f"candle/Data/Images/Anomaly/{i}.JPG",
                f"candle/Data/Masks/Anomaly/{i}.png",
            )
        )
    (root / "split_csv").mkdir(parents=True)
    pd.DataFrame(rows, columns=["object", "split", "label", "image", "mask"]).to_csv(
        root / "split_csv" / "1cls.csv", index=False
    )
    table = load_dataset("visa", root)
    assert len(table) == 6 and (table["label"] == 1).sum() == 3
    assert table.loc[table["label"] == 1, "mask_path"].notna().all()


def test_folder_dataset_with_and_without_masks(tmp_path):
    root = tmp_path / "bottlecaps"
    for i in range(6):
        _img(root / "normal" / f"n{i}.png")
    for i in range(2):
        _img(root / "abnormal" / f"a{i}.png")
    no_masks = load_dataset("folder", root)
    assert set(no_masks["orig_split"]) == {"unsplit", "test"}
    assert no_masks["mask_path"].isna().all()
    (root / "mask").mkdir()
    _mask(root / "mask" / "a0.png")
    with pytest.raises(ShiftbenchError, match=r"a1.png: anomalous image without a mask"):
        load_dataset("folder", root)


def test_unknown_dataset_kind():
    with pytest.raises(ShiftbenchError, match="unknown dataset 'kitti'; choose one of"):
        load_dataset("kitti", "/tmp")


def test_read_mask_is_binary_and_resizes_nearest(tmp_path):
    m = np.zeros((20, 20), np.uint8)
    m[5:15, 5:15] = 1  # a 0/1 mask
    write_image(tmp_path / "m.png", m)
    out = read_mask(tmp_path / "m.png", size=10)
    assert out.shape == (10, 10) and set(np.unique(out)) == {0, 255}
    assert read_mask(None, size=7).sum() == 0


def test_cli_bad_root_is_one_line_and_nonzero(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "shiftbench.cli.main",
            "splits",
            "--dataset",
            "mvtec",
            "--root",
            str(tmp_path / "missing"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "missing" in lines[0]
