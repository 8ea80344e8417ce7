"""Properties of the shifted twins (hypothesis) and the operations against independent references."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shiftbench.testing.perturbations import iou, marker_image, red_pixels
from shiftbench.transforms import load_suite
from shiftbench.transforms.geometric import ResizedCrop, Rotate, Translate
from shiftbench.transforms.illumination import SIGMA_FRACTION, gain_map
from shiftbench.transforms.photometric import ColorJitter, GaussianNoise
from shiftbench.transforms.registry import get_perturbation

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
shapes = st.tuples(st.integers(32, 96), st.integers(32, 96))
seeds = st.integers(0, 2**32 - 1)
ids = st.text("abcdefghij/_0123456789", min_size=1, max_size=24)
levels = st.integers(1, 5)


def _texture(seed: int, shape) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, shape[0] // 6), max(2, shape[1] // 6), 3), dtype=np.uint8)
    return cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


@SETTINGS
@given(shape=shapes, seed=seeds, image_id=ids, severity=st.integers(0, 5), fixture=seeds)
def test_geometric_suite_keeps_marker_and_mask_together(shape, seed, image_id, severity, fixture):
    image, mask = marker_image(np.random.default_rng(fixture), shape)
    out, m_out, _ = load_suite("geometric", severity=severity).apply(
        image, mask, seed=seed, image_id=image_id
    )
    assert set(np.unique(m_out)) <= {0, 255}
    assert iou(red_pixels(out), m_out > 0) >= 0.95


@SETTINGS
@given(shape=shapes, seed=seeds, image_id=ids, severity=st.integers(0, 5), fixture=seeds)
def test_mvtec_shift_mask_is_binary_aligned_and_empty_stays_empty(
    shape, seed, image_id, severity, fixture
):
    image, mask = marker_image(np.random.default_rng(fixture), shape)
    suite = load_suite("mvtec-shift", severity=severity)
    _, m_out, params = suite.apply(image, mask, seed=seed, image_id=image_id)
    # the mask is moved by the geometric members alone: same as the geometric suite's result
    geo_only = {k: v for k, v in params.items() if k in ("rotate", "resized_crop", "translate")}
    _, m_geo = load_suite("geometric", severity=severity).apply_params(image, mask, geo_only)
    np.testing.assert_array_equal(m_out, m_geo)
    assert set(np.unique(m_out)) <= {0, 255}
    _, empty_out, _ = suite.apply(image, np.zeros(shape, np.uint8), seed=seed, image_id=image_id)
    assert not empty_out.any()


@SETTINGS
@given(
    shape=shapes,
    seed=seeds,
    image_id=ids,
    severity=levels,
    fixture=seeds,
    suite_name=st.sampled_from(["photometric", "illumination"]),
)
def test_photometric_and_illumination_never_change_the_mask(
    shape, seed, image_id, severity, fixture, suite_name
):
    image, mask = marker_image(np.random.default_rng(fixture), shape)
    out, m_out, _ = load_suite(suite_name, severity=severity).apply(
        image, mask, seed=seed, image_id=image_id
    )
    np.testing.assert_array_equal(m_out, mask)
    assert out.dtype == np.uint8 and out.shape == image.shape


@pytest.mark.parametrize("suite_name", ["mvtec-shift", "geometric", "photometric", "illumination"])
def test_mean_absolute_change_grows_with_severity(suite_name):
    images = [_texture(i, (64, 64)) for i in range(12)]
    changes = []
    for severity in range(6):
        suite = load_suite(suite_name, severity=severity)
        diffs = [
            np.abs(suite.apply(img, seed=0, image_id=f"img{i}")[0].astype(np.int16) - img).mean()
            for i, img in enumerate(images)
        ]
        changes.append(float(np.mean(diffs)))
    assert changes[0] == 0.0
    assert all(b > a for a, b in zip(changes, changes[1:], strict=False)), changes


@pytest.mark.parametrize(
    "name",
    [
        "rotate",
        "resized_crop",
        "translate",
        "color_jitter",
        "gaussian_blur",
        "gaussian_noise",
        "illumination",
    ],
)
def test_each_perturbation_changes_more_at_higher_severity(name):
    images = [_texture(i, (48, 48)) for i in range(16)]
    cls = get_perturbation(name)
    changes = []
    for severity in (1, 3, 5):
        pert = cls(severity=severity)
        total = 0.0
        for i, img in enumerate(images):
            params = pert.sample_params(np.random.default_rng(i), img.shape)
            total += np.abs(pert.apply(img, **params).astype(np.int16) - img).mean()
        changes.append(total)
    assert changes[0] < changes[1] < changes[2], changes


# --------------------------------------------------------------------------- geometry, by hand


def _centroid(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


@pytest.mark.parametrize(
    ("pert", "params", "expected"),
    [
        # 90 degrees counter-clockwise about the centre (31.5, 31.5): (x, y) -> (y, 63 - x)
        (Rotate(), {"angle": 90.0}, lambda x, y: (y, 63 - x)),
        (Translate(), {"dx": 0.125, "dy": -0.25}, lambda x, y: (x + 8, y - 16)),
        # crop x in [16, 48), y in [0, 64) stretched to the full width: x -> (x - 16 + .5) * 2 - .5
        (
            ResizedCrop(),
            {"x": 0.25, "y": 0.0, "w": 0.5, "h": 1.0},
            lambda x, y: ((x - 16 + 0.5) * 2 - 0.5, y),
        ),
    ],
)
def test_geometric_maps_move_a_block_where_the_formula_says(pert, params, expected):
    mask = np.zeros((64, 64), np.uint8)
    mask[20:26, 24:30] = 255  # centroid (26.5, 22.5)
    moved = pert.apply_to_mask(mask, **params)
    np.testing.assert_allclose(_centroid(moved), expected(26.5, 22.5), atol=0.6)
    image = np.repeat(mask[:, :, None], 3, axis=2)
    np.testing.assert_allclose(
        _centroid(pert.apply(image, **params)[:, :, 0] > 127), expected(26.5, 22.5), atol=0.6
    )


def test_resized_crop_matches_albumentations_crop_and_resize():
    from albumentations.augmentations.crops import functional as fcrops
    from albumentations.augmentations.geometric import functional as fgeometric

    image = _texture(3, (64, 64))
    params = {"x": 0.125, "y": 0.0625, "w": 0.75, "h": 0.875}  # box x 8..56, y 4..60
    reference = fgeometric.resize(fcrops.crop(image, 8, 4, 56, 60), (64, 64), cv2.INTER_LINEAR)
    ours = ResizedCrop().apply(image, **params)
    # interior pixels agree to rounding; borders may differ by the reflection rule
    diff = np.abs(ours[2:-2, 2:-2].astype(int) - reference[2:-2, 2:-2].astype(int))
    assert diff.max() <= 2


def test_composed_warp_is_close_to_sequential_warps():
    image, mask = marker_image(np.random.default_rng(5), (96, 96))
    suite = load_suite("geometric", severity=3)
    fused, fused_mask, params = suite.apply(image, mask, seed=4, image_id="z")
    seq, seq_mask = image, mask
    for m in suite.members:
        seq = m.perturbation.apply(seq, **params[m.key])
        seq_mask = m.perturbation.apply_to_mask(seq_mask, **params[m.key])
    # three nearest-neighbour passes each round edges by up to half a pixel; one pass does once
    assert iou(fused_mask > 0, seq_mask > 0) > 0.93
    np.testing.assert_allclose(_centroid(fused_mask), _centroid(seq_mask), atol=1.0)
    assert np.abs(fused.astype(int) - seq.astype(int))[8:-8, 8:-8].mean() < 6


# --------------------------------------------------------------------------- photometric references


def test_color_jitter_matches_torchvision():
    from torchvision.transforms.v2 import functional as tvf

    image = _texture(1, (40, 40))
    params = {"brightness": 1.2, "contrast": 0.8, "saturation": 1.25}
    ours = ColorJitter().apply(image, **params)
    t = torch.from_numpy(image).permute(2, 0, 1)
    t = tvf.adjust_brightness(t, 1.2)
    t = tvf.adjust_contrast(t, 0.8)
    t = tvf.adjust_saturation(t, 1.25)
    ref = t.permute(1, 2, 0).numpy()
    assert np.abs(ours.astype(int) - ref.astype(int)).max() <= 2


def test_gaussian_noise_has_the_recorded_sigma_and_equals_rounded_addition():
    image = np.full((256, 256, 3), 128, np.uint8)
    out = GaussianNoise().apply(image, sigma=0.04, noise_seed=11)
    noise = out.astype(np.float64) - 128
    assert abs(noise.std() - 0.04 * 255) < 0.05 * 0.04 * 255
    assert abs(noise.mean()) < 0.1
    # saturation at the ends, never wrap-around
    bright = GaussianNoise().apply(np.full((64, 64, 3), 250, np.uint8), sigma=0.05, noise_seed=3)
    assert bright.min() > 200 and (bright == 255).any()
    # channels get independent noise
    assert np.corrcoef(noise[..., 0].ravel(), noise[..., 1].ravel())[0, 1] < 0.05


def test_illumination_gain_runs_from_dark_to_one_with_the_right_shape():
    shape = (256, 256)
    for side, axis, lit_end in (("left", 1, 0), ("right", 1, -1), ("top", 0, 0), ("bottom", 0, -1)):
        gain = gain_map(shape, mode="linear", dark=0.5, side=side)
        assert gain.min() == pytest.approx(0.5, abs=0.01) and gain.max() == pytest.approx(
            1.0, abs=0.01
        )
        profile = gain.mean(axis=1 - axis)
        assert profile[lit_end] > 0.97 and profile[-1 - lit_end if lit_end == 0 else 0] < 0.53
        assert np.all(np.diff(profile if lit_end == -1 else profile[::-1]) >= -1e-6)  # monotone
    centre = gain_map(shape, mode="radial", dark=0.4, lit="centre", cx=0.5, cy=0.5)
    edge = gain_map(shape, mode="radial", dark=0.4, lit="edge", cx=0.5, cy=0.5)
    assert centre[128, 128] > 0.95 and centre[0, 0] < 0.45
    assert edge[128, 128] < 0.45 and edge[0, 0] > 0.95
    # the tip of the cone is rounded off by the Gaussian: no kink at the centre
    assert np.abs(np.diff(centre[128, 120:137], 2)).max() < 1e-3


def test_illumination_transition_scales_with_image_size():
    assert SIGMA_FRACTION * 1024 == 80
    small = gain_map((128, 128), mode="radial", dark=0.5, lit="centre", cx=0.5, cy=0.5)
    big = gain_map((512, 512), mode="radial", dark=0.5, lit="centre", cx=0.5, cy=0.5)
    np.testing.assert_allclose(
        cv2.resize(big, (128, 128), interpolation=cv2.INTER_AREA), small, atol=0.01
    )


def test_illumination_reaches_half_of_mvtec_shift_images_deterministically():
    suite = load_suite("mvtec-shift")
    flags = [
        suite.sample(seed=0, image_id=f"cat/test/good/{i:03d}", shape=(8, 8, 3))["illumination"][
            "applied"
        ]
        for i in range(400)
    ]
    again = [
        suite.sample(seed=0, image_id=f"cat/test/good/{i:03d}", shape=(8, 8, 3))["illumination"][
            "applied"
        ]
        for i in range(400)
    ]
    assert flags == again
    assert 0.43 < np.mean(flags) < 0.57  # binomial(400, 0.5): 3.5 sd
