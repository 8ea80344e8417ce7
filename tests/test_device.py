"""``--device``: resolution, refusal of missing devices, models honouring the device.

Runs on the CPU: GPUs are simulated by monkeypatching ``torch.cuda`` (selection logic),
and "a model is on its device" is checked by recording what the model moves where.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shiftbench.errors import ShiftbenchError
from shiftbench.models import create_model, load_model
from shiftbench.models import device as devmod
from shiftbench.models.device import device_info, numerics, resolve_device


def _gpus(monkeypatch, n: int, mps: bool = False) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
    monkeypatch.setattr(devmod, "_mps_available", lambda: mps)


# ---------------------------------------------------------------------------- selection


def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch):
    _gpus(monkeypatch, 2, mps=True)
    assert resolve_device("auto") == torch.device("cuda", 0)
    _gpus(monkeypatch, 0, mps=True)
    assert resolve_device("auto") == torch.device("mps")
    _gpus(monkeypatch, 0, mps=False)
    assert resolve_device("auto") == torch.device("cpu")


def test_explicit_devices(monkeypatch):
    _gpus(monkeypatch, 2)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CUDA ") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device(torch.device("cuda", 1)) == torch.device("cuda", 1)


def test_cuda_without_a_gpu_is_a_clear_error_naming_device_and_the_fix(monkeypatch):
    _gpus(monkeypatch, 0)
    for spec in ("cuda", "cuda:0"):
        with pytest.raises(ShiftbenchError) as info:
            resolve_device(spec)
        assert info.value.param == "device"
        msg = str(info.value)
        assert msg.startswith("device") and "no CUDA GPU" in msg and "--device cpu" in msg
    with pytest.raises(ShiftbenchError, match="no Apple GPU") as info:
        resolve_device("mps")
    assert info.value.param == "device"


def test_cuda_index_out_of_range_is_a_clear_error(monkeypatch):
    _gpus(monkeypatch, 2)
    with pytest.raises(ShiftbenchError, match=r"cuda:2.*only 2 CUDA GPU\(s\).*cuda:0 to cuda:1"):
        resolve_device("cuda:2")


@pytest.mark.parametrize("spec", ["gpu", "cpu:0", "cuda:x", "mps:1", "", "cuda:-1"])
def test_unknown_spellings_are_refused(spec):
    with pytest.raises(ShiftbenchError, match="unknown device; use auto, cpu, cuda") as info:
        resolve_device(spec)
    assert info.value.param == "device"


def test_device_info_records_type_name_precision(monkeypatch):
    info = device_info("cpu")
    assert info["device"] == "cpu" and info["type"] == "cpu"
    assert info["name"] and info["precision"] == "float32" and "deterministic" in info
    _gpus(monkeypatch, 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d: "NVIDIA Test GPU")
    info = device_info("auto")
    assert info["device"] == "cuda:0" and info["name"] == "NVIDIA Test GPU"
    assert info["precision"] == "float32 (TF32 off)"


def test_numerics_is_a_no_op_on_cpu_and_scoped_elsewhere(monkeypatch):
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # restored afterwards
    before = torch.are_deterministic_algorithms_enabled()
    with numerics(torch.device("cpu")):
        assert torch.are_deterministic_algorithms_enabled() == before
    # the settings apply only inside the block (set_* calls need no GPU)
    cudnn = torch.backends.cudnn
    saved = (cudnn.deterministic, cudnn.benchmark, devmod._fp32_precision())
    with numerics(torch.device("cuda", 0)):
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.is_deterministic_algorithms_warn_only_enabled()
        assert cudnn.deterministic and not cudnn.benchmark
        assert devmod._fp32_precision() in (("ieee", "ieee"), (False, False))
    assert torch.are_deterministic_algorithms_enabled() == before
    assert (cudnn.deterministic, cudnn.benchmark, devmod._fp32_precision()) == saved


# ---------------------------------------------------------------------------- config


def test_config_device_defaults_to_auto_and_is_not_hashed():
    from shiftbench.protocols.config import load_config

    default = load_config()
    assert default.device == "auto"
    assert load_config(overrides={"device": "cpu"}).hash == default.hash
    assert "device" not in default.hash_payload()


def test_manifest_records_the_device(monkeypatch):
    from shiftbench.protocols import manifest as mf
    from shiftbench.protocols.config import load_config

    _gpus(monkeypatch, 0)
    cfg = load_config(overrides={"device": "auto"})
    import pandas as pd

    splits = pd.DataFrame({"seed": [0], "sample_id": ["a"], "split": ["train"]})
    monkeypatch.setattr(mf, "split_hash", lambda s: "x")
    fields = mf.study_fields(cfg, [], ["shiftbench"], splits, {}, [], cfg.device)
    assert fields["device"]["device"] == "cpu" and fields["device"]["precision"] == "float32"


# ---------------------------------------------------------------------------- models

ALL_MODELS = [
    "patchcore",
    "ae",
    "anomalib-padim",
    "anomalib-patchcore",
    "anomalib-fastflow",
    "anomalib-stfpm",
    "anomalib-draem",
    "anomalib-efficientad",
]


@pytest.mark.parametrize("name", ALL_MODELS)
def test_every_model_takes_device_and_round_trips_it(name):
    model = create_model(name, device="cuda:1")
    assert model.get_params()["device"] == "cuda:1"
    clone = type(model)(**model.get_params())
    assert clone.get_params() == model.get_params()
    assert create_model(name).device == "cpu"  # the library default: resolved at fit


def test_bad_device_fails_at_create_model():
    with pytest.raises(ShiftbenchError, match="unknown device"):
        create_model("patchcore", device="gpu0")


def test_missing_gpu_fails_at_fit_not_create(monkeypatch):
    _gpus(monkeypatch, 0)
    model = create_model("patchcore", weights="random", image_size=32, device="cuda")
    with pytest.raises(ShiftbenchError, match="no CUDA GPU"):
        model.fit(np.zeros((2, 32, 32, 3), np.uint8))


def _images(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (n, size, size, 3), dtype=np.uint8)


def test_patchcore_state_lives_on_the_requested_device(monkeypatch):
    """Every module and tensor a fitted model holds is moved to ``device_``: recorded by
    patching ``resolve_device`` to a fake device whose moves are logged (still the CPU)."""
    model = create_model(
        "patchcore", weights="random", image_size=32, device="cpu", coreset_ratio=0.5
    )
    model.fit(_images(3))
    assert model.device_ == torch.device("cpu")
    assert model.memory_bank_.device.type == "cpu"
    assert all(p.device.type == "cpu" for p in model.extractor_.parameters())
    # moves: nn.Module.to and Tensor attributes all go through _move_to_device
    moved = []
    real_to = torch.nn.Module.to

    def spy(self, *args, **kwargs):
        moved.append((type(self).__name__, args))
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "to", spy)
    model.to("cpu")
    assert any(name == "FeatureExtractor" for name, _ in moved)
    assert model.get_params()["device"] == "cpu"


def test_inputs_reach_the_model_on_its_device(monkeypatch):
    """Batches are moved with ``.to(device_)`` before the model sees them."""
    seen = []
    model = create_model("patchcore", weights="random", image_size=32, coreset_ratio=0.5)
    real_fit, real_score = type(model)._fit, type(model)._score_batch

    def fit(self, x):
        seen.append(x.device)
        return real_fit(self, x)

    def score(self, x):
        seen.append(x.device)
        return real_score(self, x)

    monkeypatch.setattr(type(model), "_fit", fit)
    monkeypatch.setattr(type(model), "_score_batch", score)
    model.fit(_images(2))
    scores, maps = model.score(_images(2, seed=1))
    assert seen and all(d == torch.device("cpu") for d in seen)
    assert scores.dtype == np.float64 and maps.dtype == np.float32


def test_saved_model_loads_on_cpu_by_default(tmp_path, monkeypatch):
    model = create_model("patchcore", weights="random", image_size=32, coreset_ratio=0.5)
    model.fit(_images(2))
    model.device = "cuda:0"  # as if fitted on a GPU: the saved params say so
    path = model.save(tmp_path / "m.pt")
    loaded = load_model(path)
    assert loaded.device == "cpu" and loaded.device_ == torch.device("cpu")
    assert loaded.memory_bank_.device.type == "cpu"
    np.testing.assert_array_equal(
        loaded.score(_images(2, seed=3))[0], model.score(_images(2, seed=3))[0]
    )


def test_plugin_without_device_parameter_still_works(tmp_path):
    """An adapter written before ``device`` existed neither reports nor needs it."""
    from shiftbench.models.base import AnomalyModel

    class Old(AnomalyModel):
        name = "old"

        def __init__(
            self, *, backbone=None, weights="imagenet", image_size=32, seed=0, batch_size=4
        ):
            super().__init__(
                backbone=backbone,
                weights=weights,
                image_size=image_size,
                seed=seed,
                batch_size=batch_size,
            )

        def _build(self, pretrained):
            self.w_ = torch.zeros(1)

        def _fit(self, x):
            self.mean_ = x.mean(0)

        def _score_batch(self, x):
            d = (x - self.mean_).abs().mean(1)
            return d.flatten(1).amax(1).double(), d

        def _state(self):
            return {"mean": self.mean_}

        def _load_state(self, state):
            self.mean_ = state["mean"]

    model = Old()
    assert "device" not in model.get_params() and model.device == "cpu"
    model.fit(_images(2))
    restored = Old._restore(model.get_params(), model._state(), 2)
    np.testing.assert_array_equal(restored.score(_images(1))[0], model.score(_images(1))[0])
