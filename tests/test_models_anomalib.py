"""anomalib adapters through the adapter contract (``check_model``).

Random weights and tiny images keep the default run short; the large networks (DRAEM,
EfficientAD at its minimum 256 px) and the packaged-weight runs are marked slow.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shiftbench.errors import ShiftbenchError
from shiftbench.models import create_model
from shiftbench.testing.models import check_model, synthetic_images

torch.set_num_threads(1)
IMAGES = synthetic_images(4, 40, 56)


def _factory(name, weights="random", **options):
    return lambda: create_model(name, weights=weights, **options)


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("anomalib-patchcore", {"image_size": 64}),
        ("anomalib-padim", {"image_size": 64}),
        ("anomalib-fastflow", {"image_size": 64, "epochs": 1, "batch_size": 2}),
        ("anomalib-stfpm", {"image_size": 64, "epochs": 1, "batch_size": 2}),
    ],
)
def test_check_model_anomalib_random_weights(name, options):
    out = check_model(_factory(name, **options), IMAGES)
    assert out["maps"].shape == (4, 40, 56)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["anomalib-patchcore", "anomalib-padim"])
def test_check_model_anomalib_packaged_weights(name):
    check_model(_factory(name, image_size=64, weights="imagenet"), IMAGES)


@pytest.mark.slow
def test_check_model_anomalib_draem_offline_fallback_is_named():
    model = create_model("anomalib-draem", image_size=32, epochs=1, batch_size=2)
    assert "Perlin" in model.input_config["offline_fallback"]
    check_model(_factory("anomalib-draem", image_size=32, epochs=1, batch_size=2), IMAGES)


@pytest.mark.slow
def test_check_model_anomalib_efficientad_offline_fallback_is_named():
    with pytest.warns(UserWarning, match="offline fallback"):
        model = create_model("anomalib-efficientad", weights="imagenet", max_steps=1).fit(
            IMAGES[:2]
        )
    assert "random PDN teacher" in model.input_config["offline_fallback"]
    check_model(_factory("anomalib-efficientad", max_steps=2), IMAGES, atol=1e-4)


def test_anomalib_patchcore_scores_are_raw_not_normalised():
    model = create_model("anomalib-patchcore", weights="random", image_size=64).fit(IMAGES[:2])
    scores, maps = model.score(IMAGES)
    # raw distances: not squeezed into [0, 1] by anomalib's post-processor
    assert scores.max() > 1.0 and maps.max() > 1.0
    assert np.unique(scores).size == scores.size


def test_anomalib_option_errors():
    with pytest.raises(ShiftbenchError, match="256"):
        create_model("anomalib-efficientad", image_size=64)
    with pytest.raises(ShiftbenchError, match="anomaly_source"):
        create_model("anomalib-draem", anomaly_source="/no/such/dir")
    with pytest.raises(ShiftbenchError, match="takes no --backbone"):
        create_model("anomalib-draem", backbone="resnet18")
