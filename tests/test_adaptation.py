"""Adaptation strategies against hand-worked and brute-force cases (tiny random models)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shiftbench.adaptation import AdaptTarget, adaptation_names, get_adaptation
from shiftbench.adaptation.base import normal_threshold
from shiftbench.adaptation.batchnorm import PRIOR
from shiftbench.errors import ShiftbenchError
from shiftbench.models import create_model
from shiftbench.models.features import features, score_features
from shiftbench.testing import check_adaptation
from shiftbench.testing.adaptations import CHECK_TRAIN
from shiftbench.testing.models import synthetic_images

TEST = synthetic_images(5, 32, 32, seed=1)
TARGET = synthetic_images(3, 32, 32, seed=2)


@pytest.fixture(scope="module")
def fitted():
    """A tiny native PatchCore (exact bank) and autoencoder, fitted once on CHECK_TRAIN."""
    train = CHECK_TRAIN()
    pc = create_model("patchcore", weights="random", image_size=32, coreset_ratio=1.0, seed=0)
    ae = create_model("ae", image_size=32, epochs=1, batch_size=4, seed=0)
    return {"patchcore": pc.fit(train), "ae": ae.fit(train)}


#: the refits fit, the batch-norm ones copy and run the backbone: slow on a loaded CPU
_SLOW = pytest.mark.slow


@pytest.mark.parametrize(
    "name",
    [
        "bank-extend",
        "feature-align",
        "recalibrate",
        pytest.param("refit", marks=_SLOW),
        pytest.param("refit-k", marks=_SLOW),
        pytest.param("bn-adapt", marks=_SLOW),
        pytest.param("test-bn", marks=_SLOW),
    ],
)
def test_contract_holds_for_every_builtin(name, fitted):
    assert name in adaptation_names()
    check_adaptation(name, models=list(fitted.values()))


def test_features_score_exactly_as_a_forward_pass(fitted):
    model = fitted["patchcore"]
    scores, maps = model.score(TEST)
    again, again_maps = score_features(model, features(model, TEST))
    assert np.array_equal(scores, again) and np.array_equal(maps, again_maps)


def test_bank_extend_with_an_exact_bank_equals_a_refit_on_clean_plus_the_k_images(fitted):
    model = fitted["patchcore"]
    extended = get_adaptation("bank-extend").adapt(model, AdaptTarget(TARGET))
    refit = create_model("patchcore", weights="random", image_size=32, coreset_ratio=1.0, seed=0)
    refit.fit(np.concatenate([CHECK_TRAIN(), TARGET]))
    assert torch.equal(extended.memory_bank_, refit.memory_bank_)
    s_ext, m_ext = extended.score(TEST)
    s_ref, m_ref = refit.score(TEST)
    assert np.array_equal(s_ext, s_ref) and np.array_equal(m_ext, m_ref)
    # and it did lower the scores of the target images themselves to ~0 (they are in the bank)
    assert extended.score(TARGET)[0].max() < model.score(TARGET)[0].min()


def _running(name: str) -> bool:
    return name.endswith(("running_mean", "running_var"))


@pytest.mark.parametrize("which", ["patchcore", "ae"])
def test_bn_adapt_changes_only_batch_norm_running_statistics(which, fitted):
    model = fitted[which]
    adapted = get_adaptation("bn-adapt").adapt(model, AdaptTarget(TARGET))
    net = "extractor_" if which == "patchcore" else "net_"
    before = getattr(model, net).state_dict()
    after = getattr(adapted, net).state_dict()
    assert before.keys() == after.keys()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed and all(_running(k) for k in changed)
    if which == "patchcore":
        assert torch.equal(model.memory_bank_, adapted.memory_bank_)


def test_bn_adapt_mixes_source_and_target_statistics_by_k_over_k_plus_prior(fitted):
    """The first batch norm of the autoencoder, by hand: its input is the first conv's
    output, whose mean and unbiased variance over the k images and all positions are the
    target statistics; mixed with weight k / (k + 16)."""
    model = fitted["ae"]
    adapted = get_adaptation("bn-adapt").adapt(model, AdaptTarget(TARGET))
    conv, bn = model.net_.encoder[0][0], model.net_.encoder[0][1]
    with torch.no_grad():
        out = conv(model._prepare(TARGET))
    mu = out.mean((0, 2, 3))
    var = out.var((0, 2, 3), unbiased=True)
    a = len(TARGET) / (len(TARGET) + PRIOR)
    new = adapted.net_.encoder[0][1]
    torch.testing.assert_close(new.running_mean, (1 - a) * bn.running_mean + a * mu)
    torch.testing.assert_close(new.running_var, (1 - a) * bn.running_var + a * var)


def test_feature_align_maps_target_patch_statistics_onto_the_source(fitted):
    """After standardisation + CORAL, the aligned target patches have the source's
    per-channel means (exactly) and standard deviations (up to the identity regulariser)."""
    from shiftbench.adaptation.align import FeatureAligned, _patches, alignment

    model = fitted["patchcore"]
    source = _patches(features(model, CHECK_TRAIN()))
    target = _patches(features(model, TARGET))
    params = alignment(source, target, coral=False)
    aligned = FeatureAligned(params)(features(model, TARGET).flat())
    flat = aligned.movedim(1, -1).reshape(-1, aligned.shape[1]).double()
    torch.testing.assert_close(flat.mean(0), source.mean(0), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(flat.std(0), source.std(0).clamp_min(1e-6), atol=1e-3, rtol=1e-3)


def test_recalibrate_leaves_the_model_and_states_its_rule():
    strategy = get_adaptation("recalibrate")
    model = object()
    assert strategy.adapt(model, AdaptTarget(TARGET)) is model
    assert normal_threshold([1.0, 3.0, 2.0]) == 3.0  # k < 4: the maximum
    v = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    assert normal_threshold(v) == pytest.approx(v.mean() + 3 * v.std(ddof=1))


def test_strategies_that_do_not_apply_say_why(fitted):
    assert "memory bank" in get_adaptation("bank-extend").applies_to(fitted["ae"])
    assert "feature API" in get_adaptation("feature-align").applies_to(fitted["ae"])
    assert get_adaptation("bn-adapt").applies_to(fitted["ae"]) is None


def test_unknown_strategy_suggests_close_names():
    with pytest.raises(ShiftbenchError, match="did you mean 'bank-extend'"):
        get_adaptation("bank-extnd")
