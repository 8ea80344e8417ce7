"""``shiftbench.transforms.shift``: the one-call API equals the suites it stands for."""

from __future__ import annotations

import numpy as np
import pytest

from shiftbench.errors import ShiftbenchError
from shiftbench.transforms import load_suite, shift
from shiftbench.transforms.base import rng_for
from shiftbench.transforms.registry import create, list_perturbations
from shiftbench.transforms.suites import suite_from_dict

NAMES = [name for name, _family, _origin in list_perturbations()]


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def mask():
    m = np.zeros((40, 48), np.uint8)
    m[10:25, 12:30] = 255
    return m


@pytest.mark.parametrize("name", NAMES)
def test_a_perturbation_name_equals_the_perturbation_and_its_one_member_suite(name, image, mask):
    out, out_mask = shift(image, name, 4, seed=7, image_id="cat/test/x/001", mask=mask)
    suite = suite_from_dict({"name": name, "perturbations": [name]}, severity=4)
    ref, ref_mask, _ = suite.apply(image, mask, seed=7, image_id="cat/test/x/001")
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(out_mask, ref_mask)
    # spelled out: the perturbation's own params from rng_for(seed, name, name, ...)
    pert = create(name, severity=4)
    params = pert.sample_params(rng_for(7, name, name, 4, "cat/test/x/001"), image.shape)
    np.testing.assert_array_equal(out, pert.apply(image, **params))
    np.testing.assert_array_equal(out_mask, pert.apply_to_mask(mask, **params))


@pytest.mark.parametrize("suite_name", ["mvtec-shift", "geometric"])
def test_a_suite_name_equals_suite_apply(suite_name, image, mask):
    out, out_mask = shift(image, suite_name, severity=2, seed=3, image_id="a/b", mask=mask)
    ref, ref_mask, _ = load_suite(suite_name, severity=2).apply(image, mask, seed=3, image_id="a/b")
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(out_mask, ref_mask)
    assert not np.array_equal(out, image)


def test_a_suite_file_path(tmp_path, image):
    path = tmp_path / "mine.yaml"
    path.write_text("perturbations: [rotate, {name: gaussian_noise, p: 0.5}]\n")
    ref, _, _ = load_suite(path, severity=5).apply(image, seed=1, image_id="i")
    np.testing.assert_array_equal(shift(image, path, 5, seed=1, image_id="i"), ref)
    np.testing.assert_array_equal(shift(image, str(path), 5, seed=1, image_id="i"), ref)


def test_return_shape_depends_on_the_mask(image, mask):
    out = shift(image, "rotate")
    assert isinstance(out, np.ndarray) and out.shape == image.shape and out.dtype == np.uint8
    pair = shift(image, "rotate", mask=mask)
    assert isinstance(pair, tuple) and len(pair) == 2
    assert pair[1].shape == mask.shape and set(np.unique(pair[1])) <= {0, 255}
    np.testing.assert_array_equal(pair[0], out)  # the mask does not change the image


def test_deterministic_and_keyed_by_seed_and_image_id(image):
    a = shift(image, "mvtec-shift", seed=0, image_id="x")
    np.testing.assert_array_equal(a, shift(image, "mvtec-shift", seed=0, image_id="x"))
    assert not np.array_equal(a, shift(image, "mvtec-shift", seed=1, image_id="x"))
    assert not np.array_equal(a, shift(image, "mvtec-shift", seed=0, image_id="y"))


def test_severity_zero_is_the_identity_and_input_is_untouched(image, mask):
    before = image.copy()
    out, out_mask = shift(image, "mvtec-shift", 0, mask=mask)
    np.testing.assert_array_equal(out, image)
    np.testing.assert_array_equal(out_mask, mask)
    assert out is not image
    np.testing.assert_array_equal(image, before)


def test_illumination_name_is_the_same_as_the_shipped_suite(image):
    # the perturbation and the shipped single-member suite share a name, and the output
    np.testing.assert_array_equal(
        shift(image, "illumination", 5, image_id="q"),
        load_suite("illumination", severity=5).apply(image, seed=0, image_id="q")[0],
    )


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        (("float",), {}, ValueError, r"image must be uint8 \[H, W, C\]"),
        (("gray",), {}, ValueError, r"image must be uint8 \[H, W, C\]"),
        (("ok",), {"mask": "wrong_shape"}, ValueError, r"mask must be uint8 \(40, 48\)"),
        (
            ("ok",),
            {"mask": "list"},
            ValueError,
            r"mask must be uint8 \(40, 48\), got <class 'list'>",
        ),
        (
            ("ok", "rotat"),
            {},
            ShiftbenchError,
            "unknown perturbation or suite 'rotat'; did you mean 'rotate'",
        ),
        (("ok", "geometrc"), {}, ShiftbenchError, "did you mean 'geometric'"),
        (("ok", "rotate", 7), {}, ShiftbenchError, "severity 7 is not a level"),
        (("ok", "rotate", 2.5), {}, ShiftbenchError, "severity 2.5 is not a level"),
        (("ok", "rotate"), {"seed": -1}, ShiftbenchError, "seed -1 must be a non-negative integer"),
        (("ok", "/no/such/suite.yaml"), {}, ShiftbenchError, "suite file not found"),
        (("ok", 3), {}, TypeError, "name_or_suite must be a perturbation name"),
    ],
)
def test_bad_inputs_are_clear_errors(image, mask, args, kwargs, error, message):
    arrays = {
        "ok": image,
        "float": image.astype(np.float32),
        "gray": image[:, :, 0],
        "wrong_shape": mask[:, :-1],
        "list": [[0]],
    }
    first, *rest = args
    kwargs = {k: arrays.get(v, v) if isinstance(v, str) else v for k, v in kwargs.items()}
    rest = rest or ["rotate"]
    with pytest.raises(error, match=message):
        shift(arrays[first], *rest, **kwargs)


def test_a_suite_object_is_pointed_to_suite_apply(image):
    with pytest.raises(TypeError, match=r"call suite\.apply"):
        shift(image, load_suite("geometric"))
