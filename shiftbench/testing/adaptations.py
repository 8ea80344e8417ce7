"""``check_adaptation``: the contract every adaptation strategy must satisfy. A plugin
author runs it against their own strategy::

    from shiftbench.testing import check_adaptation
    check_adaptation(MyStrategy)            # or a registered name: check_adaptation("bn-adapt")

On tiny random-weight models (native PatchCore and the autoencoder, or the models given)
it checks: the declarations (``target_data``, ``threshold``, ``transductive`` only with
``unlabelled-test``, the manifest record); ``applies_to`` returns None or a reason; for
each model it applies to, ``adapt`` returns a fitted model with finite scores of the
right shapes, leaves the clean model's scores and state untouched, is deterministic, and
reads no more than it declares (``AdaptTarget.source_images`` only for ``refit-k``-like
strategies that ask for it); a strategy that declares ``changes_backbone = False`` scores
the clean model's features (:mod:`shiftbench.models.features`) exactly as a forward pass;
the normal-only threshold rule returns finite thresholds. Failures raise ``AssertionError``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from shiftbench.testing.models import _require, synthetic_images


def CHECK_TRAIN() -> np.ndarray:  # noqa: N802 - a constant, made on demand
    """The training images of the check's models (fit a model on them to pass it in)."""
    return synthetic_images(6, 32, 32, seed=0)


def _tiny_models() -> list[Callable[[], Any]]:
    from shiftbench.models import create_model

    return [
        lambda: create_model("patchcore", weights="random", image_size=32, coreset_ratio=0.5),
        lambda: create_model("ae", image_size=32, epochs=1, batch_size=4),
    ]


def _state(model) -> list:
    return [t.detach().clone() for t in model._state_tensors()]


def check_adaptation(strategy: Any, models: list[Callable[[], Any]] | None = None) -> None:
    """Run the contract on ``strategy`` (an Adaptation subclass, instance or registered
    name) with the models of ``models``: zero-argument factories of unfitted models, or
    models already fitted on :func:`CHECK_TRAIN` (default: tiny native PatchCore and
    autoencoder). Raises ``AssertionError`` naming the broken rule."""
    from shiftbench.adaptation import TARGET_DATA, THRESHOLD_RULES, Adaptation, AdaptTarget
    from shiftbench.adaptation.registry import get_adaptation

    if isinstance(strategy, str):
        strategy = get_adaptation(strategy)
    elif isinstance(strategy, type):
        strategy = strategy()
    name = strategy.name or type(strategy).__name__
    _require(isinstance(strategy, Adaptation), f"{name}: not an Adaptation")
    _require(strategy.target_data in TARGET_DATA, f"{name}: target_data not in {TARGET_DATA}")
    _require(strategy.threshold in THRESHOLD_RULES, f"{name}: unknown threshold rule")
    _require(
        strategy.transductive == (strategy.target_data == "unlabelled-test"),
        f"{name}: transductive exactly when the target data is the unlabelled test images",
    )
    _require(
        strategy.threshold != "val-shift" or strategy.target_data == "train-shift",
        f"{name}: only a strategy that reads Train-shift may threshold on Val-shift",
    )
    record = strategy.record()
    _require(
        set(record) == {"target_data", "transductive", "threshold"}
        and isinstance(record["threshold"], str),
        f"{name}: record() must give target_data, transductive and a threshold sentence",
    )
    train = CHECK_TRAIN()
    test = synthetic_images(4, 32, 32, seed=1)
    target_images = synthetic_images(2, 32, 32, seed=2)
    applied = 0
    for make in models or _tiny_models():
        model = make if getattr(make, "is_fitted", False) else make().fit(CHECK_TRAIN())
        reason = strategy.applies_to(model)
        _require(
            reason is None or (isinstance(reason, str) and reason),
            f"{name}: applies_to must return None or a non-empty reason",
        )
        if reason is not None:
            continue
        applied += 1
        _check_one(strategy, name, model, train, test, target_images, AdaptTarget)
    _require(applied or models is None, f"{name}: applies to none of the models given")


def _check_one(strategy, name, model, train, test, target_images, AdaptTarget) -> None:
    from shiftbench.models.features import features, has_features, score_features

    mname = model.name
    before_scores, _ = model.score(test)
    before_state = _state(model)
    images = test if strategy.target_data == "unlabelled-test" else target_images

    def target():
        return AdaptTarget(
            images.copy(),
            tuple(f"t{i}" for i in range(len(images))),
            source_images=train,
            source_features=lambda: features(model, train) if has_features(model) else None,
        )

    adapted = strategy.adapt(model, target())
    _require(adapted.is_fitted, f"{name} on {mname}: the adapted model must be fitted")
    scores, maps = adapted.score(test)
    _require(
        scores.shape == (len(test),) and maps.shape == test.shape[:3],
        f"{name} on {mname}: adapted scores [N] and maps [N,H,W]",
    )
    _require(np.isfinite(scores).all() and np.isfinite(maps).all(), f"{name}: non-finite scores")
    after_scores, _ = model.score(test)
    _require(
        np.array_equal(before_scores, after_scores)
        and all(a.equal(b) for a, b in zip(before_state, _state(model), strict=True)),
        f"{name} on {mname}: adapt() must not change the clean model (adapt a copy)",
    )
    again, _ = strategy.adapt(model, target()).score(test)
    _require(np.array_equal(scores, again), f"{name} on {mname}: adapt() is not deterministic")
    if not strategy.changes_backbone and has_features(model):
        reused, _ = score_features(adapted, features(model, test))
        _require(
            np.array_equal(reused, scores),
            f"{name} on {mname}: declares changes_backbone=False, but scoring the clean "
            "model's features differs from a forward pass (set changes_backbone=True)",
        )
    if strategy.threshold == "normal-k":
        s, m = adapted.score(target_images)
        image, pixel = strategy.pick_threshold(s, m)
        _require(np.isfinite([image, pixel]).all(), f"{name}: non-finite normal-k thresholds")
