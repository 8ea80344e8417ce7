"""Every anomalib / timm / torch / huggingface_hub name the anomalib adapters rely on.

The adapters drive anomalib's torch models directly (no Lightning ``Engine``), so they
depend on names below anomalib's documented API: module paths, constructor and method
parameters, and a few private members where no public route exists. :data:`REQUIRED`
lists them all in one place; :func:`check_compat` checks them and names everything that
is missing or changed, so an upgrade fails in ``tests/test_anomalib_compat.py`` rather
than in the middle of a fit.

A row is ``(module, attribute, parameters)``: ``attribute`` may be dotted
(``Class.method``); ``parameters`` are the names ``inspect.signature`` must still show,
in this order (new parameters are fine if they have defaults), or ``None`` to check that
the name exists only. Private names (leading ``_``) are there because no public
equivalent exists; the comment says why.
"""

from __future__ import annotations

import importlib
import inspect
import warnings
from typing import Any

from shiftbench.errors import ShiftbenchError

_PATCHCORE = "anomalib.models.image.patchcore.torch_model"
_PADIM = "anomalib.models.image.padim.torch_model"
_FASTFLOW = "anomalib.models.image.fastflow.torch_model"
_STFPM = "anomalib.models.image.stfpm.torch_model"
_EFFICIENTAD = "anomalib.models.image.efficient_ad.torch_model"
_DRAEM = "anomalib.models.image.draem.torch_model"

REQUIRED: list[tuple[str, str, list[str] | None]] = [
    # --- shared: the backbone inside PatchCore/PaDiM (``.feature_extractor.feature_extractor``)
    (
        "anomalib.models.components.feature_extractors",
        "TimmFeatureExtractor",
        ["backbone", "layers", "pre_trained", "requires_grad"],
    ),
    ("anomalib.utils.path", "get_pretrained_weights_dir", []),
    # --- PatchCore
    (_PATCHCORE, "PatchcoreModel", ["layers", "backbone", "pre_trained", "num_neighbors"]),
    (_PATCHCORE, "PatchcoreModel.subsample_embedding", ["self", "sampling_ratio"]),
    # --- PaDiM
    (_PADIM, "PadimModel", ["backbone", "layers", "pre_trained", "n_features"]),
    (_PADIM, "PadimModel.fit", ["self"]),
    # --- FastFlow: other backbones are swapped in after construction (anomalib accepts
    # resnet18/wide_resnet50_2 only); forward then runs the private _get_cnn_features on
    # our feature_extractor and norms
    (
        _FASTFLOW,
        "FastflowModel",
        ["input_size", "backbone", "pre_trained", "flow_steps", "conv3x3_only", "hidden_ratio"],
    ),
    (_FASTFLOW, "FastflowModel._get_cnn_features", ["self", "input_tensor"]),
    (
        _FASTFLOW,
        "create_fast_flow_block",
        ["input_dimensions", "conv3x3_only", "hidden_ratio", "flow_steps"],
    ),
    (
        "anomalib.models.image.fastflow.loss",
        "FastflowLoss.forward",
        ["hidden_variables", "jacobians"],
    ),
    # --- STFPM: the teacher is loaded by timm from a ``local-dir:`` folder we write
    (_STFPM, "STFPMModel", ["layers", "backbone"]),
    (
        "anomalib.models.image.stfpm.loss",
        "STFPMLoss.forward",
        ["self", "teacher_features", "student_features"],
    ),
    # --- EfficientAD: our loop mirrors compute_losses when there are no penalty images
    (
        _EFFICIENTAD,
        "EfficientAdModel",
        ["teacher_out_channels", "model_size", "padding", "pad_maps"],
    ),
    (_EFFICIENTAD, "EfficientAdModel.compute_student_teacher_distance", ["self", "batch"]),
    (
        _EFFICIENTAD,
        "EfficientAdModel.compute_losses",
        ["self", "batch", "batch_imagenet", "distance_st"],
    ),
    (_EFFICIENTAD, "EfficientAdModel.choose_random_aug_image", ["image"]),
    (_EFFICIENTAD, "EfficientAdModel.get_maps", ["self", "batch", "normalize"]),
    (_EFFICIENTAD, "EfficientAdModelSize.S", None),
    (_EFFICIENTAD, "EfficientAdModelSize.M", None),
    (_EFFICIENTAD, "reduce_tensor_elems", ["tensor"]),
    # --- DRAEM
    (_DRAEM, "DraemModel", ["sspcab"]),
    (
        "anomalib.models.image.draem.loss",
        "DraemLoss.forward",
        ["self", "input_image", "reconstruction", "anomaly_mask", "prediction"],
    ),
    (
        "anomalib.data.utils.generators.perlin",
        "PerlinAnomalyGenerator",
        ["anomaly_source_path", "blend_factor"],
    ),
    # --- timm (FastFlow's swapped backbone, STFPM's local teacher folder)
    ("timm", "create_model", ["model_name", "pretrained"]),
    ("timm.models", "save_for_hf", ["model", "save_directory"]),
    # --- huggingface_hub: backbones.offline_hub() switches this module constant, which
    # the hub reads through is_offline_mode() on every request
    ("huggingface_hub.constants", "HF_HUB_OFFLINE", None),
    ("huggingface_hub.constants", "is_offline_mode", []),
    # --- torch: nn.Module assignment keeps a tensor a buffer (_contiguous_buffers)
    ("torch.nn", "Module.named_buffers", ["self", "prefix", "recurse"]),
]


