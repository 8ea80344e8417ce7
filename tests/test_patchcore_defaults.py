"""Native PatchCore's defaults (issue 19): the pool coreset with its compiled steps, the
``auto`` search, and studies that resume with the options they started with."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from shiftbench.models import coreset, create_model, load_model
from shiftbench.models import patchcore as patchcore_module
from shiftbench.models.patchcore import PatchCore
from shiftbench.protocols import load_config
from shiftbench.protocols import manifest as mf
from shiftbench.protocols.runner import StudyRunner
from shiftbench.results import schema
from shiftbench.testing.models import synthetic_images

LEGACY = {"coreset_method": "blocks", "search": "exact"}


def _textbook_greedy(z: np.ndarray, n: int, start: int) -> list[int]:
    chosen, dist = [start], np.linalg.norm(z - z[start], axis=1)
    for _ in range(n - 1):
        j = int(np.argmax(dist))
        chosen.append(j)
        dist = np.minimum(dist, np.linalg.norm(z - z[j], axis=1))
    return chosen


# ------------------------------------------------------------------- the compiled coreset
@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("pool", [16, 100, 8192])
def test_pool_steps_compiled_or_not_make_the_textbook_picks(monkeypatch, compiled, pool):
    """The numba loop and the torch fallback both choose as the textbook loop; small pools
    make the compiled loop stop and hand back to a refresh many times."""
    if compiled:
        pytest.importorskip("numba")
        assert coreset._compiled_steps() is not None
    else:
        monkeypatch.setattr(coreset, "_STEPS", [None])
    monkeypatch.setattr(coreset, "_POOL", pool)
    monkeypatch.setattr(coreset, "_SLICE", 32)
    gen = torch.Generator().manual_seed(2)
    feats = torch.randn(2000, 20, generator=gen) * torch.rand(2000, 1, generator=gen) * 3
    idx = greedy_coreset_pool(feats, 400)
    assert idx.tolist() == _textbook_greedy(feats.double().numpy(), 400, int(idx[0]))


def greedy_coreset_pool(feats: torch.Tensor, n: int) -> torch.Tensor:
    return coreset.greedy_coreset(
        feats, n, projection_dim=None, generator=torch.Generator().manual_seed(7), method="pool"
    )


def test_compiled_pool_steps_keep_every_point_once(monkeypatch):
    """Duplicates tie at distance 0 at the end: each point is still chosen exactly once."""
    pytest.importorskip("numba")
    monkeypatch.setattr(coreset, "_POOL", 24)
    feats = torch.randn(90, 4, generator=torch.Generator().manual_seed(0))
    feats = torch.cat([feats, feats[:30]])
    assert sorted(greedy_coreset_pool(feats, 120).tolist()) == list(range(120))


# ------------------------------------------------------------------- the defaults
def test_defaults_are_the_pool_coreset_and_the_auto_search(monkeypatch):
    model = PatchCore()
    assert (model.coreset_method, model.search) == ("pool", "auto")
    assert PatchCore.legacy_defaults == LEGACY
    monkeypatch.setattr(patchcore_module, "has_fast_bf16", lambda device: True)
    assert model.resolved_search == "bf16-recheck"
    assert model.resolved_params() == {**model.get_params(), "search": "bf16-recheck"}
    monkeypatch.setattr(patchcore_module, "has_fast_bf16", lambda device: False)
    assert model.resolved_search == "exact"
    assert PatchCore(search="bf16-recheck").resolved_search == "bf16-recheck"  # as asked


def test_auto_search_follows_the_device_the_bank_is_on(monkeypatch, tmp_path):
    """Resolved at fit, again when the model moves or loads: the index matches the choice."""
    train, test = synthetic_images(4, 32, 32, seed=0), synthetic_images(2, 32, 32, seed=1)
    monkeypatch.setattr(patchcore_module, "has_fast_bf16", lambda device: True)
    model = create_model("patchcore", weights="random", image_size=32, coreset_ratio=0.5)
    model.fit(train)
    assert model.search_ == "bf16-recheck" and model.bf16_index_ is not None
    model.save(tmp_path / "m.pt")
    fast_scores, _ = model.score(test)
    monkeypatch.setattr(patchcore_module, "has_fast_bf16", lambda device: False)
    model.to("cpu")
    assert model.search_ == "exact" and model.bf16_index_ is None
    assert load_model(tmp_path / "m.pt").search_ == "exact"
    exact_scores, _ = model.score(test)
    # the same nearest patches: the scores agree to fp32 rounding
    np.testing.assert_allclose(exact_scores, fast_scores, rtol=1e-5)


def test_new_defaults_pick_the_legacy_coreset_and_score_alike():
    """pool picks blocks' points (no fp32 ties here), so only the distance formula of the
    search can move the scores, in the last bits."""
    train, test = synthetic_images(6, 64, 64, seed=0), synthetic_images(4, 64, 64, seed=1)
    common = dict(weights="random", image_size=64, coreset_ratio=0.25)
    legacy = create_model("patchcore", **LEGACY, **common).fit(train)
    new = create_model("patchcore", **common).fit(train)
    assert torch.equal(legacy.memory_bank_, new.memory_bank_)
    (s0, m0), (s1, m1) = legacy.score(test), new.score(test)
    np.testing.assert_allclose(s1, s0, rtol=1e-5)
    np.testing.assert_allclose(m1, m0, rtol=1e-5, atol=1e-5)
    exact = create_model("patchcore", search="exact", **common).fit(train)
    assert np.array_equal(exact.score(test)[0], s0)  # the same bank, the same search


# ------------------------------------------------------------------- studies and resume
def test_pinned_options_new_run_legacy_run_and_partial_records():
    cfg = load_config(None, dict(dataset="synthetic", models="patchcore,ae", weights="random"))

    class Built:
        def resolved_params(self):
            return {"coreset_method": "pool", "search": "bf16-recheck", "seed": 0}

    new = mf.pinned_model_options(cfg, lambda name: Built(), None)
    assert new == {"patchcore": {"coreset_method": "pool", "search": "bf16-recheck"}}
    # a manifest written before the key existed: the legacy values
    assert mf.pinned_model_options(cfg, None, {"config": {}}) == {"patchcore": LEGACY}
    # a study that set an option itself keeps it; a recorded option wins
    cfg.model_options = {"patchcore": {"coreset_method": "pool"}}
    old = mf.pinned_model_options(cfg, None, {})
    assert old == {"patchcore": {"coreset_method": "pool", "search": "exact"}}
    partial = {mf.PINNED_OPTIONS: {"patchcore": {"search": "bf16-recheck"}}}
    assert mf.pinned_model_options(cfg, None, partial) == {
        "patchcore": {"coreset_method": "pool", "search": "bf16-recheck"}
    }
    assert mf.PINNED_OPTIONS in schema.MANIFEST_KEYS


def _study(root, **over):
    base = dict(
        dataset="mvtec",
        root=str(root),
        categories="brick,washer",
        models="patchcore",
        weights="random",
        image_size=64,
        protocol="clean",
        seeds="0",
        workers=1,
        image_cache=False,
        model_options={"patchcore": {"coreset_ratio": 0.1}},
    )
    base.update(over)
    return load_config(None, base)


def _unit_scores(path, key):
    return pd.read_parquet(path / schema.UNITS / key / schema.UNIT_SCORES)


def test_a_run_from_before_the_new_defaults_resumes_with_the_old_ones(
    tiny_synthetic, tmp_path, monkeypatch
):
    """A run whose manifest predates the new defaults re-fits its missing units with
    blocks/exact and records that; a new run records and uses what auto resolved to."""
    monkeypatch.setattr(patchcore_module, "has_fast_bf16", lambda device: True)
    fits = []
    original = PatchCore._fit

    def spy(self, x):
        fits.append((self.coreset_method, self.search))
        return original(self, x)

    monkeypatch.setattr(PatchCore, "_fit", spy)
    quiet = dict(progress=False, echo=lambda s: None)
    out = tmp_path / "run"
    StudyRunner(_study(tiny_synthetic), out, **quiet).run()
    manifest = json.loads((out / schema.MANIFEST).read_text())
    new = {"coreset_method": "pool", "search": "bf16-recheck"}
    assert manifest[mf.PINNED_OPTIONS] == {"patchcore": new}
    assert fits == [tuple(new.values())] * 2

    # the same run as an older shiftbench left it: no record, one unit missing
    del manifest[mf.PINNED_OPTIONS]
    (out / schema.MANIFEST).write_text(json.dumps(manifest))
    units = sorted(p.name for p in (out / schema.UNITS).iterdir())
    shutil.rmtree(out / schema.UNITS / units[1])
    fits.clear()
    StudyRunner(_study(tiny_synthetic), out, resume=True, **quiet).run()
    assert fits == [tuple(LEGACY.values())]
    resumed = json.loads((out / schema.MANIFEST).read_text())
    assert resumed[mf.PINNED_OPTIONS] == {"patchcore": LEGACY}
    assert resumed["config_hash"] == manifest["config_hash"]

    # its scores are those of the legacy options, bit for bit
    legacy_opts = {"patchcore": {"coreset_ratio": 0.1, **LEGACY}}
    ref = tmp_path / "legacy"
    StudyRunner(_study(tiny_synthetic, model_options=legacy_opts), ref, **quiet).run()
    got, want = _unit_scores(out, units[1]), _unit_scores(ref, units[1])
    pd.testing.assert_frame_equal(got, want, check_exact=True)

    # resumed again (nothing missing, then one unit): the record stays
    shutil.rmtree(out / schema.UNITS / units[0])
    fits.clear()
    StudyRunner(_study(tiny_synthetic), out, resume=True, **quiet).run()
    assert fits == [tuple(LEGACY.values())]
    again = json.loads((out / schema.MANIFEST).read_text())
    assert again[mf.PINNED_OPTIONS] == {"patchcore": LEGACY}


def test_fast_bf16_means_native_bf16_products(monkeypatch):
    """auto must not pick the bf16 search where torch only emulates bf16 (pre-Ampere GPUs
    count as bf16-capable unless emulation is excluded) or on MPS."""
    from shiftbench.models.neighbours import has_fast_bf16

    asked = []

    def emulated_only(including_emulation=True):
        asked.append(including_emulation)
        return including_emulation

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", emulated_only)
    assert has_fast_bf16("cuda") is False and asked == [False]
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert has_fast_bf16("cuda:0") is True
    assert has_fast_bf16("mps") is False
