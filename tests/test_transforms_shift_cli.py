"""``shiftbench shift``: shifted twins written in the dataset's own layout, with their params."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _cli import run_main as _run

from shiftbench.data import load_dataset, read_image, read_mask, write_image
from shiftbench.transforms import load_suite
from shiftbench.transforms.twins import PARAMS_COLUMNS, shift_dataset


@pytest.fixture
def mvtec_tree(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "mvtec"
    for cat in ("carpet", "zipper"):
        for i in range(3):
            write_image(
                root / cat / "train" / "good" / f"{i:03d}.png",
                rng.integers(0, 256, (40, 48, 3), dtype=np.uint8),
            )
        write_image(
            root / cat / "test" / "good" / "000.png",
            rng.integers(0, 256, (40, 48, 3), dtype=np.uint8),
        )
        for i in range(2):
            write_image(
                root / cat / "test" / "cut" / f"{i:03d}.png",
                rng.integers(0, 256, (40, 48, 3), dtype=np.uint8),
            )
            mask = np.zeros((40, 48), np.uint8)
            mask[10:22, 14 + 4 * i : 30] = 255
            write_image(root / cat / "ground_truth" / "cut" / f"{i:03d}_mask.png", mask)
    return root


def test_shift_command_mirrors_the_layout_and_records_params(mvtec_tree, tmp_path, capsys):
    out = tmp_path / "shifted"
    code, stdout, err = _run(
        [
            "shift",
            "--dataset",
            "mvtec",
            "--root",
            str(mvtec_tree),
            "--categories",
            "carpet",
            "--suite",
            "mvtec-shift",
            "--severity",
            "4",
            "--seeds",
            "3",
            "--out",
            str(out),
            "--workers",
            "1",
        ],
        capsys,
    )
    assert code == 0, err
    assert "wrote 6 images and 2 masks" in stdout
    src = {p.relative_to(mvtec_tree) for p in (mvtec_tree / "carpet").rglob("*.png")}
    dst = {p.relative_to(out) for p in out.rglob("*.png")}
    assert src == dst
    assert not (out / "zipper").exists()

    table = pd.read_parquet(out / "shift_params.parquet")
    assert list(table.columns) == [*PARAMS_COLUMNS, "image_path", "mask_path"]
    assert len(table) == 6 and set(table["severity"]) == {4} and set(table["seed"]) == {3}
    assert set(table["suite_hash"]) == {load_suite("mvtec-shift", severity=4).hash}
    csv = pd.read_csv(out / "shift_params.csv")
    assert list(csv["params"]) == list(table["params"])

    # every written file is exactly the replay of its recorded params on the original
    suite = load_suite("mvtec-shift", severity=4)
    samples = load_dataset("mvtec", mvtec_tree, ["carpet"]).set_index("sample_id")
    for rec in table.itertuples(index=False):
        orig = samples.loc[rec.sample_id]
        mask = read_mask(orig["mask_path"]) if isinstance(orig["mask_path"], str) else None
        image, moved = suite.apply_params(
            read_image(orig["image_path"]), mask, json.loads(rec.params)
        )
        np.testing.assert_array_equal(read_image(rec.image_path), image)
        if mask is not None:
            written = np.asarray(__import__("PIL.Image").Image.open(rec.mask_path))
            assert set(np.unique(written)) <= {0, 255}
            np.testing.assert_array_equal(written, moved)
        else:
            assert pd.isna(rec.mask_path)


def test_shift_refuses_a_non_empty_out_and_a_bad_suite(mvtec_tree, tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "x.txt").write_text("keep me")
    code, _, err = _run(
        [
            "shift",
            "--dataset",
            "mvtec",
            "--root",
            str(mvtec_tree),
            "--out",
            str(out),
            "--workers",
            "1",
        ],
        capsys,
    )
    assert code == 2 and "folder exists and is not empty" in err and str(out) in err
    code, _, err = _run(
        [
            "shift",
            "--dataset",
            "mvtec",
            "--root",
            str(mvtec_tree),
            "--suite",
            "nope",
            "--out",
            str(tmp_path / "o"),
        ],
        capsys,
    )
    assert code == 2 and "--suite: unknown suite 'nope'" in err
    code, _, err = _run(
        [
            "shift",
            "--dataset",
            "mvtec",
            "--root",
            str(mvtec_tree),
            "--out",
            str(mvtec_tree / "carpet" / "x"),
        ],
        capsys,
    )
    assert code == 2 and "must not be the dataset root or inside it" in err


def test_shift_dataset_with_two_workers_writes_the_same_bytes(mvtec_tree, tmp_path):
    samples = load_dataset("mvtec", mvtec_tree)
    suite = load_suite("mvtec-shift")
    a = shift_dataset(samples, suite, seed=0, root=mvtec_tree, out=tmp_path / "a", workers=1)
    b = shift_dataset(samples, suite, seed=0, root=mvtec_tree, out=tmp_path / "b", workers=2)
    assert list(a["params"]) == list(b["params"])
    for rel in (Path(p).relative_to(tmp_path / "a") for p in a["image_path"]):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()


def test_shift_takes_the_run_vocabulary_and_writes_one_folder_per_seed_and_level(
    mvtec_tree, tmp_path, capsys
):
    out = tmp_path / "many"
    argv = ["shift", "--dataset", "mvtec", "--root", str(mvtec_tree), "--categories", "zipper"]
    code, stdout, err = _run(
        [*argv, "--seeds", "0,1", "--severity", "2,4", "--workers", "1", "--out", str(out)],
        capsys,
    )
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == [
        "seed0-sev2",
        "seed0-sev4",
        "seed1-sev2",
        "seed1-sev4",
    ]
    table = pd.read_parquet(out / "seed1-sev4" / "shift_params.parquet")
    assert set(table["seed"]) == {1} and set(table["severity"]) == {4}
    assert "\x1b" not in err and "\r" not in err  # plain progress lines, not a redrawn bar
    for bad, flag in (["--severity", "1,,3"], "--severity"), (["--seeds", "x"], "--seeds"):
        code, _, err = _run([*argv, *bad, "--out", str(tmp_path / "x")], capsys)
        assert code == 2 and err.startswith(f"error: {flag} ") and len(err.splitlines()) == 1
