"""The synthetic dataset: layout, masks, determinism, disjoint photo regions."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np

from shiftbench.data import load_dataset, read_image, read_mask
from shiftbench.data.synthetic import CATEGORIES, DEFECTS, crop_box, make_synthetic


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.png")):
        h.update(str(p.relative_to(root)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def test_layout_and_masks(tiny_synthetic):
    table = load_dataset("mvtec", tiny_synthetic)
    assert set(table["category"]) == set(CATEGORIES)
    assert set(table["defect_type"]) == {"good", *DEFECTS}
    for rec in table[table["label"] == 1].itertuples():
        mask = read_mask(rec.mask_path)
        assert mask.shape == (64, 64) and set(np.unique(mask)) == {0, 255}
        assert 0 < (mask > 0).mean() < 0.5


def test_defects_change_the_image_where_the_mask_is(tiny_synthetic):
    table = load_dataset("mvtec", tiny_synthetic, ["gravel"])
    rec = table[table["defect_type"] == "stain"].iloc[0]
    img = read_image(rec.image_path).astype(float)
    mask = read_mask(rec.mask_path) > 0
    # a stain is a local colour change: inside differs from the rest more than the rest varies
    assert np.abs(img[mask].mean(0) - img[~mask].mean(0)).max() > 5


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    kw = dict(size=48, n_train=2, n_test_good=1, n_per_defect=1, categories=("brick", "washer"))
    a = make_synthetic(tmp_path / "a", seed=5, **kw)
    b = make_synthetic(tmp_path / "b", seed=5, **kw)
    c = make_synthetic(tmp_path / "c", seed=6, **kw)
    assert _digest(a) == _digest(b) != _digest(c)


def test_train_and_test_crops_come_from_disjoint_halves():
    rng = np.random.default_rng(0)
    for _ in range(500):
        top, left, side = crop_box(rng, (512, 512), "train")
        assert 0 <= top and top + side <= 256 and left + side <= 512
        top, left, side = crop_box(rng, (512, 512), "test")
        assert 256 <= top and top + side <= 512 and left + side <= 512


def test_cli_synth_then_splits(tmp_path):
    out = tmp_path / "syn"

    def run(*a):
        return subprocess.run(
            [sys.executable, "-m", "shiftbench.cli.main", *a], capture_output=True, text=True
        )

    p = run(
        "data",
        "synth",
        "--out",
        str(out),
        "--size",
        "48",
        "--n-train",
        "5",
        "--n-test-good",
        "2",
        "--n-per-defect",
        "2",
    )
    assert p.returncode == 0, p.stderr
    p = run(
        "splits",
        "--dataset",
        "mvtec",
        "--root",
        str(out),
        "--categories",
        "washer",
        "--seeds",
        "1",
        "--out",
        str(tmp_path / "s.csv"),
    )
    assert p.returncode == 0, p.stderr
    assert "washer" in p.stdout and "train" in p.stdout
    import pandas as pd

    s = pd.read_csv(tmp_path / "s.csv")
    assert set(s["split"]) == {"train", "val", "test"} and (s["seed"] == 1).all()
