"""Acquisition shifts (``acq_*``): contract, determinism, severity ordering, masks, and the
physical models stated in their docstrings, checked on hand-made inputs."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data
from skimage.metrics import structural_similarity

from shiftbench.testing import check_perturbation
from shiftbench.transforms import load_suite
from shiftbench.transforms.acquisition import _decode_lut, white_rgb
from shiftbench.transforms.registry import create, get_perturbation, known_names
from shiftbench.transforms.suites import suite_from_dict

SHIFTS = [n for n in known_names() if n.startswith("acq_")]
GEOMETRIC = ["acq_lens_distortion", "acq_camera_tilt", "acq_working_distance"]


def photo(side: int = 128) -> np.ndarray:
    return cv2.resize(skimage.data.astronaut(), (side, side), interpolation=cv2.INTER_AREA)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    return float(structural_similarity(a, b, channel_axis=2, data_range=255))


def params(name: str, severity: int, shape, draw: int = 0) -> dict:
    return create(name, severity=severity).sample_params(np.random.default_rng(draw), shape)


def linear(image: np.ndarray) -> np.ndarray:
    return _decode_lut()[image].astype(np.float64)


def test_the_catalogue():
    assert sorted(SHIFTS) == sorted(
        "acq_" + n
        for n in (
            "exposure", "white_balance", "vignetting", "sensor_noise", "hot_pixels",
            "chromatic_aberration", "lens_distortion", "camera_tilt", "working_distance",
        )
    )  # fmt: skip
    for name in SHIFTS:
        cls = get_perturbation(name)
        assert cls.catalogue == "acquisition"
        assert (cls.family == "geometric") == (name in GEOMETRIC)
    suite = load_suite("acquisition")
    assert suite.each
    assert [m.key for m in suite.members] == SHIFTS_IN_SUITE


SHIFTS_IN_SUITE = [
    "acq_exposure", "acq_white_balance", "acq_vignetting", "acq_sensor_noise",
    "acq_hot_pixels", "acq_chromatic_aberration", "acq_lens_distortion", "acq_camera_tilt",
    "acq_working_distance", "cc_jpeg_compression", "cc_motion_blur",
]  # fmt: skip


@pytest.mark.parametrize("name", SHIFTS)
def test_contract_at_64_px(name):
    checked = check_perturbation(get_perturbation(name), shapes=((64, 64),), draws=3)
    assert "identity at severity 0" in checked


@pytest.mark.parametrize("name", SHIFTS)
def test_deterministic_per_seed_and_image_id(name):
    image = photo(64)
    suite = suite_from_dict({"name": "t", "perturbations": [name]}, severity=4)
    a, _, pa = suite.apply(image, seed=5, image_id="cat/test/000")
    b, _, pb = suite.apply(image.copy(), seed=5, image_id="cat/test/000")
    assert pa == pb
    np.testing.assert_array_equal(a, b)
    others = [suite.apply(image, seed=5, image_id=f"cat/test/{i:03d}")[2] for i in range(1, 9)]
    assert any(p != pa for p in others)  # params vary between images


@pytest.mark.parametrize("name", SHIFTS)
def test_ssim_falls_with_severity(name):
    image = photo(128)
    for draw in range(4):
        values = [1.0]
        for s in range(1, 6):
            pert = create(name, severity=s)
            values.append(ssim(image, pert.apply(image, **params(name, s, image.shape, draw))))
        assert all(np.diff(values) <= 1e-3), (name, draw, np.round(values, 3))
        assert values[5] < min(0.99, values[1])  # smooth gains barely move SSIM


@pytest.mark.parametrize("name", GEOMETRIC)
@pytest.mark.parametrize("side", [64, 160])
def test_geometric_shifts_move_the_mask_with_the_image(name, side):
    mask = np.zeros((side, side), np.uint8)
    mask[side // 5 : side // 2, side // 3 : 4 * side // 5] = 255
    image = np.repeat(mask[:, :, None], 3, axis=2)  # a mask-coloured square
    pert = create(name, severity=5)
    for draw in range(3):
        p = params(name, 5, image.shape, draw)
        warped, warped_mask = pert.apply(image, **p), pert.apply_to_mask(mask, **p)
        assert not np.array_equal(warped_mask, mask)
        assert set(np.unique(warped_mask)) <= {0, 255}
        disagree = (warped[:, :, 0] > 127) != (warped_mask > 0)
        assert disagree.mean() < 0.005, (name, draw, disagree.sum())


# --------------------------------------------------------------------------- physics


def test_exposure_scales_linear_light_by_two_to_the_ev():
    pert = get_perturbation("acq_exposure")(severity=3)
    image = np.arange(0, 120, dtype=np.uint8).reshape(1, -1, 1).repeat(3, axis=2)
    out = pert.apply(image, ev=1.0, gamma=1.0)
    ratio = linear(out)[0, 20:, 0] / linear(image)[0, 20:, 0]
    assert np.allclose(ratio, 2.0, rtol=0.03)
    assert pert.apply(image, ev=3.0, gamma=1.0).max() == 255  # saturates
    p = params("acq_exposure", 3, (8, 8, 3))
    assert abs(p["ev"]) == 1.0 and (p["gamma"] < 1) == (p["ev"] > 0)


def test_white_balance_warm_and_cool():
    pert = get_perturbation("acq_white_balance")(severity=3)
    grey = np.full((4, 4, 3), 128, np.uint8)
    np.testing.assert_array_equal(pert.apply(grey, kelvin=6500.0), grey)
    warm = pert.apply(grey, kelvin=3200.0)[0, 0].astype(int)
    cool = pert.apply(grey, kelvin=12000.0)[0, 0].astype(int)
    assert warm[0] > warm[1] == 128 > warm[2]
    assert cool[0] < cool[1] == 128 < cool[2]
    # a 6500 K black body is close to the sRGB white point (D65)
    w = white_rgb(6500.0)
    assert np.allclose(w / w[1], 1.0, atol=0.06)
    kelvins = [params("acq_white_balance", s, (8, 8, 3), 0)["kelvin"] for s in range(6)]
    assert kelvins[0] == 6500.0 and len(set(kelvins)) == 6


def test_vignetting_follows_cos4_in_linear_light():
    pert = get_perturbation("acq_vignetting")(severity=3)
    grey = np.full((101, 101, 3), 180, np.uint8)
    out = pert.apply(grey, corner_loss=0.45, cx=0.0, cy=0.0)
    lin = linear(out)[:, :, 1] / linear(grey)[0, 0, 1]
    assert lin[50, 50] > 0.98
    assert abs(lin[0, 0] - 0.55) < 0.04  # corner gain = 1 - loss
    # cos^4 at half the corner distance: r = 0.5, f from the corner
    f = 1 / np.sqrt(0.55**-0.5 - 1)
    assert abs(lin[25, 25] - (1 + (0.5 / f) ** 2) ** -2) < 0.04


def test_sensor_noise_variance_is_poisson_gaussian():
    pert = get_perturbation("acq_sensor_noise")(severity=3)
    grey = np.full((256, 256, 3), 128, np.uint8)
    a, b = 1 / 500, 0.003
    out = pert.apply(grey, a=a, b=b, seed=1)
    x = linear(grey)[0, 0, 0]
    measured = linear(out).var()
    assert abs(measured / (a * x + b * b) - 1) < 0.1
    dark = pert.apply(np.full((256, 256, 3), 10, np.uint8), a=a, b=b, seed=1)
    assert linear(dark).var() < measured / 5  # shot noise grows with the signal


def test_hot_and_dead_pixels():
    pert = get_perturbation("acq_hot_pixels")(severity=4)
    grey = np.full((256, 256, 3), 128, np.uint8)
    out = pert.apply(grey, fraction=2.5e-3, seed=3)
    hot, dead = (out == 255).mean(), (out == 0).mean()
    assert abs(hot - 1.25e-3) < 4e-4 and abs(dead - 1.25e-3) < 4e-4
    assert ((out == 128) | (out == 255) | (out == 0)).all()
    low = pert.apply(grey, fraction=1e-3, seed=3)
    assert ((low != 128) <= (out != 128)).all()  # a higher level keeps the lower's defects


def test_chromatic_aberration_magnifies_red_against_green():
    pert = get_perturbation("acq_chromatic_aberration")(severity=5)
    image = np.zeros((201, 201, 3), np.uint8)
    cv2.circle(image, (170, 100), 4, (255, 255, 255), -1)  # a white dot right of centre
    out = pert.apply(image, k=0.05, cx=0.0, cy=0.0)
    np.testing.assert_array_equal(out[:, :, 1], image[:, :, 1])  # green (geometry) fixed

    def centroid_x(channel):
        ys, xs = np.nonzero(channel > 60)
        return xs.mean()

    # red magnified by 1.05 about the centre: x = 100 + 70 * 1.05; blue by 0.95
    assert abs(centroid_x(out[:, :, 0]) - 173.5) < 1
    assert abs(centroid_x(out[:, :, 2]) - 166.5) < 1


def test_lens_distortion_barrel_pulls_corners_in():
    pert = get_perturbation("acq_lens_distortion")(severity=5)
    mask = np.zeros((201, 201), np.uint8)
    mask[20:26, 20:26] = 255  # near the top-left corner
    mask[98:103, 98:103] = 255  # the centre
    barrel = pert.apply_to_mask(mask, k1=0.2)
    pincushion = pert.apply_to_mask(mask, k1=-0.2)
    assert (barrel[98:103, 98:103] == 255).all() and (pincushion[98:103, 98:103] == 255).all()
    ys, xs = np.nonzero(barrel[:60, :60])
    assert ys.mean() > 23 and xs.mean() > 23  # moved towards the centre
    ys, xs = np.nonzero(pincushion[:60, :60])
    assert ys.mean() < 22 and xs.mean() < 22


def test_camera_tilt_keeps_the_centre_and_keystones():
    pert = get_perturbation("acq_camera_tilt")(severity=5)
    h = pert.homography((200, 300, 3), 22.0, 0.0)  # about the vertical axis
    centre = h @ [149.5, 99.5, 1]
    assert np.allclose(centre[:2] / centre[2], [149.5, 99.5], atol=1e-6)
    corners = cv2.perspectiveTransform(
        np.array([[[0, 0], [0, 199], [299, 0], [299, 199]]], np.float32), h
    )[0]
    left, right = corners[1, 1] - corners[0, 1], corners[3, 1] - corners[2, 1]
    assert abs(left - right) > 10  # one side taller than the other: keystone


def test_working_distance_is_a_magnification_about_the_centre():
    pert = get_perturbation("acq_working_distance")(severity=3)
    m = pert.matrix((101, 101, 3), delta=0.25)
    np.testing.assert_allclose(m @ [50, 50, 1], [50, 50, 1])
    np.testing.assert_allclose(m @ [100, 50, 1], [50 + 50 / 1.25, 50, 1])
