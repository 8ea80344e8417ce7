"""Same shift, same pixels: a member evaluated alone (one condition of a per-shift study,
``--suite each:NAME``) draws from (perturbation, severity, seed, image id) only, whichever
suite file it came from; a suite applied as a whole keeps drawing from its own name."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data
import yaml

from shiftbench.transforms import load_suite, rng_for, shift

SEVEN = [
    "cc_brightness", "cc_contrast", "cc_defocus_blur", "cc_gaussian_noise", "cc_fog",
    "cc_snow", "rotate",
]  # fmt: skip
THREE = ["cc_shot_noise", "cc_gaussian_noise", "cc_elastic_transform"]


def _write(tmp_path, name, members, **extra):
    path = tmp_path / f"{name}.yaml"
    spec = {"name": name, "severity": 3, "each": True, "perturbations": members, **extra}
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture(scope="module")
def image_and_mask():
    image = cv2.resize(skimage.data.chelsea(), (64, 64), interpolation=cv2.INTER_AREA)
    mask = np.zeros((64, 64), np.uint8)
    mask[20:40, 10:30] = 255
    return image, mask


@pytest.mark.parametrize("member", ["cc_gaussian_noise", "cc_fog", "cc_elastic_transform"])
def test_a_member_alone_gives_the_same_pixels_from_any_suite(tmp_path, image_and_mask, member):
    image, mask = image_and_mask
    seven = list(SEVEN)
    three = list(THREE)
    for members in (seven, three):  # put the member in both files, at different positions
        if member not in members:
            members.insert(1, member)
    a = load_suite(_write(tmp_path, "seven", seven), 3).alone(member)
    b = load_suite(_write(tmp_path, "three", three), 3).alone(member)
    assert a.name == f"seven-{member}" and b.name == f"three-{member}"  # labels keep the suite
    assert a.hash == b.hash  # one identity, hence one twins cache key
    for image_id in ("bottle/test/000", "bottle/test/001"):
        img_a, mask_a, params_a = a.apply(image, mask, seed=5, image_id=image_id)
        img_b, mask_b, params_b = b.apply(image, mask, seed=5, image_id=image_id)
        assert params_a == params_b
        np.testing.assert_array_equal(img_a, img_b)
        np.testing.assert_array_equal(mask_a, mask_b)
        # the same draws as the one-call API on the perturbation's name
        one = shift(image, member, 3, seed=5, image_id=image_id, mask=mask)
        np.testing.assert_array_equal(img_a, one[0])
        np.testing.assert_array_equal(mask_a, one[1])
    # ... and still a different draw for another image, seed or level
    base = a.apply(image, seed=5, image_id="bottle/test/000")[0]
    assert not np.array_equal(base, a.apply(image, seed=6, image_id="bottle/test/000")[0])
    c = load_suite(_write(tmp_path, "seven", seven), 4).alone(member)
    assert c.hash != a.hash


def test_whole_suites_keep_drawing_from_their_own_name(tmp_path, image_and_mask):
    """The default demo applies ``mvtec-shift`` as a whole: its params are still those of
    ``rng_for(seed, suite name, member key, ...)``, so its twins do not change."""
    image, mask = image_and_mask
    suite = load_suite("mvtec-shift", 3)
    params = suite.sample(seed=0, image_id="bottle/test/good/000", shape=image.shape)
    for m in suite.members:
        sev = m.perturbation.severity
        entry = dict(params[m.key])
        if m.p < 1.0:
            applied = rng_for(0, suite.name, m.key + "/p", sev, "bottle/test/good/000").random()
            assert entry.pop("applied") == bool(applied < m.p)
            if not entry:
                continue
        rng = rng_for(0, suite.name, m.key, sev, "bottle/test/good/000")
        assert entry == m.perturbation.sample_params(rng, image.shape)
    # two whole suites sharing a member draw it differently: the suite name seeds it
    a = load_suite(_write(tmp_path, "seven", SEVEN), 3)
    b = load_suite(_write(tmp_path, "three", THREE), 3)
    pa = a.sample(seed=5, image_id="x", shape=image.shape)["cc_gaussian_noise"]
    pb = b.sample(seed=5, image_id="x", shape=image.shape)["cc_gaussian_noise"]
    assert pa != pb


def test_the_identity_is_the_member_definition(tmp_path):
    """Options and ``p`` enter a member's identity (hash); the suite name, its other
    members and its description do not."""
    base = [{"name": "rotate", "options": {}}, "cc_fog"]
    other = ["cc_snow", {"name": "rotate"}]
    a = load_suite(_write(tmp_path, "a", base, description="one"), 2).alone("rotate")
    b = load_suite(_write(tmp_path, "b", other, description="two"), 2).alone("rotate")
    assert a.hash == b.hash
    half = load_suite(_write(tmp_path, "c", [{"name": "rotate", "p": 0.5}]), 2).alone("rotate")
    assert half.hash != a.hash
    # p < 1: the decision is drawn from the member's own stream as well
    img = np.zeros((32, 32, 3), np.uint8)
    decisions = [half.sample(seed=1, image_id=str(i), shape=img.shape) for i in range(40)]
    again = load_suite(_write(tmp_path, "d", ["cc_fog", {"name": "rotate", "p": 0.5}]), 2)
    assert decisions == [
        again.alone("rotate").sample(seed=1, image_id=str(i), shape=img.shape) for i in range(40)
    ]
    assert 5 < sum(d["rotate"]["applied"] for d in decisions) < 35
