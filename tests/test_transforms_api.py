"""Perturbation API, registry, suites (YAML) and the contract helper catching broken plugins."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from shiftbench.errors import ShiftbenchError
from shiftbench.testing import check_perturbation
from shiftbench.transforms import GeometricPerturbation, Perturbation, load_suite, register
from shiftbench.transforms import registry as reg
from shiftbench.transforms.base import rng_for, stable_hash
from shiftbench.transforms.suites import list_suites, suite_from_dict

BUILTINS = [
    "rotate",
    "resized_crop",
    "translate",
    "color_jitter",
    "gaussian_blur",
    "gaussian_noise",
    "illumination",
]


@pytest.fixture
def clean_registry():
    """Undo test registrations."""
    reg.known_names()  # load the built-ins before the snapshot
    before = dict(reg._REGISTRY)
    yield
    reg._REGISTRY.clear()
    reg._REGISTRY.update(before)


def test_stable_hash_is_the_sha256_prefix():
    expected = int.from_bytes(hashlib.sha256(b"bottle/test/crack/000").digest()[:8], "little")
    assert stable_hash("bottle/test/crack/000") == expected
    assert stable_hash(7) == int.from_bytes(hashlib.sha256(b"7").digest()[:8], "little")


def test_rng_for_depends_on_every_part_and_nothing_else():
    base = (0, "mvtec-shift", "rotate", 3, "a/b/c/1")
    draw = rng_for(*base).random(4)
    np.testing.assert_array_equal(draw, rng_for(*base).random(4))
    for i, other in enumerate((1, "geometric", "translate", 2, "a/b/c/2")):
        changed = list(base)
        changed[i] = other
        assert not np.array_equal(draw, rng_for(*changed).random(4)), f"part {i} ignored"
    # the documented construction, spelled out independently
    seq = np.random.SeedSequence(
        [0, stable_hash("mvtec-shift"), stable_hash("rotate"), 3, stable_hash("a/b/c/1")]
    )
    np.testing.assert_array_equal(draw, np.random.default_rng(seq).random(4))


def test_geometric_perturbation_without_mask_transform_is_refused_at_class_creation():
    with pytest.raises(TypeError, match="must define apply_to_mask"):

        class Shear(GeometricPerturbation):  # noqa: F841 - the class statement itself must fail
            name = "shear"

            def sample_params(self, rng, shape):
                return {}

            def apply(self, image, **params):
                return image


def test_geometric_perturbation_with_mask_transform_is_accepted():
    class Flip(GeometricPerturbation):
        name = "flip_test"

        def sample_params(self, rng, shape):
            return {"flip": bool(self.severity and rng.random() < 0.5)}

        def apply(self, image, *, flip):
            return image[:, ::-1].copy() if flip else image.copy()

        def apply_to_mask(self, mask, *, flip):
            return mask[:, ::-1].copy() if flip else mask.copy()

    assert "marker alignment" in check_perturbation(Flip)


def test_unknown_perturbation_lists_known_names():
    with pytest.raises(ShiftbenchError) as err:
        reg.get_perturbation("rotat")
    msg = str(err.value)
    assert "unknown perturbation 'rotat'" in msg
    for name in BUILTINS:
        assert name in msg


def test_list_perturbations_has_builtins_with_families():
    rows = {name: (family, origin) for name, family, origin in reg.list_perturbations()}
    assert rows["rotate"] == ("geometric", "builtin")
    assert rows["gaussian_noise"] == ("photometric", "builtin")
    assert rows["illumination"] == ("illumination", "builtin")
    assert set(BUILTINS) <= set(rows)


def test_register_decorator_by_name_and_conflicts(clean_registry):
    @register("invert_test")
    class Invert(Perturbation):
        family = "photometric"

        def sample_params(self, rng, shape):
            return {}

        def apply(self, image):
            return image.copy() if self.severity == 0 else 255 - image

    assert Invert.name == "invert_test"
    assert reg.get_perturbation("invert_test") is Invert
    assert ("invert_test", "photometric", f"registered in {__name__}") in reg.list_perturbations()
    suite = suite_from_dict({"name": "x", "perturbations": ["invert_test"]})
    out, _, _ = suite.apply(np.zeros((4, 4, 3), np.uint8), seed=0, image_id="a")
    assert (out == 255).all()
    with pytest.raises(ShiftbenchError, match="'rotate' is taken"):

        @register("rotate")
        class Other(Invert):
            pass


# every registered perturbation passes the contract: tests/test_contracts.py


def test_severity_out_of_range_is_a_user_error():
    with pytest.raises(ShiftbenchError, match="severity 6 is not a level"):
        reg.create("rotate", severity=6)
    with pytest.raises(ShiftbenchError, match="--severity: severity 9"):
        load_suite("mvtec-shift", severity=9)


# --------------------------------------------------------------------------- the helper itself


class _Base(Perturbation):
    family = "photometric"

    def sample_params(self, rng, shape):
        return {"v": float(rng.uniform(0, 1)) * self.severity}

    def apply(self, image, *, v):
        return np.clip(image.astype(np.int16) + round(20 * v), 0, 255).astype(np.uint8)


class _Impure(_Base):
    name = "impure"

    def apply(self, image, *, v):
        return np.clip(image + np.random.randint(0, 3 * (v > 0) + 1, image.shape), 0, 255).astype(
            np.uint8
        )


class _GlobalRandom(_Base):
    name = "global_random"

    def sample_params(self, rng, shape):
        return {"v": float(np.random.random()) * self.severity}


class _ArrayParams(_Base):
    name = "array_params"

    def sample_params(self, rng, shape):
        return {"v": 0.0, "field": rng.random(3)}

    def apply(self, image, *, v, field):
        return image.copy()


class _NotIdentity(_Base):
    name = "not_identity"

    def apply(self, image, *, v):
        return np.clip(image.astype(np.int16) + 1, 0, 255).astype(np.uint8)


class _TouchesMask(_Base):
    name = "touches_mask"

    def apply_to_mask(self, mask, *, v):
        return np.zeros_like(mask) if v else mask


class _LazyMask(GeometricPerturbation):
    """Moves the image but forgets to move the mask (returns it unchanged)."""

    name = "lazy_mask"

    def sample_params(self, rng, shape):
        return {"dx": int(rng.integers(8, 12)) if self.severity else 0}

    def apply(self, image, *, dx):
        return np.roll(image, dx, axis=1)

    def apply_to_mask(self, mask, *, dx):
        return mask.copy()


class _SoftMask(GeometricPerturbation):
    """Moves the mask with bilinear blending: values leave {0, 255}."""

    name = "soft_mask"

    def sample_params(self, rng, shape):
        return {"a": 0.5 if self.severity else 0.0}

    def apply(self, image, *, a):
        return image.copy()

    def apply_to_mask(self, mask, *, a):
        if not a:
            return mask.copy()
        return ((mask.astype(np.float32) + np.roll(mask, 1, axis=1)) * a).astype(np.uint8)


class _NoSeverityCheck(_Base):
    name = "no_severity_check"

    def __init__(self, severity=3):
        self.severity = severity


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        (_Impure, "apply is not deterministic"),
        (_GlobalRandom, "not a function of the given rng"),
        (_ArrayParams, "not JSON-serialisable"),
        (_NotIdentity, "severity 0 must be the identity"),
        (_TouchesMask, "must leave the mask unchanged"),
        (_LazyMask, "marker and its mask no longer coincide"),
        (_SoftMask, r"masks must stay in \{0, 255\}"),
        (_NoSeverityCheck, "severity -1 was accepted"),
    ],
)
def test_contract_helper_catches_broken_perturbations(cls, message):
    with pytest.raises(AssertionError, match=message):
        check_perturbation(cls, draws=2)


# --------------------------------------------------------------------------- suites


def test_shipped_suites_are_listed_and_load():
    names = dict(list_suites())
    assert set(names) == {
        "mvtec-shift",
        "geometric",
        "photometric",
        "illumination",
        "common-corruptions",
        "common-corruptions-extra",
        "adshift",
        "acquisition",
    }
    assert all(load_suite(n).each for n in ("common-corruptions", "adshift", "acquisition"))
    families = {
        "geometric": {"geometric"},
        "photometric": {"photometric"},
        "illumination": {"illumination"},
        "mvtec-shift": {"geometric", "photometric", "illumination"},
    }
    for name, fams in families.items():
        suite = load_suite(name)
        assert suite.name == name
        assert {m.perturbation.family for m in suite.members} == fams
        assert all(m.perturbation.severity == 3 for m in suite.members)
    p = {m.key: m.p for m in load_suite("mvtec-shift").members}
    assert p["illumination"] == 0.5 and p["rotate"] == 1.0


def test_suite_hash_is_sha256_of_the_canonical_definition_and_tracks_changes():
    suite = load_suite("mvtec-shift")
    text = json.dumps(suite.definition(), sort_keys=True, separators=(",", ":"))
    assert suite.hash == hashlib.sha256(text.encode()).hexdigest()
    assert load_suite("mvtec-shift").hash == suite.hash
    assert load_suite("mvtec-shift", severity=2).hash != suite.hash
    assert load_suite("geometric").hash != suite.hash


def test_suite_severity_scales_every_member():
    suite = load_suite("mvtec-shift", severity=5)
    assert suite.severity == 5
    assert {m.perturbation.severity for m in suite.members} == {5}


def test_user_yaml_mixing_options_probability_and_repeats(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(
        "severity: 2\n"
        "perturbations:\n"
        "  - rotate\n"
        "  - {name: rotate, severity: 4, options: {border: constant}}\n"
        "  - {name: gaussian_noise, p: 0.25}\n"
    )
    suite = load_suite(path)
    assert suite.name == "mine"
    assert [m.key for m in suite.members] == ["rotate", "rotate#2", "gaussian_noise"]
    assert [m.perturbation.severity for m in suite.members] == [2, 4, 2]
    assert suite.members[1].perturbation.border == "constant"
    _, _, params = suite.apply(np.zeros((16, 16, 3), np.uint8), seed=1, image_id="x")
    assert set(params) == {"rotate", "rotate#2", "gaussian_noise"}
    assert "applied" in params["gaussian_noise"] and "applied" not in params["rotate"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "perturbations: [rotat]\n",
            r"perturbations\[0\]: unknown perturbation 'rotat'; did you mean 'rotate'\? "
            r"known: .*color_jitter",
        ),
        ("perturbations: []\n", "'perturbations' must be a non-empty list"),
        (
            "perturbations: [{name: rotate, p: 1.5}]\n",
            r"perturbations\[0\]\.p: 1.5 is not a probability",
        ),
        ("perturbations: [{name: rotate, severity: 7}]\n", "severity 7 is not a level"),
        ("perturbations: [{name: rotate, options: {border: wrap}}]\n", "border 'wrap' unknown"),
        ("perturbations: [{name: rotate, options: {angle: 3}}]\n", "bad options"),
        ("perturbations: [rotate]\nseverity_: 3\n", r"unknown key\(s\) \['severity_'\]"),
        ("perturbations: [rotate\n", "not valid YAML"),
    ],
)
def test_bad_suite_files_name_the_file_and_key(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ShiftbenchError, match=message) as err:
        load_suite(path)
    assert str(path) in str(err.value)


def test_unknown_suite_name_and_missing_file():
    with pytest.raises(
        ShiftbenchError,
        match="unknown suite 'mvtec'; did you mean 'mvtec-shift'\\? shipped suites: .*geometric, illumination, mvtec-shift",
    ):
        load_suite("mvtec")
    with pytest.raises(ShiftbenchError, match="suite file not found"):
        load_suite("/nonexistent/suite.yaml")
