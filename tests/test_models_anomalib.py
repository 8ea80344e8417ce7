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


# every registered model with random weights passes check_model: tests/test_contracts.py


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


# ----------------------------------------------------------------------------- shared plumbing
def test_importing_the_adapters_does_not_import_anomalib():
    import subprocess
    import sys

    code = (
        "import sys, shiftbench.models.anomalib, shiftbench.models.anomalib.compat; "
        "from shiftbench.models import list_models; list_models(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('anomalib', 'timm')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_training_batches_epochs_and_steps():
    from shiftbench.models.anomalib.base import _training_batches
    from shiftbench.models.base import seeded_generator

    x = torch.arange(5)
    epochs = list(_training_batches(x, 2, seeded_generator(0), epochs=2, steps=None))
    assert [len(b) for b in epochs] == [2, 2, 1, 2, 2, 1]
    assert sorted(torch.cat(epochs[:3]).tolist()) == [0, 1, 2, 3, 4]  # each epoch: every image once
    steps = list(_training_batches(x, 3, seeded_generator(0), epochs=None, steps=4))
    assert [len(b) for b in steps] == [3, 3, 3, 3]
    with pytest.raises(ValueError, match="exactly one"):
        list(_training_batches(x, 2, seeded_generator(0), epochs=1, steps=1))
    # min_batch folds a short tail into the batch before, drawing the same permutations
    folded = list(_training_batches(x, 2, seeded_generator(0), 2, None, min_batch=2))
    assert [len(b) for b in folded] == [2, 3, 2, 3]
    assert torch.equal(torch.cat(folded), torch.cat(epochs))
    even = list(_training_batches(torch.arange(6), 2, seeded_generator(0), 1, None, min_batch=2))
    assert [len(b) for b in even] == [2, 2, 2]  # nothing to fold: as without min_batch


@pytest.mark.slow
def test_draem_trains_when_an_epoch_ends_on_one_image():
    """9 images in batches of 8 at 32 px: a last batch of one image used to fail in DRAEM's
    batch norm (1x1 maps, one value per channel)."""
    model = create_model("anomalib-draem", weights="random", image_size=32, epochs=1)
    model.fit(synthetic_images(9, 40, 56, seed=2))
    assert np.isfinite(model.score(IMAGES[:2])[0]).all()


def test_training_loop_stops_on_a_non_finite_loss():
    model = create_model("anomalib-draem", image_size=32)
    model.model_ = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.model_.parameters(), lr=0.1)
    calls = []

    def loss(batch, gen):
        calls.append(len(batch))
        return model.model_(batch).sum() * float("nan")

    with pytest.raises(FloatingPointError, match="draem training loss"):
        model._train(torch.ones(4, 2), loss, opt, "draem training loss", epochs=3)
    assert calls == [4]


def test_contiguous_buffers_keeps_buffers_and_their_persistence():
    from shiftbench.models.anomalib.base import _contiguous_buffers

    module = torch.nn.Module()
    module.register_buffer("inv", torch.randn(3, 3).T)
    module.register_buffer("tmp", torch.randn(3, 4).T, persistent=False)
    values = {k: v.clone() for k, v in module.named_buffers()}
    _contiguous_buffers(module)
    assert all(b.is_contiguous() for b in module.buffers())
    assert all(torch.equal(values[k], v) for k, v in module.named_buffers())
    assert set(module.state_dict()) == {"inv"}


def test_resolved_layers_defaults_per_adapter():
    from shiftbench.models import backbones

    spec = backbones.get_backbone("resnet18")
    patchcore = create_model("anomalib-patchcore", backbone="resnet18", weights="random")
    padim = create_model("anomalib-padim", backbone="resnet18", weights="random")
    assert patchcore.resolved_layers == list(spec.patchcore_layers) == ["layer2", "layer3"]
    assert padim.resolved_layers == list(spec.feature_layers)
    custom = create_model(
        "anomalib-stfpm", backbone="resnet18", weights="random", layers=["layer1"]
    )
    assert custom.resolved_layers == ["layer1"]
    assert create_model("patchcore", backbone="resnet18", weights="random").resolved_layers == [
        "layer2",
        "layer3",
    ]


def test_quiet_logger_is_scoped():
    import logging

    from shiftbench.models.anomalib.base import quiet_logger

    logger = logging.getLogger("timm")
    before = logger.level
    with pytest.raises(RuntimeError), quiet_logger("timm"):
        assert logging.getLogger("timm.models._builder").getEffectiveLevel() == logging.ERROR
        raise RuntimeError
    assert logger.level == before
