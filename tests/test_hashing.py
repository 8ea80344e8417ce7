"""Pinned digests: splits, twins, cache keys, suite/config hashes and synthetic data depend on
these values bit for bit, so a refactor of the hashing code must not change any of them.

Every literal below was computed with the code as it was before ``shiftbench._hashing``
existed (the seven hand-written ``hashlib.sha256`` call sites). If one of these fails, do not
update the literal: splits, twin caches and result names of existing runs would change.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd

from shiftbench import _hashing
from shiftbench.analysis.tables.comparison import _stable_seed
from shiftbench.data import cache
from shiftbench.data.splits import make_splits, split_hash, stable_key
from shiftbench.data.synthetic import _rng
from shiftbench.protocols.config import StudyConfig
from shiftbench.transforms.base import canonical_json, stable_hash
from shiftbench.transforms.suites import load_suite


def _sample_table() -> pd.DataFrame:
    rows = [(f"c/train/good/{i}", "c", "train", 0, "good") for i in range(12)]
    rows += [(f"c/test/good/{i}", "c", "test", 0, "good") for i in range(5)]
    rows += [(f"c/test/cut/{i}", "c", "test", 1, "cut") for i in range(4)]
    rows += [(f"c/test/hole/{i}", "c", "test", 1, "hole") for i in range(3)]
    t = pd.DataFrame(rows, columns=["sample_id", "category", "orig_split", "label", "defect_type"])
    t["image_path"] = t["sample_id"] + ".png"
    t["mask_path"] = np.where(t["label"] == 1, t["sample_id"] + "_mask.png", None)
    return t


# ----------------------------------------------------------------------------- pinned values
# Computed once with the pre-refactor code; never regenerate them.
PINNED_STABLE_KEY = 6010494729691684769
PINNED_VAL_IDS = ["c/test/cut/1", "c/test/hole/2", "c/train/good/10", "c/train/good/2"]
PINNED_SPLIT_HASH_SEED0 = "00f61a8d58ab9644"
PINNED_SPLIT_HASH_SEED1 = "c27e81d5eebf74d8"
PINNED_STABLE_HASH_ABC = 16919744041952114874
PINNED_STABLE_HASH_17 = 1715031521596023621
PINNED_SUITE_HASH = "efdc0215a3f7d8a2ae3783ba535cbb167c6beaa4526f00feb2341968570668a8"
PINNED_CACHE_DIGEST = "3d0aa8b5765a105067dfbaf7dce20eda"
PINNED_SOURCE_DIGEST = "df7d3079afb14757"
PINNED_SYNTHETIC_DRAWS = [2411685266, 1822337961, 688302450]
PINNED_CONFIG_HASH = "18d910686d"
PINNED_CONFIG_HASH_2 = "e9c397dc37"
PINNED_TABLE_SEED = 5946526369928760924


def test_split_keys_and_split_hash_are_pinned():
    assert stable_key("val", 0, "c/test/cut/1") == PINNED_STABLE_KEY
    s = make_splits(_sample_table(), seed=0)
    assert sorted(s.loc[s["split"] == "val", "sample_id"]) == PINNED_VAL_IDS
    assert split_hash(s) == PINNED_SPLIT_HASH_SEED0
    assert split_hash(make_splits(_sample_table(), seed=1)) == PINNED_SPLIT_HASH_SEED1


def test_transform_stable_hash_is_pinned():
    assert stable_hash("abc") == PINNED_STABLE_HASH_ABC
    assert stable_hash(17) == PINNED_STABLE_HASH_17


def test_suite_hash_is_pinned():
    assert load_suite("mvtec-shift", 3).hash == PINNED_SUITE_HASH


def test_cache_digests_are_pinned(tmp_path, monkeypatch):
    assert cache.digest(["twins", "abc", 3, {"b": 1, "a": [1.5, None]}]) == PINNED_CACHE_DIGEST
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.py").write_bytes(b"print('a')\n")
    (tmp_path / "b.py").write_bytes(b"x = 1\n")
    cache.source_digest.cache_clear()
    assert cache.source_digest(("b.py", "a.py", "missing.py")) == PINNED_SOURCE_DIGEST
    cache.source_digest.cache_clear()


def test_synthetic_seed_words_are_pinned():
    draws = _rng(0, "brick", "train", 3).integers(0, 2**32, size=3).tolist()
    assert draws == PINNED_SYNTHETIC_DRAWS


def test_study_config_hash_is_pinned():
    assert StudyConfig().hash == PINNED_CONFIG_HASH
    assert (
        StudyConfig(models=["patchcore", "autoencoder"], seeds=[0, 1]).hash == PINNED_CONFIG_HASH_2
    )


def test_table_bootstrap_seed_is_pinned():
    assert _stable_seed(0, "bottle", 1) == PINNED_TABLE_SEED


# ----------------------------------------------------------------------------- the helpers


def test_helpers_are_plain_sha256():
    assert _hashing.hex_digest("abc") == hashlib.sha256(b"abc").hexdigest()
    assert _hashing.hex_digest(b"abc", 10) == hashlib.sha256(b"abc").hexdigest()[:10]
    raw = hashlib.sha256("é|1".encode()).digest()
    assert _hashing.stable_int("é|1", 8, "little") == int.from_bytes(raw[:8], "little")
    assert _hashing.stable_int("é|1", 4, "big") == int.from_bytes(raw[:4], "big")
    assert _hashing.stable_int(5) == _hashing.stable_int("5")
    obj = {"b": [1, 2.5], "a": None}
    assert _hashing.canonical_json(obj) == json.dumps(obj, sort_keys=True, separators=(",", ":"))
    assert canonical_json(obj) == _hashing.canonical_json(obj) == '{"a":null,"b":[1,2.5]}'