def _resolve(module: str, attribute: str) -> tuple[Any, str | None]:
    """``(object, None)``, or ``(None, what is wrong)``."""
    try:
        with warnings.catch_warnings():  # import-time deprecation chatter is not a finding
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            obj: Any = importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - any import failure is the finding
        return None, f"cannot import {module} ({exc.__class__.__name__}: {exc})"
    path = module
    for part in attribute.split("."):
        path = f"{path}.{part}"
        if not hasattr(obj, part):
            return None, f"{path} is missing"
        obj = getattr(obj, part)
    return obj, None


def _signature_problem(obj: Any, expected: list[str]) -> str | None:
    """What about ``obj``'s parameters breaks a call with ``expected`` names, or None."""
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError) as exc:
        return f"has no inspectable signature ({exc})"
    found = [name for name, p in params.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    kept = [name for name in found if name in expected]
    new_required = [
        name
        for name, p in params.items()
        if name not in expected
        and p.default is p.empty
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if kept != expected or new_required:
        return f"parameters changed: expected ({', '.join(expected)}), found ({', '.join(found)})"
    return None


def compat_problems() -> list[str]:
    """One line per :data:`REQUIRED` row that is missing or changed (empty: all fine)."""
    problems = []
    for module, attribute, expected in REQUIRED:
        obj, problem = _resolve(module, attribute)
        if problem is None and expected is not None:
            detail = _signature_problem(obj, expected)
            problem = None if detail is None else f"{module}.{attribute} {detail}"
        if problem is not None:
            problems.append(problem)
    return problems


def _versions() -> str:
    from importlib import metadata

    out = []
    for dist in ("anomalib", "timm", "torch", "huggingface_hub"):
        try:
            out.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            out.append(f"{dist} (not installed)")
    return ", ".join(out)


def check_compat() -> None:
    """Raise :class:`ShiftbenchError` listing every required internal that is missing or
    changed in the installed anomalib/timm/torch/huggingface_hub."""
    problems = compat_problems()
    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise ShiftbenchError(
            f"the anomalib adapters do not fit the installed libraries ({_versions()}); "
            f"{len(problems)} required name(s) missing or changed "
            f"(see shiftbench/models/anomalib/compat.py):\n{lines}"
        )
