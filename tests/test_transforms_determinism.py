"""Shifts depend only on (suite, seed, image id, severity): across processes, workers and order."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from shiftbench.transforms import load_suite
from shiftbench.transforms.twins import shift_batch

N, SIZE = 6, 48


def _batch(seed: int = 0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (N, SIZE, SIZE, 3), dtype=np.uint8)
    masks = np.zeros((N, SIZE, SIZE), np.uint8)
    masks[::2, 10:30, 12:20] = 255  # every other image anomalous, the rest empty
    ids = [f"cat/test/{'crack' if i % 2 == 0 else 'good'}/{i:03d}" for i in range(N)]
    return images, masks, ids


def _digest(images, masks, params) -> str:
    h = hashlib.sha256()
    for a in (*images, *masks):
        h.update(np.ascontiguousarray(a).tobytes())
    h.update(json.dumps(params, sort_keys=True).encode())
    return h.hexdigest()


_CHILD = """
import hashlib, json, sys
import numpy as np
sys.path.insert(0, {tests!r})
from test_transforms_determinism import _batch, _digest
from shiftbench.transforms import load_suite
from shiftbench.transforms.twins import shift_batch
images, masks, ids = _batch()
out = shift_batch(load_suite("mvtec-shift"), images, masks, ids, seed=7)
print(_digest(*out))
"""


def test_same_bytes_in_two_fresh_processes_and_here():
    from pathlib import Path

    code = _CHILD.format(tests=str(Path(__file__).parent))
    # different hash seeds prove nothing leans on Python's salted hash(); run side by side
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": str(s)},
        )
        for s in (1, 2)
    ]
    runs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        runs.append(out.strip())
    images, masks, ids = _batch()
    here = _digest(*shift_batch(load_suite("mvtec-shift"), images, masks, ids, seed=7))
    assert runs[0] == runs[1] == here


@pytest.mark.parametrize("parallel", [{"workers": 2}, {"threads": 2}, {"threads": 3}])
def test_processes_and_threads_give_identical_bytes(parallel):
    images, masks, ids = _batch()
    suite = load_suite("mvtec-shift")
    one = shift_batch(suite, images, masks, ids, seed=3, workers=1)
    done = []
    two = shift_batch(suite, images, masks, ids, seed=3, progress=done.append, **parallel)
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1], two[1])
    assert one[2] == two[2] and sum(done) == len(ids)
    assert isinstance(two[0], np.ndarray) and two[0].shape == images.shape


def test_order_and_batch_composition_do_not_matter():
    images, masks, ids = _batch()
    suite = load_suite("mvtec-shift")
    full_imgs, full_masks, full_params = shift_batch(suite, images, masks, ids, seed=5)
    order = [4, 1, 5, 0]
    part_imgs, part_masks, part_params = shift_batch(
        suite, images[order], masks[order], [ids[i] for i in order], seed=5
    )
    for k, i in enumerate(order):
        np.testing.assert_array_equal(part_imgs[k], full_imgs[i])
        np.testing.assert_array_equal(part_masks[k], full_masks[i])
        assert part_params[k] == full_params[i]


def test_seed_and_id_change_the_shift_and_empty_masks_stay_empty():
    images, masks, ids = _batch()
    suite = load_suite("mvtec-shift")
    a = shift_batch(suite, images, masks, ids, seed=0)
    b = shift_batch(suite, images, masks, ids, seed=1)
    assert all(pa != pb for pa, pb in zip(a[2], b[2], strict=True))
    assert not a[1][1::2].any()  # normal images
    assert a[1][::2].any() and set(np.unique(a[1])) <= {0, 255}


def test_recorded_params_replay_to_the_same_bytes_after_json():
    images, masks, ids = _batch()
    suite = load_suite("mvtec-shift")
    out, out_masks, params = shift_batch(suite, images, masks, ids, seed=2)
    for i in range(N):
        replayed = json.loads(json.dumps(params[i]))
        img, m = suite.apply_params(images[i], masks[i], replayed)
        np.testing.assert_array_equal(img, out[i])
        np.testing.assert_array_equal(m, out_masks[i])


def test_lists_of_different_sizes_and_no_masks():
    rng = np.random.default_rng(0)
    images = [
        rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((32, 40), (48, 24), (16, 16))
    ]
    out, masks, params = shift_batch(
        load_suite("photometric"), images, None, ["a", "b", "c"], seed=0, workers=2
    )
    assert masks is None and isinstance(out, list)
    assert [o.shape for o in out] == [i.shape for i in images]
    with pytest.raises(ValueError, match="image ids must be unique"):
        shift_batch(load_suite("photometric"), images, None, ["a", "a", "c"], seed=0)


def test_params_depend_on_severity_and_suite_name():
    shape = (32, 32, 3)
    base = load_suite("geometric").sample(seed=0, image_id="x", shape=shape)
    assert load_suite("geometric").sample(seed=0, image_id="x", shape=shape) == base
    assert load_suite("geometric", severity=4).sample(seed=0, image_id="x", shape=shape) != base
    mvtec = load_suite("mvtec-shift").sample(seed=0, image_id="x", shape=shape)
    assert mvtec["rotate"] != base["rotate"]  # a different suite is a different stream
    # params are relative: the same image id gets the same params at any resolution
    assert load_suite("geometric").sample(seed=0, image_id="x", shape=(512, 256, 3)) == base


def test_params_table_keeps_the_split_column_and_canonical_json():
    import pandas as pd

    from shiftbench.transforms.twins import params_table

    images, masks, ids = _batch()
    suite = load_suite("geometric", severity=2)
    _, _, params = shift_batch(suite, images, masks, ids, seed=9)
    samples = pd.DataFrame(
        {
            "sample_id": ids,
            "category": "cat",
            "orig_split": "test",
            "split": ["val", "test"] * (N // 2),
        }
    )
    table = params_table(samples, suite, 9, params)
    assert list(table.columns[:6]) == [
        "seed",
        "sample_id",
        "category",
        "orig_split",
        "split",
        "suite",
    ]
    assert list(table["split"]) == ["val", "test"] * (N // 2)
    assert set(table["severity"]) == {2} and set(table["suite_hash"]) == {suite.hash}
    assert [json.loads(p) for p in table["params"]] == params
    assert table["params"][0] == json.dumps(params[0], sort_keys=True, separators=(",", ":"))
