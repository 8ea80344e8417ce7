"""The loaders added for LOCO, MPDD, KolektorSDD2, Real-IAD and Magnetic Tile Defect, each
on a generated miniature of its official layout (tiny images, the official categories,
splits and defect types, counts scaled down): the loader's counts per split and defect
type must equal what was written."""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from shiftbench.data import load_dataset, read_mask
from shiftbench.data.loaders.ksdd2 import KSDD2_COUNTS
from shiftbench.data.loaders.loco import LOCO_COUNTS
from shiftbench.data.loaders.mpdd import MPDD_COUNTS
from shiftbench.data.loaders.mtd import MTD_COUNTS
from shiftbench.data.loaders.realiad import REALIAD_CATEGORIES, REALIAD_COUNTS, VIEWS
from shiftbench.errors import ShiftbenchError


def _png(path: Path, size=(12, 16), value=128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), value, np.uint8)).save(path)
    return path


def _jpg(path: Path, size=(12, 16), grey=False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(str(path)))
    shape = size if grey else (*size, 3)
    Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(path, quality=90)
    return path


def _mask(path: Path, size=(12, 16), value=255, box=(2, 6, 3, 8)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    m = np.zeros(size, np.uint8)
    m[box[0] : box[1], box[2] : box[3]] = value
    Image.fromarray(m).save(path)
    return path


def _mini(n: int, scale: int = 40) -> int:
    return max(1, n // scale)


def _counts(table) -> dict[tuple, int]:
    return dict(
        Counter(zip(table["category"], table["orig_split"], table["defect_type"], strict=True))
    )


# --------------------------------------------------------------------------- MVTec LOCO AD


@pytest.fixture
def loco_tree(tmp_path):
    root = tmp_path / "mvtec_loco_anomaly_detection"
    written = {}
    for cat, counts in LOCO_COUNTS.items():
        for split in ("train", "validation"):
            for i in range(_mini(counts[split])):
                _png(root / cat / split / "good" / f"{i:03d}.png")
            written[(cat, split, "good")] = _mini(counts[split])
        for kind in ("good", "logical_anomalies", "structural_anomalies"):
            n = _mini(counts[kind])
            written[(cat, "test", kind)] = n
            for i in range(n):
                _png(root / cat / "test" / kind / f"{i:03d}.png")
                if kind != "good":  # image 000 has two masks, the others one
                    gt = root / cat / "ground_truth" / kind / f"{i:03d}"
                    _mask(gt / "000.png", value=255, box=(1, 3, 1, 3))
                    if i == 0:
                        _mask(gt / "001.png", value=241, box=(6, 9, 6, 9))
    return root, written


def test_loco_counts_types_and_official_totals(loco_tree, tmp_path, monkeypatch):
    monkeypatch.setenv("SHIFTBENCH_CACHE", str(tmp_path / "cache"))
    root, written = loco_tree
    table = load_dataset("loco", root)
    assert _counts(table) == written
    assert sorted(table["category"].unique()) == sorted(LOCO_COUNTS)
    anomalous = table[table["label"] == 1]
    assert set(anomalous["defect_type"]) == {"logical_anomalies", "structural_anomalies"}
    assert anomalous["mask_path"].notna().all()
    totals = Counter()
    for counts in LOCO_COUNTS.values():
        totals.update(counts)
    assert (totals["train"], totals["validation"]) == (1772, 304)
    assert totals["good"] + totals["logical_anomalies"] + totals["structural_anomalies"] == 1568


def test_loco_merges_several_masks_into_one_cached_file(loco_tree, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("SHIFTBENCH_CACHE", str(cache))
    root, _ = loco_tree
    table = load_dataset("loco", root, ["pushpins"]).set_index("sample_id")
    single = table.loc["pushpins/test/logical_anomalies/001", "mask_path"]
    assert single == str(root / "pushpins/ground_truth/logical_anomalies/001/000.png")
    merged = Path(table.loc["pushpins/test/logical_anomalies/000", "mask_path"])
    assert cache in merged.parents and merged.parts[-4:] == (
        "ground_truth",
        "logical_anomalies",
        "000",
        "000.png",
    )
    m = np.asarray(Image.open(merged))
    expected = np.zeros((12, 16), np.uint8)
    expected[1:3, 1:3] = expected[6:9, 6:9] = 255  # both regions, the 241-valued one too
    np.testing.assert_array_equal(m, expected)
    np.testing.assert_array_equal(read_mask(merged), expected)
    # the same files give the same cached mask; an edited source gives a new one
    again = load_dataset("loco", root, ["pushpins"]).set_index("sample_id")
    assert again.loc["pushpins/test/logical_anomalies/000", "mask_path"] == str(merged)
    src = root / "pushpins/ground_truth/logical_anomalies/000/001.png"
    _mask(src, value=200, box=(8, 11, 12, 15))
    os.utime(src, ns=(1, 1))
    edited = load_dataset("loco", root, ["pushpins"]).set_index("sample_id")
    new = Path(edited.loc["pushpins/test/logical_anomalies/000", "mask_path"])
    assert new != merged and np.asarray(Image.open(new))[9, 13] == 255


def test_loco_mask_errors_name_the_files(loco_tree, tmp_path, monkeypatch):
    monkeypatch.setenv("SHIFTBENCH_CACHE", str(tmp_path / "cache"))
    root, _ = loco_tree
    gt = root / "screw_bag" / "ground_truth" / "structural_anomalies" / "000"
    _mask(gt / "001.png", size=(10, 10))
    with pytest.raises(
        ShiftbenchError, match=r"000/001.png: mask size 10x10 differs from .*000/000.png"
    ):
        load_dataset("loco", root, ["screw_bag"])
    for f in gt.iterdir():
        f.unlink()
    with pytest.raises(
        ShiftbenchError,
        match=r"structural_anomalies/000.png: anomalous image without a mask; expected .*000/000.png",
    ):
        load_dataset("loco", root, ["screw_bag"])


# --------------------------------------------------------------------------- MPDD


@pytest.fixture
def mpdd_tree(tmp_path):
    root = tmp_path / "MPDD"
    written = {}
    for cat, counts in MPDD_COUNTS.items():
        for split, n in (("train", counts["train"]), ("test", counts["good"])):
            k = max(5, n // 40)  # >= 1 for Val-clean
            for i in range(k):
                _png(root / cat / split / "good" / f"{i:03d}.png")
            written[(cat, split, "good")] = k
        for defect in counts["defects"]:
            n = max(2, counts["anomalous"] // len(counts["defects"]) // 40)  # >= 1 for Val-clean
            for i in range(n):
                _png(root / cat / "test" / defect / f"{i:03d}.png")
                _mask(root / cat / "ground_truth" / defect / f"{i:03d}_mask.png")
            written[(cat, "test", defect)] = n
    return root, written


def test_mpdd_six_categories_and_counts(mpdd_tree):
    root, written = mpdd_tree
    table = load_dataset("mpdd", root)
    assert sorted(table["category"].unique()) == [
        "bracket_black",
        "bracket_brown",
        "bracket_white",
        "connector",
        "metal_plate",
        "tubes",
    ]
    assert _counts(table) == written
    for cat, counts in MPDD_COUNTS.items():
        defects = table.loc[(table["category"] == cat) & (table["label"] == 1), "defect_type"]
        assert set(defects) == set(counts["defects"])
    assert sum(c["train"] for c in MPDD_COUNTS.values()) == 888
    assert sum(c["good"] for c in MPDD_COUNTS.values()) == 176
    assert sum(c["anomalous"] for c in MPDD_COUNTS.values()) == 282


# --------------------------------------------------------------------------- KolektorSDD2


@pytest.fixture
def ksdd2_tree(tmp_path):
    root = tmp_path / "KolektorSDD2"
    written = {}
    sizes = [(20, 8), (21, 8), (20, 9)]  # the real images vary slightly in size
    for split, first in (("train", 10000), ("test", 20000)):
        n_good, n_defect = (_mini(KSDD2_COUNTS[split][k], 20) for k in ("good", "defect"))
        for i in range(n_good + n_defect):
            size = sizes[i % 3]
            _png(root / split / f"{first + i}.png", size=size)
            _mask(root / split / f"{first + i}_GT.png", size=size, value=255 if i >= n_good else 0)
        written[(split, "good")], written[(split, "defect")] = n_good, n_defect
    return root, written


def test_ksdd2_labels_from_masks_and_train_positives_left_out(
    ksdd2_tree, tmp_path, monkeypatch, caplog
):
    monkeypatch.setenv("SHIFTBENCH_CACHE", str(tmp_path / "cache"))
    root, written = ksdd2_tree
    with caplog.at_level(logging.WARNING, logger="shiftbench.data.loaders.ksdd2"):
        table = load_dataset("ksdd2", root)
    assert set(table["category"]) == {"ksdd2"}
    got = dict(Counter(zip(table["orig_split"], table["defect_type"], strict=True)))
    assert got == {
        ("train", "good"): written[("train", "good")],
        ("test", "good"): written[("test", "good")],
        ("test", "defect"): written[("test", "defect")],
    }
    n_dropped = written[("train", "defect")]
    assert f"{n_dropped} training images with a defect left out" in caplog.text
    assert table.loc[table["label"] == 0, "mask_path"].isna().all()
    assert table.loc[table["label"] == 1, "mask_path"].str.endswith("_GT.png").all()
    assert (
        sum(KSDD2_COUNTS["train"].values()) == 2331 and sum(KSDD2_COUNTS["test"].values()) == 1004
    )
    # labels come from the masks' content: a faint grey mask (defect ids) is a defect too
    _mask(root / "test" / "20000_GT.png", size=(20, 8), value=1)
    relabelled = load_dataset("ksdd2", root).set_index("sample_id")
    assert relabelled.loc["ksdd2/test/defect/20000", "label"] == 1


def test_ksdd2_image_without_mask(ksdd2_tree, tmp_path, monkeypatch):
    monkeypatch.setenv("SHIFTBENCH_CACHE", str(tmp_path / "cache"))
    root, _ = ksdd2_tree
    (root / "test" / "20001_GT.png").unlink()
    with pytest.raises(
        ShiftbenchError, match=r"20001.png: image without its mask; expected .*20001_GT.png"
    ):
        load_dataset("ksdd2", root)


# --------------------------------------------------------------------------- Real-IAD


def _realiad_tree(root: Path, cats=("audiojack", "pcb")) -> dict:
    """Per category: samples S0001-S0003 normal (train: 1-2, test: 3), S0004 with an AK
    defect and S0005 with a BX defect (test), five views each; plus one anomalous train
    entry (as the FUIAD split files have)."""
    written: Counter = Counter()
    for cat in cats:
        base = root / "realiad_256" / cat
        data = {"meta": {"prefix": "", "normal_class": "OK"}, "train": [], "test": []}
        for s in range(1, 6):
            code = {4: "AK", 5: "BX"}.get(s, "OK")
            split = "train" if s <= 2 else "test"
            for view in VIEWS:
                folder = f"OK/S{s:04d}" if code == "OK" else f"NG/{code}/S{s:04d}"
                stem = f"{cat}_{s:04d}_{'OK' if code == 'OK' else 'NG'}_{view}_2023092209{s:02d}"
                _jpg(base / folder / f"{stem}.jpg")
                entry = {
                    "category": cat,
                    "anomaly_class": code,
                    "image_path": f"{folder}/{stem}.jpg",
                }
                entry["mask_path"] = None
                if code != "OK":
                    _mask(base / folder / f"{stem}.png")
                    entry["mask_path"] = f"{folder}/{stem}.png"
                data[split].append(entry)
                written[(cat, split, "good" if code == "OK" else code, view)] += 1
        data["train"].append(dict(data["test"][-1]))  # an anomalous training entry
        path = root / "realiad_jsons" / "realiad_jsons" / f"{cat}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))
    return written


def test_realiad_counts_views_and_official_structure(tmp_path, caplog):
    root = tmp_path / "Real-IAD"
    written = _realiad_tree(root)
    with caplog.at_level(logging.WARNING, logger="shiftbench.data.loaders.realiad"):
        table = load_dataset("realiad", root)
    assert "2 anomalous training entries of realiad_jsons left out" in caplog.text
    views = table["image_path"].str.extract(r"_(C[1-5])_")[0]
    got = Counter(
        zip(table["category"], table["orig_split"], table["defect_type"], views, strict=True)
    )
    assert got == written
    assert table.loc[table["label"] == 1, "mask_path"].str.endswith(".png").all()
    two = load_dataset("realiad", root, ["pcb"], views="C1,3")
    assert set(two["image_path"].str.extract(r"_(C[1-5])_")[0]) == {"C1", "C3"}
    assert len(two) == sum(
        n for (c, _, _, v), n in written.items() if c == "pcb" and v in ("C1", "C3")
    )
    assert len(REALIAD_CATEGORIES) == len(set(REALIAD_CATEGORIES)) == 30
    assert REALIAD_COUNTS["normal"] + REALIAD_COUNTS["anomalous"] == REALIAD_COUNTS["images"]


def test_realiad_bad_views_and_missing_files(tmp_path):
    root = tmp_path / "Real-IAD"
    _realiad_tree(root, cats=("usb",))
    with pytest.raises(
        ShiftbenchError, match=r"views 'C7': not a Real-IAD camera view; choose from C1, C2"
    ):
        load_dataset("realiad", root, views="C1,C7")
    with pytest.raises(ShiftbenchError, match=r"no realiad_1024 folder"):
        load_dataset("realiad", root, resolution="1024")
    (root / "realiad_256" / "usb" / "OK" / "S0003" / "usb_0003_OK_C2_202309220903.jpg").unlink()
    with pytest.raises(ShiftbenchError, match=r"usb_0003_OK_C2_202309220903.jpg: file not found"):
        load_dataset("realiad", root)
    assert (
        len(load_dataset("realiad", root, views=["C1"])) == 5
    )  # five samples; the missing C2 file is not read


# --------------------------------------------------------------------------- Magnetic Tile Defect


@pytest.fixture
def mtd_tree(tmp_path):
    """Greyscale JPEG tiles of differing sizes with PNG masks beside them (MT_Free too,
    all black, as in the release)."""
    root = tmp_path / "Magnetic-tile-defect-datasets."
    written = {}
    for folder, n in MTD_COUNTS.items():
        k = _mini(n, 20)
        for i in range(k):
            size = (10 + i % 4, 14 + i % 3)
            stem = f"exp{i % 3}_num_{1000 + i}"
            _jpg(root / folder / "Imgs" / f"{stem}.jpg", size=size, grey=True)
            _mask(
                root / folder / "Imgs" / f"{stem}.png",
                size=size,
                value=0 if folder == "MT_Free" else 255,
            )
        written[folder] = k
    return root, written


def test_mtd_counts_and_seeded_split(mtd_tree):
    root, written = mtd_tree
    table = load_dataset("mtd", root)
    assert set(table["category"]) == {"mtd"}
    normals = table[table["label"] == 0]
    n_test = int(0.2 * written["MT_Free"] + 0.5)
    assert Counter(normals["orig_split"]) == {"train": written["MT_Free"] - n_test, "test": n_test}
    defects = Counter(table.loc[table["label"] == 1, "defect_type"])
    assert defects == {f[3:].lower(): n for f, n in written.items() if f != "MT_Free"}
    assert (table.loc[table["label"] == 1, "orig_split"] == "test").all()
    assert sum(MTD_COUNTS.values()) == 1344
    # the split is a function of the seed only
    again = load_dataset("mtd", root, split_seed=0)
    assert again["orig_split"].tolist() == table["orig_split"].tolist()
    other = load_dataset("mtd", root, split_seed=1)
    assert (
        set(other.loc[other["orig_split"] == "test", "sample_id"])
        != set(table.loc[(table["orig_split"] == "test") & (table["label"] == 0), "sample_id"])
        or written["MT_Free"] < 3
    )
    with pytest.raises(ShiftbenchError, match=r"mtd test_frac 1.5: must be in \(0, 1\)"):
        load_dataset("mtd", root, test_frac=1.5)


# --------------------------------------------------------------------------- the CLI


@pytest.mark.parametrize("kind", ["loco", "mpdd", "ksdd2", "realiad", "mtd"])
def test_splits_command_prints_counts(kind, request, tmp_path, monkeypatch):
    from shiftbench.cli.main import app

    monkeypatch.setenv("SHIFTBENCH_CACHE", str(tmp_path / "cache"))
    n_cats = {"loco": 5, "mpdd": 6, "ksdd2": 1, "realiad": 2, "mtd": 1}
    if kind == "realiad":
        root = tmp_path / "Real-IAD"
        _realiad_tree(root)
        first_defect = "AK"
    else:
        root = request.getfixturevalue(f"{kind}_tree")[0]
        first_defect = {
            "loco": "logical_anomalies",
            "mpdd": "hole",
            "ksdd2": "defect",
            "mtd": "blowhole",
        }[kind]
    result = CliRunner().invoke(app, ["splits", "--dataset", kind, "--root", str(root)])
    assert result.exit_code == 0, result.output
    assert first_defect in result.output and "train" in result.output and "test" in result.output
    # run plans a study on it (the dry run loads and splits the dataset, fits nothing)
    argv = ["run", "--dataset", kind, "--root", str(root), "--weights", "random", "--dry-run"]
    plan = CliRunner().invoke(app, [*argv, "--out", str(tmp_path / "run")])
    assert plan.exit_code == 0, plan.output
    assert plan.output.startswith(f"{n_cats[kind]} fits: 1 seed(s) x {n_cats[kind]} group(s)")


def test_shift_command_writes_twins_that_load_again(loco_tree, tmp_path, monkeypatch):
    """LOCO's merged masks (in the cache) land at ``ground_truth/<type>/<id>/000.png`` of
    the twin, and Real-IAD's split files are copied: both twins load with their kind."""
    from shiftbench.cli.main import app

    monkeypatch.setenv("SHIFTBENCH_CACHE", str(tmp_path / "cache"))
    realiad = tmp_path / "Real-IAD"
    _realiad_tree(realiad, cats=("tape",))
    for kind, root, cats in (("loco", loco_tree[0], "pushpins"), ("realiad", realiad, "tape")):
        out = tmp_path / f"{kind}-shifted"
        argv = ["shift", "--dataset", kind, "--root", str(root), "--categories", cats]
        argv += ["--suite", "photometric", "--severity", "2", "--out", str(out), "--workers", "1"]
        result = CliRunner().invoke(app, argv)
        assert result.exit_code == 0, result.output
        before, after = load_dataset(kind, root, [cats]), load_dataset(kind, out, [cats])
        assert after["sample_id"].tolist() == before["sample_id"].tolist()
        assert after["mask_path"].notna().tolist() == before["mask_path"].notna().tolist()
        assert all(str(out) in p for p in after["mask_path"].dropna())


def test_views_option_from_the_command_line(tmp_path):
    from shiftbench.cli.main import app
    from shiftbench.protocols.config import load_config

    root = tmp_path / "Real-IAD"
    _realiad_tree(root, cats=("mint",))
    out = tmp_path / "split.csv"
    argv = ["splits", "--dataset", "realiad", "--root", str(root), "--views", "C2,C5"]
    result = CliRunner().invoke(app, [*argv, "--out", str(out)])
    assert result.exit_code == 0, result.output
    import pandas as pd

    table = pd.read_csv(out)
    assert set(table["image_path"].str.extract(r"_(C[1-5])_")[0]) == {"C2", "C5"}
    # a layout without views refuses the option in one line
    bad = CliRunner().invoke(
        app, ["splits", "--dataset", "mtd", "--root", str(root), "--views", "C1"]
    )
    assert isinstance(bad.exception, ShiftbenchError) and bad.exception.param == "views"
    assert "views: not an option of dataset 'mtd'" in str(bad.exception)
    # unset, views stays out of the study's hash (old run folders keep their names)
    assert "views" not in load_config(None, {}).hash_payload()
    assert load_config(None, {"views": "C1"}).hash != load_config(None, {}).hash
