"""The options table of a study: :class:`StudyConfig`, one field per option with its
default, its help text and its command-line flag (``field(metadata=...)``), from which the
CLI builds the options of ``shiftbench run``, ``shift`` and ``splits``
(:mod:`shiftbench.cli.options`), and what the options derive (the study's hash, protocols,
severities, adaptation strategies, input size). Loading a study (a YAML file, then
overrides) is :mod:`shiftbench.protocols.config`, which re-exports everything here.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shiftbench._hashing import hex_digest
from shiftbench.errors import ShiftbenchError
from shiftbench.protocols.table import Protocol, resolve_protocols

__all__ = ["REAL_IMAGE_SIZE", "SYNTHETIC_IMAGE_SIZE", "StudyConfig"]


def _opt(default: Any = None, help: str = "", *, flag: str, cli_type: Any, show: str | None = None):
    """A :class:`StudyConfig` field: its default plus what the CLI needs (``help``,
    ``flag``: the option name, or ``--on/--off`` for switches; ``cli_type``: the type the
    command line reads, e.g. ``str`` for comma lists; ``show``: the default as printed by
    ``--help`` when it is not the value itself)."""
    meta = {"help": help, "flag": flag, "cli_type": cli_type, "show": show}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


#: The image side of a study whose ``image_size`` is not given.
SYNTHETIC_IMAGE_SIZE = 128
REAL_IMAGE_SIZE = 256


@dataclass
class StudyConfig:
    """Everything that defines a study; ``hash`` identifies it for naming and resuming.

    The defaults are the demo study (``shiftbench run`` with no options): the embedded
    synthetic dataset, native PatchCore on ImageNet-pretrained EfficientNet-Lite0, one
    seed, the MVTec-Shift suite at level 3 — offline, a few minutes on 2 CPU cores."""

    protocol: str = _opt(
        "shift-noadapt",
        "clean, shift-noadapt, shift-adapt, all, or a comma list.",
        flag="--protocol",
        cli_type=str,
    )
    dataset: str = _opt(
        "synthetic",
        "Dataset layout: mvtec, mvtec2, visa, btad, loco, mpdd, ksdd2, realiad, mtd, folder "
        "or synthetic (docs/datasets.md).",
        flag="--dataset",
        cli_type=str,
    )
    root: str | None = _opt(
        None,
        "Dataset top folder (not needed for synthetic).",
        flag="--root",
        cli_type=str,
        show="none",
    )
    categories: list[str] | None = _opt(
        None, "Comma-separated categories.", flag="--categories", cli_type=str, show="all"
    )
    views: list[str] | None = _opt(
        None,
        "Camera views to load, e.g. C1,C3 (Real-IAD's C1-C5; --dataset realiad).",
        flag="--views",
        cli_type=str,
        show="all",
    )
    models: list[str] = _opt(
        ["patchcore"],
        "Comma-separated model names (shiftbench list models).",
        flag="--models",
        cli_type=str,
    )
    backbone: str | None = _opt(
        None,
        "Backbone for the models that take one.",
        flag="--backbone",
        cli_type=str,
        show="each model's own; efficientnet_lite0 for patchcore",
    )
    weights: str = _opt(
        "imagenet",
        "imagenet, random, or a local weights file.",
        flag="--weights",
        cli_type=str,
    )
    seeds: list[int] = _opt(
        [0], "Comma-separated seeds (splits and shifts).", flag="--seeds", cli_type=str
    )
    suite: str = _opt(
        "mvtec-shift",
        "Shift suite: a shipped name (shiftbench list suites) or a YAML file.",
        flag="--suite",
        cli_type=str,
    )
    severity: int | list[int] = _opt(
        3,
        "Shift level 0-5, or a comma list (1,3,5) to sweep levels.",
        flag="--severity",
        cli_type=str,
    )
    image_size: int | None = _opt(
        None,
        "Square image side in px (images are resized to it).",
        flag="--image-size",
        cli_type=int,
        show=f"{SYNTHETIC_IMAGE_SIZE} for synthetic, {REAL_IMAGE_SIZE} otherwise",
    )
    shift_at: str | None = _opt(
        None,
        "Where shifts are applied: native (to the decoded full-resolution image, then "
        "resized: what a camera does) or model (after resizing to --image-size, as "
        "ImageNet-C-style benchmarks do).",
        flag="--shift-at",
        cli_type=str,
        show="model for synthetic, native otherwise",
    )
    each: bool | None = _opt(
        None,
        "Evaluate each suite member alone (one condition per shift x severity), or the "
        "suite's members together; --suite each:NAME also sets it.",
        flag="--each/--together",
        cli_type=bool,
        show="as the suite's YAML says (each: true)",
    )
    adapt: list[str] | None = _opt(
        None,
        "Adaptation strategies of shift-adapt, a comma list (shiftbench list adaptations): "
        "refit, refit-k, bank-extend, bn-adapt, feature-align, recalibrate, test-bn.",
        flag="--adapt",
        cli_type=str,
        show="refit",
    )
    adapt_k: list[int] | None = _opt(
        None,
        "Target-image budgets k of the strategies that read k verified-normal target images.",
        flag="--adapt-k",
        cli_type=str,
        show="1,4,16",
    )
    crop: int | None = _opt(
        None,
        "Centre crop in px after resizing to --image-size (e.g. 256 then 224, as PatchCore).",
        flag="--crop",
        cli_type=int,
        show="no crop",
    )
    global_model: bool = _opt(
        False,
        "Pool all categories into one model, or one model per category.",
        flag="--global-model/--per-category",
        cli_type=bool,
        show="per-category",
    )
    train_subsample: float | None = _opt(
        None,
        "Keep a seeded fraction of Train-clean.",
        flag="--train-subsample",
        cli_type=float,
        show="all of it",
    )
    val_normal_frac: float = _opt(
        0.2,
        "Fraction of train/good that goes to Val-clean.",
        flag="--val-normal-frac",
        cli_type=float,
    )
    val_anomalous_frac: float = _opt(
        0.3,
        "Fraction of anomalous test images that goes to Val-clean.",
        flag="--val-anomalous-frac",
        cli_type=float,
    )
    save_maps: bool = _opt(
        False,
        "Store test anomaly maps (float16, compressed).",
        flag="--save-maps/--no-save-maps",
        cli_type=bool,
        show="no-save-maps",
    )
    save_models: bool = _opt(
        False,
        "Keep each fitted model with its thresholds under models/ (for predict and the app).",
        flag="--save-models/--no-save-models",
        cli_type=bool,
        show="no-save-models",
    )
    workers: int = _opt(
        2,
        "Parallel shifting: processes for large batches, threads for small ones.",
        flag="--workers",
        cli_type=int,
    )
    image_cache: bool = _opt(
        True,
        "Reuse decoded images and shifted twins from $SHIFTBENCH_CACHE/arrays.",
        flag="--image-cache/--no-image-cache",
        cli_type=bool,
        show="image-cache",
    )
    model_options: dict[str, dict[str, Any]] = _opt(
        {},
        "MODEL.KEY=VALUE model option, VALUE read as YAML (repeatable).",
        flag="--model-option",
        cli_type=list[str],
        show="none",
    )
    # where the units run (shiftbench.protocols.executors.dispatch): how, not what, is computed
    executor: str = _opt(
        "serial",
        "Where fits run: serial (this process), process (--jobs worker processes) or "
        "ray (a Ray cluster; pip install 'shiftbench[ray]').",
        flag="--executor",
        cli_type=str,
    )
    jobs: int | None = _opt(
        None,
        "Worker processes for --executor process.",
        flag="--jobs",
        cli_type=int,
        show="CPU cores / --cpus-per-unit",
    )
    ray_address: str | None = _opt(
        None,
        "Ray cluster to join for --executor ray: auto, or HOST:PORT of the head.",
        flag="--ray-address",
        cli_type=str,
        show="a local Ray instance",
    )
    cpus_per_unit: float | None = _opt(
        None,
        "CPU cores (torch threads) per fit. Scores are bit-identical across executors for "
        "the same value (torch's CPU reductions follow the thread count).",
        flag="--cpus-per-unit",
        cli_type=float,
        show="1; serial: torch's default",
    )
    gpus_per_unit: float = _opt(
        0.0,
        "GPUs per fit on Ray; a fraction (0.25) lets small models share a card.",
        flag="--gpus-per-unit",
        cli_type=float,
    )
    ship_images: bool = _opt(
        False,
        "Ray: send decoded images to the workers through the object store, for nodes "
        "that cannot read the dataset root.",
        flag="--ship-images/--no-ship-images",
        cli_type=bool,
        show="no-ship-images",
    )
    device: str = _opt(
        "auto",
        "Where models run: auto (a GPU when torch sees one), cpu, cuda, cuda:N or mps. "
        "Scores agree across devices within docs/devices.md's tolerances.",
        flag="--device",
        cli_type=str,
    )
    # a real target domain (shiftbench.protocols.target): images of the same categories
    # captured under a new condition, evaluated as a shift beside (or instead of) the suite
    target_root: str | None = _opt(
        None,
        "A real shift: the same categories captured under a new condition, in a dataset "
        "layout (test images with masks; normal training images optional, needed by "
        "shift-adapt). Its rows get shift target:<name>; --suite none runs it alone.",
        flag="--target-root",
        cli_type=str,
        show="none",
    )
    target_dataset: str | None = _opt(
        None,
        "Layout of --target-root when it differs from --dataset.",
        flag="--target-dataset",
        cli_type=str,
        show="as --dataset",
    )
    target_name: str | None = _opt(
        None,
        "Name of the target domain (its rows' shift is target:<name>).",
        flag="--target-name",
        cli_type=str,
        show="the --target-root folder's name",
    )

    # options that change where/how results are written, not what they are
    _NOT_HASHED = (
        "save_maps",
        "save_models",
        "workers",
        "image_cache",
        "executor",
        "jobs",
        "ray_address",
        "cpus_per_unit",
        "gpus_per_unit",
        "ship_images",
        "device",
    )
    # options added after studies were hashed: left out of the hash while unset (None), so
    # every study that does not use them keeps its hash, run folder name and resumability
    _HASHED_WHEN_SET = (
        "crop", "each", "shift_at", "views", "target_root", "target_dataset", "target_name",
        "adapt", "adapt_k",
    )  # fmt: skip

    def __post_init__(self) -> None:
        if isinstance(self.suite, str) and self.suite.startswith("each:"):
            self.suite, self.each = self.suite[len("each:") :], True
        if self.shift_at not in (None, "native", "model"):
            raise ShiftbenchError(
                f"shift_at {self.shift_at!r}: unknown; use native or model", param="shift_at"
            )
        if self.image_size is None:  # 128 px for the synthetic demo, 256 px for real data
            self.image_size = (
                SYNTHETIC_IMAGE_SIZE if self.dataset == "synthetic" else REAL_IMAGE_SIZE
            )

    @property
    def shift_resolution(self) -> str:
        """``native`` or ``model`` (:attr:`shift_at`; unset: ``model`` for the synthetic
        dataset, whose images are made at the study's size, ``native`` for real data,
        whose shifts happen at the camera — see docs/corruptions.md)."""
        if self.shift_at is not None:
            return self.shift_at
        return "model" if self.dataset == "synthetic" else "native"

    @property
    def split_options(self) -> dict[str, Any]:
        """The study's split fractions, for ``make_splits(table, seed, **options)``: the
        source's splits, a real target's and ``shiftbench splits`` are made alike."""
        return {
            "val_normal_frac": self.val_normal_frac,
            "val_anomalous_frac": self.val_anomalous_frac,
            "train_subsample": self.train_subsample,
        }

    @property
    def dataset_options(self) -> dict[str, Any]:
        """The loader options the study sets (``views``), for ``load_dataset(...,
        **options)``; empty when none is set, so every other layout loads as before."""
        return {"views": self.views} if self.views is not None else {}

    @property
    def protocols(self) -> list[Protocol]:
        return resolve_protocols(self.protocol)

    @property
    def severities(self) -> list[int]:
        """The shift levels of the study: one, or several for a severity sweep."""
        return list(self.severity) if isinstance(self.severity, list) else [self.severity]

    @property
    def adaptations(self) -> list[str]:
        """The adaptation strategies of ``shift-adapt`` (``["refit"]`` unless chosen)."""
        from shiftbench.adaptation import DEFAULT_ADAPT

        return list(self.adapt) if self.adapt else list(DEFAULT_ADAPT)

    @property
    def adapt_ks(self) -> list[int]:
        """The budgets k of the strategies that take one (default 1, 4, 16)."""
        from shiftbench.adaptation import DEFAULT_K

        return list(self.adapt_k) if self.adapt_k else list(DEFAULT_K)

    @property
    def input_size(self) -> int:
        """The side of the images the models see: ``crop`` if set, else ``image_size``."""
        return self.crop if self.crop is not None else self.image_size

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def hash_payload(self) -> dict[str, Any]:
        """What :attr:`hash` digests: the options that change results."""
        return {
            k: v
            for k, v in self.to_dict().items()
            if k not in self._NOT_HASHED and not (k in self._HASHED_WHEN_SET and v is None)
        }

    @property
    def hash(self) -> str:
        return hex_digest(json.dumps(self.hash_payload(), sort_keys=True, default=str), 10)

    def default_name(self) -> str:
        models = "+".join(self.models)[:40]
        return f"{self.dataset}_{self.protocol}_{models}_{Path(self.suite).stem}-sev{'-'.join(map(str, self.severities))}_{self.hash}"
