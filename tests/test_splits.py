"""Seeded splits: fractions, stratification, disjointness, determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shiftbench.data import load_dataset, make_splits, split_counts, split_hash
from shiftbench.errors import ShiftbenchError


def _table(
    n_train=50, n_test_good=20, defects=(("cut", 10), ("hole", 7), ("tiny", 1)), category="c"
):
    rows = [(f"{category}/train/good/{i}", category, "train", 0, "good") for i in range(n_train)]
    rows += [(f"{category}/test/good/{i}", category, "test", 0, "good") for i in range(n_test_good)]
    for d, n in defects:
        rows += [(f"{category}/test/{d}/{i}", category, "test", 1, d) for i in range(n)]
    t = pd.DataFrame(rows, columns=["sample_id", "category", "orig_split", "label", "defect_type"])
    t["image_path"] = t["sample_id"] + ".png"
    t["mask_path"] = np.where(t["label"] == 1, t["sample_id"] + "_mask.png", None)
    return t


def test_fractions_and_stratification():
    s = make_splits(_table(), seed=0)
    normal_train = s[(s["orig_split"] == "train")]
    assert (normal_train["split"] == "val").sum() == 10  # 20% of 50
    assert (normal_train["split"] == "train").sum() == 40
    assert (s[(s["orig_split"] == "test") & (s["label"] == 0)]["split"] == "test").all()
    per_defect = (
        s[s["label"] == 1]
        .groupby("defect_type")["split"]
        .apply(lambda x: (x == "val").sum())
        .to_dict()
    )
    assert per_defect == {"cut": 3, "hole": 2, "tiny": 0}  # round-half-up of 30%


def test_disjoint_and_complete():
    t = _table()
    s = make_splits(t, seed=1)
    assert len(s) == len(t) and set(s["sample_id"]) == set(t["sample_id"])
    assert set(s["split"]) == {"train", "val", "test"}
    assert (s[s["split"] == "train"]["label"] == 0).all()
    groups = [set(s.loc[s["split"] == k, "sample_id"]) for k in ("train", "val", "test")]
    assert (
        not (groups[0] & groups[1]) and not (groups[0] & groups[2]) and not (groups[1] & groups[2])
    )


def test_same_split_from_shuffled_file_list():
    t = _table()
    a = make_splits(t, seed=7)
    b = make_splits(t.sample(frac=1.0, random_state=3).reset_index(drop=True), seed=7)
    assert split_hash(a) == split_hash(b)
    merged = a.merge(b, on="sample_id")
    assert (merged["split_x"] == merged["split_y"]).all()


def test_different_seeds_differ():
    t = _table()
    assert split_hash(make_splits(t, seed=0)) != split_hash(make_splits(t, seed=1))


def test_split_of_one_category_ignores_other_categories():
    one = _table(category="a")
    both = pd.concat([one, _table(category="b")], ignore_index=True)
    a_alone = make_splits(one, seed=3).set_index("sample_id")["split"]
    a_with_b = make_splits(both, seed=3).set_index("sample_id")["split"]
    assert a_alone.equals(a_with_b.loc[a_alone.index])


def test_train_subsample_is_a_seeded_subset_of_train():
    t = _table()
    full = make_splits(t, seed=0)
    half = make_splits(t, seed=0, train_subsample=0.5)
    assert (half["split"] == "train").sum() == 20
    assert set(half.loc[half["split"] == "train", "sample_id"]) <= set(
        full.loc[full["split"] == "train", "sample_id"]
    )
    assert (half["split"] == "unused").sum() == 20
    # val and test are untouched by the subsample
    keep = full["split"].isin(["val", "test"])
    assert (full.loc[keep, "split"] == half.loc[keep, "split"]).all()


def test_options_change_fractions():
    s = make_splits(_table(), seed=0, val_normal_frac=0.4, val_anomalous_frac=0.5)
    assert ((s["orig_split"] == "train") & (s["split"] == "val")).sum() == 20
    assert ((s["defect_type"] == "cut") & (s["split"] == "val")).sum() == 5


def test_bad_fraction_and_empty_split_are_clear_errors():
    with pytest.raises(ShiftbenchError, match="--val-normal-frac 1.5"):
        make_splits(_table(), seed=0, val_normal_frac=1.5)
    with pytest.raises(ShiftbenchError, match="Test-clean has no anomalous image"):
        make_splits(_table(defects=(("cut", 1),)), seed=0, val_anomalous_frac=0.9)


def test_unsplit_normals_give_test_normals():
    t = _table()
    t.loc[t["label"] == 0, "orig_split"] = "unsplit"
    s = make_splits(t, seed=0)
    normals = s[s["label"] == 0]
    assert (normals["split"] == "test").sum() == 14  # 20% of 70
    assert (normals["split"] == "val").sum() == 11  # 20% of the remaining 56 (11.2)


def test_split_counts_on_synthetic(tiny_synthetic):
    s = make_splits(load_dataset("mvtec", tiny_synthetic), seed=0)
    c = split_counts(s)
    assert c["n"].sum() == len(s)
    brick = c[c["category"] == "brick"].set_index(["split", "defect_type"])["n"]
    assert (
        brick[("train", "good")] == 8
        and brick[("val", "good")] == 2
        and brick[("test", "good")] == 5
    )
    assert brick[("val", "scratch")] == 1 and brick[("test", "scratch")] == 2
