"""Every registered perturbation and model passes its contract.

The parameters come from the registries (``list_perturbations()``, ``list_models()``), not
from hand-written lists, so a new built-in (or an installed plugin) cannot escape. The
default run stays quick: tiny images, ``weights="random"``, one epoch; the large networks
are marked slow. A model missing from ``MODEL_OPTIONS`` runs with ``image_size=64`` only.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shiftbench.models import create_model, list_models
from shiftbench.testing import check_model, check_perturbation
from shiftbench.testing.models import synthetic_images
from shiftbench.transforms.registry import get_perturbation, list_perturbations

torch.set_num_threads(1)

PERTURBATION_NAMES = [name for name, _family, _origin in list_perturbations()]
MODEL_NAMES = [name for name, _description in list_models()]

#: perturbations too slow for the default run (none yet)
SLOW_PERTURBATIONS: set[str] = set()
#: the large networks: DRAEM's two U-Nets, EfficientAD at its minimum 256 px
SLOW_MODELS = {"anomalib-draem", "anomalib-efficientad"}
#: options keeping each model small and short (all with weights="random")
MODEL_OPTIONS: dict[str, dict] = {
    "patchcore": {"image_size": 32},
    "ae": {"image_size": 32, "epochs": 1, "base_channels": 8, "levels": 3},
    "anomalib-patchcore": {"image_size": 64},
    "anomalib-padim": {"image_size": 64},
    "anomalib-fastflow": {"image_size": 64, "epochs": 1, "batch_size": 2},
    "anomalib-stfpm": {"image_size": 64, "epochs": 1, "batch_size": 2},
    "anomalib-draem": {"image_size": 32, "epochs": 1, "batch_size": 2},
    "anomalib-efficientad": {"image_size": 256, "max_steps": 2},  # its minimum size
}
#: looser batch-vs-single tolerance where BLAS order matters more
MODEL_ATOL = {"anomalib-efficientad": 1e-4}

IMAGES = synthetic_images(4, 40, 56)


def _marked(names: list[str], slow: set[str]) -> list:
    return [
        pytest.param(name, id=name, marks=[pytest.mark.slow] if name in slow else [])
        for name in names
    ]


def test_the_registries_are_not_empty():
    assert {"rotate", "gaussian_noise", "illumination"} <= set(PERTURBATION_NAMES)
    assert {"patchcore", "ae", "anomalib-padim"} <= set(MODEL_NAMES)


@pytest.mark.parametrize("name", _marked(PERTURBATION_NAMES, SLOW_PERTURBATIONS))
def test_perturbation_contract(name):
    checked = check_perturbation(get_perturbation(name))
    assert "identity at severity 0" in checked


@pytest.mark.parametrize("name", _marked(MODEL_NAMES, SLOW_MODELS))
def test_model_contract(name):
    options = {"image_size": 64, **MODEL_OPTIONS.get(name, {})}
    out = check_model(
        lambda: create_model(name, weights="random", **options),
        IMAGES,
        atol=MODEL_ATOL.get(name, 1e-5),
    )
    assert out["maps"].shape == (4, 40, 56)


# ----------------------------------------------------------------------- the checks themselves


def test_check_model_refuses_params_that_do_not_round_trip():
    from shiftbench.models.patchcore import PatchCore

    class Forgetful(PatchCore):
        def get_params(self):
            params = super().get_params()
            params["coreset_ratio"] = params["coreset_ratio"] / 2  # not what was passed
            return params

    Forgetful.name = "patchcore"
    with pytest.raises(AssertionError, match="does not round-trip through the constructor"):
        check_model(lambda: Forgetful(weights="random", image_size=32), IMAGES)


def test_check_model_raises_real_assertion_errors():
    """No bare ``assert`` in the contract helpers: they must hold under ``python -O``."""
    import ast
    import inspect

    import shiftbench.testing.models as models_mod
    import shiftbench.testing.perturbations as perturbations_mod

    for module in (models_mod, perturbations_mod):
        tree = ast.parse(inspect.getsource(module))
        bare = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Assert)]
        assert not bare, f"{module.__name__}: bare assert on line(s) {bare}"


def test_check_model_rejects_a_wrong_map_shape():
    from shiftbench.models.patchcore import PatchCore

    class Cropped(PatchCore):
        def score(self, images):
            scores, maps = super().score(images)
            return scores, np.ascontiguousarray(maps[:, 1:])

    Cropped.name = "patchcore"
    with pytest.raises(AssertionError, match="maps shape"):
        check_model(lambda: Cropped(weights="random", image_size=32), IMAGES)
