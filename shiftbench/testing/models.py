"""``check_model``: the contract every model adapter must satisfy (like sklearn's
``check_estimator``). Third-party adapters run it against themselves::

    from shiftbench.testing import check_model
    check_model(lambda: MyModel(image_size=32, weights="random"))

Checks: unfitted use fails clearly; ``fit`` returns self; ``score`` gives float64 scores
``[N]`` and float32 maps ``[N,H,W]`` at the input resolution (non-square on purpose), all
finite; batch size does not change scores; a second fit with the same seed gives the same
scores; save -> load gives identical scores; ``input_config`` and ``n_parameters`` are
declared; ``get_params()`` round-trips through the constructor
(``type(m)(**m.get_params()).get_params() == m.get_params()``). It does not require anomalies to score higher (random weights need not).
Failures raise ``AssertionError`` explicitly (not ``assert``), so they hold under ``python -O``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from shiftbench.errors import ShiftbenchError


def _require(condition: Any, message: str) -> None:
    """``assert`` that survives ``python -O``: raise ``AssertionError(message)``."""
    if not condition:
        raise AssertionError(message)


def _check_params_round_trip(model: Any, name: str) -> None:
    params = model.get_params()
    _require(isinstance(params, dict), f"{name}: get_params() must return a dict")
    try:
        rebuilt = type(model)(**params)
    except Exception as exc:
        raise AssertionError(
            f"{name}: type(m)(**m.get_params()) failed ({type(exc).__name__}: {exc}); "
            "get_params must return exactly the constructor's parameters"
        ) from exc
    again = rebuilt.get_params()
    try:
        same = bool(again == params)
    except Exception:  # e.g. arrays as parameters: equality is ambiguous
        same = False
    _require(
        same,
        f"{name}: get_params() does not round-trip through the constructor: {params} -> {again}",
    )


def synthetic_images(n: int = 6, height: int = 40, width: int = 56, seed: int = 0) -> np.ndarray:
    """Smooth random colour textures ``uint8 [n,height,width,3]`` (a blob in the last half)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    images = np.empty((n, height, width, 3), np.uint8)
    for i in range(n):
        f = rng.uniform(2, 6, size=(3, 2))
        phase = rng.uniform(0, 2 * np.pi, size=3)
        img = np.stack(
            [np.sin(2 * np.pi * (f[c, 0] * xx + f[c, 1] * yy) + phase[c]) for c in range(3)], -1
        )
        img = 0.5 + 0.35 * img + rng.normal(0, 0.04, img.shape)
        if i >= n // 2:  # a dark blob: something for a detector to find
            cy, cx = (
                rng.integers(height // 4, 3 * height // 4),
                rng.integers(width // 4, 3 * width // 4),
            )
            img[
                (yy * max(height, width) - cy) ** 2 + (xx * max(height, width) - cx) ** 2
                < (height / 8) ** 2
            ] = 0.05
        images[i] = np.clip(img * 255, 0, 255).astype(np.uint8)
    return images


def _factory(model: Any) -> Callable[[], Any]:
    """A zero-argument factory of fresh, unfitted models from a model or a factory."""
    from shiftbench.models import AnomalyModel

    if isinstance(model, AnomalyModel):
        params = model.get_params()
        cls = type(model)

        def make() -> AnomalyModel:
            fresh = cls(**params)
            fresh.name = model.name
            return fresh

        return make
    if callable(model):
        return model
    raise TypeError(
        f"check_model: expected an AnomalyModel or a factory, got {type(model).__name__}"
    )


def _check_unfitted(model: Any, images: np.ndarray, name: str) -> None:
    """A new model is not fitted and ``score`` fails with a clear ``NotFittedError``."""
    from shiftbench.models import NotFittedError

    _require(not model.is_fitted, f"{name}: a new model must not be fitted")
    try:
        model.score(images[:1])
    except NotFittedError as exc:
        _require(
            bool(str(exc)) and isinstance(exc, ShiftbenchError),
            f"{name}: NotFittedError must be a ShiftbenchError with a message",
        )
    else:
        raise AssertionError(f"{name}: score() before fit() must raise NotFittedError")


def _check_input_config(model: Any, name: str) -> None:
    """``input_config`` declares ``size``, ``mean`` and ``std`` (three values each)."""
    config = model.input_config
    for key in ("size", "mean", "std"):
        _require(key in config, f"{name}: input_config lacks {key!r}")
    _require(
        len(config["mean"]) == 3 and len(config["std"]) == 3,
        f"{name}: mean/std must have 3 values",
    )


def _check_fit(model: Any, images: np.ndarray, name: str) -> None:
    """``fit`` returns self, the model then reports ``is_fitted`` and its parameter count."""
    returned = model.fit(images)
    _require(returned is model, f"{name}: fit() must return self")
    _require(model.is_fitted, f"{name}: fitted model must report is_fitted")
    n_params = model.n_parameters
    _require(
        isinstance(n_params, int) and n_params > 0,
        f"{name}: n_parameters must be a positive int, got {n_params!r}",
    )


def _check_outputs(scores: Any, maps: Any, shape: tuple[int, int, int], name: str) -> None:
    """float64 finite scores ``[N]`` and float32 finite maps ``[N,H,W]``."""
    n = shape[0]
    _require(
        isinstance(scores, np.ndarray) and scores.dtype == np.float64,
        f"{name}: scores must be float64",
    )
    _require(scores.shape == (n,), f"{name}: scores shape {scores.shape}, expected {(n,)}")
    _require(
        isinstance(maps, np.ndarray) and maps.dtype == np.float32, (f"{name}: maps must be float32")
    )
    _require(
        maps.shape == shape,
        f"{name}: maps shape {maps.shape}, expected input resolution {shape}",
    )
    _require(np.isfinite(scores).all(), f"{name}: non-finite scores {scores}")
    _require(np.isfinite(maps).all(), f"{name}: non-finite maps")


def _check_batch_invariance(
    model: Any, images: np.ndarray, scores: np.ndarray, atol: float, name: str
) -> None:
    """Scoring image by image gives the batch's scores (within ``atol``, relative to scale)."""
    singles = np.array([model.score(images[i : i + 1])[0][0] for i in range(len(images))])
    tol = atol * max(1.0, float(np.abs(scores).max()))
    _require(
        np.allclose(singles, scores, rtol=0, atol=tol),
        f"{name}: scoring one image at a time differs from one batch: {singles} vs {scores}",
    )


def _check_deterministic(
    make: Callable[[], Any],
    images: np.ndarray,
    n_fit: int,
    scores: np.ndarray,
    maps: np.ndarray,
    name: str,
) -> None:
    """A second fit with the same seed and data gives the same scores and maps."""
    again_scores, again_maps = make().fit(images[:n_fit]).score(images)
    _require(
        np.allclose(again_scores, scores, rtol=1e-6, atol=1e-9),
        f"{name}: not deterministic: same seed and data gave {again_scores} then {scores}",
    )
    _require(np.allclose(again_maps, maps, rtol=1e-5, atol=1e-7), f"{name}: maps not deterministic")


def _check_save_load(
    model: Any, images: np.ndarray, scores: np.ndarray, maps: np.ndarray, name: str
) -> None:
    """save -> ``load_model`` gives the same class and identical scores and maps."""
    from shiftbench.models import load_model

    with tempfile.TemporaryDirectory() as tmp:
        path = model.save(Path(tmp) / "model.pt")
        loaded = load_model(path)
        loaded_scores, loaded_maps = loaded.score(images)
    _require(type(loaded) is type(model), f"{name}: load_model gave {type(loaded).__name__}")
    _require(
        np.array_equal(loaded_scores, scores),
        f"{name}: loaded model scores differ: {loaded_scores} vs {scores}",
    )
    _require(np.array_equal(loaded_maps, maps), f"{name}: loaded model maps differ")


def check_model(
    model: Any,
    images: np.ndarray | None = None,
    *,
    n_fit: int | None = None,
    atol: float = 1e-5,
) -> dict[str, np.ndarray]:
    """Run the adapter contract on ``model`` (an unfitted ``AnomalyModel`` or a factory).

    ``images``: ``uint8 [N,H,W,3]`` (default: :func:`synthetic_images`); the first
    ``n_fit`` (default ``N // 2``) are fitted on, all are scored. ``atol`` bounds the
    difference allowed between scoring in one batch and image by image (BLAS may sum in
    another order). Returns ``{"scores", "maps"}`` of the first fit for further checks.
    Raises ``AssertionError`` naming the broken rule.
    """
    from shiftbench.models import AnomalyModel

    make = _factory(model)
    images = synthetic_images() if images is None else images
    n, h, w = images.shape[:3]
    n_fit = n // 2 if n_fit is None else n_fit
    if not 1 <= n_fit <= n:
        raise ValueError(f"check_model: n_fit={n_fit} must be in [1, {n}]")

    first = make()
    _require(
        isinstance(first, AnomalyModel),
        f"factory returned {type(first).__name__}, not an AnomalyModel",
    )
    name = first.name or type(first).__name__
    _check_unfitted(first, images, name)
    _check_params_round_trip(first, name)
    _check_input_config(first, name)
    _check_fit(first, images[:n_fit], name)

    scores, maps = first.score(images)
    _check_outputs(scores, maps, (n, h, w), name)
    _check_batch_invariance(first, images, scores, atol, name)
    _check_deterministic(make, images, n_fit, scores, maps, name)
    _check_save_load(first, images, scores, maps, name)
    return {"scores": scores, "maps": maps}
