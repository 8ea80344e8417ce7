"""Seeded, leakage-free Train/Val/Test-clean splits (spec section 2).

Every image gets a key ``sha256(purpose, seed, sample_id)``; within each group the images
with the smallest keys are chosen. The split therefore depends only on the seed and the
set of sample ids — never on directory listing order, platform, process or the other
images' order — and it is stable when unrelated images are added to another group.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from shiftbench._hashing import hex_digest, stable_int
from shiftbench.errors import ShiftbenchError

SPLITS = ("train", "val", "test")


def stable_key(*parts: object) -> int:
    """A 64-bit integer digest of ``parts`` that is the same on every machine and run
    (Python's ``hash`` is salted per process, so it cannot be used)."""
    return stable_int("\x1f".join(map(str, parts)), 8, "big")


def _count(frac: float, n: int) -> int:
    # round half up, so 0.2 * 5 = 1 and 0.3 * 5 = 2 on every platform
    return int(math.floor(frac * n + 0.5))


def _choose(ids, k: int, purpose: str, seed: int) -> set[str]:
    keys = sorted((stable_key(purpose, seed, sid), sid) for sid in ids)
    return {sid for _, sid in keys[:k]}


def _check_fraction(name: str, value: float, low_open: bool = False) -> None:
    ok = (0 < value <= 1) if low_open else (0 <= value < 1)
    if not ok or not np.isfinite(value):
        interval = "(0, 1]" if low_open else "[0, 1)"
        raise ShiftbenchError(f"--{name.replace('_', '-')} {value}: must be in {interval}")


def make_splits(
    samples: pd.DataFrame,
    seed: int,
    *,
    val_normal_frac: float = 0.2,
    val_anomalous_frac: float = 0.3,
    test_normal_frac: float = 0.2,
    train_subsample: float | None = None,
) -> pd.DataFrame:
    """Add a ``split`` column (``train``, ``val``, ``test``) to a sample table.

    Per category: Train-clean is ``1 - val_normal_frac`` of the training normals (then, with
    ``train_subsample=r``, a seeded fraction r of them; the rest get split ``unused``);
    Val-clean is the other ``val_normal_frac`` plus ``val_anomalous_frac`` of the anomalous
    images, drawn within each defect type; Test-clean is every test normal and the remaining
    anomalous images. Folder datasets whose normals are ``unsplit`` first give
    ``test_normal_frac`` of them to Test-clean.
    """
    _check_fraction("val_normal_frac", val_normal_frac)
    _check_fraction("val_anomalous_frac", val_anomalous_frac)
    _check_fraction("test_normal_frac", test_normal_frac)
    if train_subsample is not None:
        _check_fraction("train_subsample", train_subsample, low_open=True)
    out = samples.copy()
    ids = out["sample_id"].astype(str).to_numpy()
    labels = out["label"].to_numpy()
    orig = out["orig_split"].astype(str).to_numpy()
    defects = out["defect_type"].astype(str).to_numpy()
    split = np.full(len(out), "test", dtype=object)
    cats = out["category"].to_numpy()
    for cat in sorted(set(cats)):
        rows = np.flatnonzero(cats == cat)
        normal = rows[labels[rows] == 0]
        pool = [ids[i] for i in normal if orig[i] in ("train", "validation")]
        unsplit = [ids[i] for i in normal if orig[i] == "unsplit"]
        if unsplit:
            to_test = _choose(unsplit, _count(test_normal_frac, len(unsplit)), "test-normal", seed)
            pool += [sid for sid in unsplit if sid not in to_test]
        val_normal = _choose(pool, _count(val_normal_frac, len(pool)), "val-normal", seed)
        train_ids = [sid for sid in pool if sid not in val_normal]
        keep = set(train_ids)
        if train_subsample is not None:
            keep = _choose(
                train_ids, max(1, _count(train_subsample, len(train_ids))), "subsample", seed
            )
        row_of = {ids[i]: i for i in rows}
        for sid in val_normal:
            split[row_of[sid]] = "val"
        for sid in train_ids:
            split[row_of[sid]] = "train" if sid in keep else "unused"
        anomalous = rows[labels[rows] == 1]
        for defect in sorted(set(defects[anomalous])):
            members = [ids[i] for i in anomalous if defects[i] == defect]
            for sid in _choose(
                members, _count(val_anomalous_frac, len(members)), "val-anomalous", seed
            ):
                split[row_of[sid]] = "val"
        _check_nonempty(cat, split[rows], labels[rows])
    out["split"] = split.astype(str)
    return out


def _check_nonempty(category: str, splits: np.ndarray, labels: np.ndarray) -> None:
    need = {
        ("train", 0): "Train-clean has no normal image",
        ("val", 0): "Val-clean has no normal image",
        ("val", 1): "Val-clean has no anomalous image",
        ("test", 0): "Test-clean has no normal image",
        ("test", 1): "Test-clean has no anomalous image",
    }
    present = set(zip(splits.tolist(), labels.tolist(), strict=True))
    for key, problem in need.items():
        if key not in present:
            raise ShiftbenchError(
                f"category {category!r}: {problem}; add images or change the split fractions"
            )


def split_counts(splits: pd.DataFrame) -> pd.DataFrame:
    """Exact counts per category, split and defect type (a tidy table)."""
    counts = (
        splits.groupby(["category", "split", "defect_type"], sort=True)
        .size()
        .rename("n")
        .reset_index()
    )
    order = {s: i for i, s in enumerate(SPLITS + ("unused",))}
    return counts.sort_values(
        ["category", "split", "defect_type"], key=lambda c: c.map(order) if c.name == "split" else c
    ).reset_index(drop=True)


def split_hash(splits: pd.DataFrame) -> str:
    """A digest of (sample_id, split) pairs: equal hashes mean identical splits."""
    pairs = sorted(zip(splits["sample_id"], splits["split"], strict=True))
    return hex_digest(repr(pairs), 16)
