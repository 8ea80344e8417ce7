"""Where a shift is applied: at the camera's resolution (``native``) or the model's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shiftbench.data import load_dataset, make_splits
from shiftbench.data.io import read_image, read_mask, resize_like_reader
from shiftbench.errors import ShiftbenchError
from shiftbench.protocols import load_config
from shiftbench.protocols.images import ImageSource
from shiftbench.protocols.plan import CLEAN, Domain
from shiftbench.transforms import load_suite


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """Synthetic images made at 256 px, studied at 64 px (a camera 4x the model's side)."""
    from shiftbench.data.synthetic import make_synthetic

    root = tmp_path_factory.mktemp("big")
    return make_synthetic(root, seed=0, size=256, n_train=4, n_test_good=3, n_per_defect=2)


def _twins(root, shift_at, member="cc_gaussian_noise"):
    cfg = load_config(
        None,
        dict(
            dataset="mvtec",
            root=str(root),
            categories="brick",
            image_size=64,
            suite="each:adshift",
            shift_at=shift_at,
            image_cache=False,
            workers=1,
        ),
    )
    samples = load_dataset("mvtec", str(root), ["brick"])
    splits = make_splits(samples, 0).assign(seed=0)
    suite = load_suite("adshift", 3).alone(member)
    rows = []
    source = ImageSource(
        cfg, splits, {(3, member): suite}, lambda *a, **k: rows.append(a[3]), progress=False
    )
    domain = Domain(3, member)
    data = source.load_category("brick", 0, {(domain, "test")})
    return data, domain, suite, pd.concat(rows)


def test_native_shifts_the_full_resolution_image_then_resizes(big):
    data, domain, suite, params = _twins(big, "native")
    table = data.rows("test")
    twins, twin_masks = data.pixels(domain, "test")
    for i in (0, len(table) - 1):
        row = table.iloc[i]
        image = read_image(row["image_path"])
        assert image.shape[:2] == (256, 256)
        mask = read_mask(row["mask_path"], shape=(256, 256))
        shifted, shifted_mask, p = suite.apply(image, mask, seed=0, image_id=row["sample_id"])
        assert np.array_equal(twins[i], resize_like_reader(shifted, 64))
        assert np.array_equal(twin_masks[i], resize_like_reader(shifted_mask, 64, kind="mask"))
    assert set(params["split"]) == {"test"}


def test_noise_at_the_sensor_is_weaker_after_the_resize(big):
    """Gaussian noise added at 256 px and averaged down to 64 px has a smaller standard
    deviation than the same level added at 64 px: the physics ``native`` models."""
    native, domain, _, _ = _twins(big, "native")
    model, _, _, _ = _twins(big, "model")
    clean = native.pixels(CLEAN, "test")[0].astype(float)
    assert np.array_equal(clean, model.pixels(CLEAN, "test")[0])
    d_native = native.pixels(domain, "test")[0].astype(float) - clean
    d_model = model.pixels(domain, "test")[0].astype(float) - clean
    assert d_native.std() < 0.6 * d_model.std()


def test_shift_at_default_and_bad_value():
    assert load_config().shift_resolution == "model"  # the synthetic demo is unchanged
    assert load_config(None, {"dataset": "mvtec", "root": "x"}).shift_resolution == "native"
    with pytest.raises(ShiftbenchError, match="shift_at 'camera'"):
        load_config(None, {"shift_at": "camera"})


def test_a_member_alone_shares_its_cached_twins_across_suite_files(big):
    """A member evaluated alone draws the same twins from any suite file (issue 21), so a
    second study naming it through another suite reads them back from the image cache."""
    member = "cc_gaussian_noise"
    cfg = load_config(None, dict(dataset="mvtec", root=str(big), categories="brick",
                                 image_size=64, shift_at="model", workers=1))  # fmt: skip
    samples = load_dataset("mvtec", str(big), ["brick"])
    splits = make_splits(samples, 0).assign(seed=0)
    domain = Domain(3, member)
    got, stats = [], []
    for suite_name in ("adshift", "common-corruptions"):
        suite = load_suite(suite_name, 3).alone(member)
        source = ImageSource(cfg, splits, {(3, member): suite}, lambda *a, **k: None,
                             progress=False)  # fmt: skip
        data = source.load_category("brick", 0, {(domain, "test")})
        got.append(data.pixels(domain, "test")[0])
        stats.append(dict(source.cache_stats))
    assert np.array_equal(got[0], got[1])
    # the second study decodes nothing and shifts nothing: every entry is a hit
    assert stats[1]["misses"] == 0 and stats[1]["hits"] > 0
