"""One image through one fitted model of a run: :class:`Predictor` -> :class:`Prediction`.

Images are prepared exactly as the study prepared them (:mod:`shiftbench.data.io`: RGB,
bilinear resize to the model's ``image_size``, then a centre crop when the study used one),
shifted (optionally) at that size like the study's shifted twins, then scored. Decisions use
the run's validation thresholds (``score >= image_threshold``; pixels ``map >=
pixel_threshold``) and heat-maps a fixed colour scale per model: the 0.1 and 99.9
percentiles of its validation maps (``map_range``), so heat-maps compare across images and
severities.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from shiftbench.data import io
from shiftbench.errors import ShiftbenchError


def _ms(t0: float) -> float:
    return round(1000.0 * (time.perf_counter() - t0), 2)


@dataclass
class Prediction:
    """The result of :meth:`Predictor.predict` (arrays at the model's input size)."""

    image: np.ndarray  # uint8 [S,S,3]: what the model saw (prepared and shifted)
    score: float
    threshold: float
    decision: int  # 1 = anomalous (score >= threshold)
    map: np.ndarray  # float32 [S,S], raw anomaly map
    map_range: tuple[float, float]  # the fixed colour scale of this model
    pixel_threshold: float | None  # None when the run had no validation masks
    region: np.ndarray | None  # bool [S,S]: map >= pixel_threshold
    mask: np.ndarray | None = None  # uint8 [S,S] {0,255}: the ground truth, if given
    iou: float | None = None
    f1: float | None = None
    perturbation: dict | None = None  # {"name", "severity", "seed", "params"}
    timing_ms: dict = field(default_factory=dict)
    model: str = ""
    category: str = ""
    warnings: list[str] = field(default_factory=list)  # e.g. an image far below the input

    def to_dict(self) -> dict[str, Any]:
        """The JSON-friendly summary (no arrays): scores, decision, IoU/F1, timing."""

        def num(v):
            return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else v

        return {
            "model": self.model,
            "category": self.category,
            "score": num(float(self.score)),
            "threshold": num(float(self.threshold)),
            "decision": int(self.decision),
            "label": "anomalous" if self.decision else "normal",
            "pixel_threshold": num(self.pixel_threshold),
            "map_range": [num(float(v)) for v in self.map_range],
            "region_fraction": None if self.region is None else float(self.region.mean()),
            "pixel_iou": num(self.iou),
            "pixel_f1": num(self.f1),
            "perturbation": self.perturbation,
            "timing_ms": self.timing_ms,
            "warnings": list(self.warnings),
        }


def pixel_iou_f1(region: np.ndarray | None, mask: np.ndarray | None):
    """(IoU, F1) of a predicted region and a ground-truth mask; both 1.0 when both are
    empty; (None, None) without a region or a mask."""
    if region is None or mask is None:
        return None, None
    pred, truth = np.asarray(region) > 0, np.asarray(mask) > 0
    inter = int((pred & truth).sum())
    union = int((pred | truth).sum())
    total = int(pred.sum() + truth.sum())
    if union == 0:
        return 1.0, 1.0
    return inter / union, 2.0 * inter / total


def _source_size(image) -> tuple[int, int] | None:
    """(width, height) of an image :meth:`Predictor.prepare` has read (header only)."""
    if isinstance(image, Image.Image):
        return image.size
    if isinstance(image, np.ndarray):
        return int(image.shape[1]), int(image.shape[0])
    if isinstance(image, (str, Path)):
        h, w = io.image_size(image)
        return w, h
    if isinstance(image, (bytes, bytearray)):
        import io as _bytes_io

        with Image.open(_bytes_io.BytesIO(image)) as img:
            return img.size
    return None


class Predictor:
    """A fitted model of a run with its thresholds; ``predict`` one image at a time.

    Thread-safe: scoring holds a lock (the app serves requests from a thread pool).
    """

    def __init__(self, model, meta: dict, category: str, run_dir: str | Path | None = None):
        self.model = model
        self.meta = meta
        self.category = category
        self.run_dir = Path(run_dir) if run_dir is not None else None
        info = meta["categories"][category]
        self.threshold = float(info["image_threshold"])
        pixel = info.get("pixel_threshold")
        self.pixel_threshold = None if pixel is None or not math.isfinite(pixel) else float(pixel)
        lo, hi = info.get("map_range") or (None, None)
        self.map_range = (
            float(lo if lo is not None else 0.0),
            float(hi if hi is not None else 1.0),
        )
        inp = meta.get("input") or {}
        self.image_size = int(inp.get("image_size") or model.image_size)
        crop = inp.get("crop")
        self.crop = int(crop) if crop else None
        self.name = str(meta.get("model", getattr(model, "name", "")))
        self.seed = meta.get("seed")
        self.fit = meta.get("fit", "clean")
        self.device = str(getattr(model, "device_", "cpu"))  # where it scores
        self._lock = threading.Lock()

    @classmethod
    def from_run(
        cls,
        run_dir: str | Path,
        category: str,
        model: str,
        seed: int | None = None,
        fit: str = "clean",
        device: str = "cpu",
    ) -> Predictor:
        """The model ``model`` fitted for ``category`` saved in the run (``seed=None``: the
        smallest saved seed; ``fit``: ``clean`` or ``shift-sev<L>``), scoring on ``device``
        (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``)."""
        from shiftbench.inference.saved import load_fitted

        fitted, meta = load_fitted(run_dir, category, model, seed=seed, fit=fit, device=device)
        return cls(fitted, meta, category, run_dir)

    # -- inputs --------------------------------------------------------------------------
    @property
    def input_size(self) -> int:
        """The side (px) of what the model sees: the crop, or the image size."""
        return self.crop or self.image_size

    def _crop(self, arr: np.ndarray) -> np.ndarray:
        return arr if not self.crop else io.center_crop(arr[None], self.crop)[0]

    def prepare(self, image) -> np.ndarray:
        """``image`` (a path, encoded bytes, a PIL image or an array: grey, 16-bit, RGB,
        RGBA) as the study fed it: RGB uint8 ``[S,S,3]``."""
        if isinstance(image, (str, Path)):
            arr = io.read_image(image, self.image_size)
        elif isinstance(image, (bytes, bytearray)):
            arr = io.image_to_array(io.decode_image_bytes(bytes(image)), self.image_size)
        elif isinstance(image, Image.Image):
            arr = io.image_to_array(image, self.image_size)
        elif isinstance(image, np.ndarray):
            a = image
            if a.ndim == 3 and a.shape[-1] == 1:
                a = a[..., 0]
            if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (3, 4)):
                raise ShiftbenchError(
                    f"image array of shape {image.shape}: expected [H,W], [H,W,3] or [H,W,4]"
                )
            if a.dtype not in (np.uint8, np.uint16):
                raise ShiftbenchError(f"image array of dtype {a.dtype}: expected uint8 or uint16")
            if a.dtype == np.uint16 and a.ndim == 3:
                a = (a >> 8).astype(np.uint8)
            arr = io.image_to_array(Image.fromarray(np.ascontiguousarray(a)), self.image_size)
        else:
            raise ShiftbenchError(f"cannot read an image from {type(image).__name__}")
        return self._crop(arr)

    def prepare_mask(self, mask) -> np.ndarray:
        """A ground-truth mask (path, bytes, PIL image or array; non-zero = anomalous) as
        uint8 ``[S,S]`` in {0, 255}, resized (nearest) and cropped like the image."""
        if isinstance(mask, (str, Path)):
            arr = io.read_mask(mask, self.image_size)
        else:
            if isinstance(mask, (bytes, bytearray)):
                img = io.decode_image_bytes(bytes(mask), name="mask")
            elif isinstance(mask, Image.Image):
                img = mask
            elif isinstance(mask, np.ndarray):
                a = np.asarray(mask)
                if a.ndim == 3:
                    a = a.max(axis=-1)
                img = Image.fromarray(np.where(a > 0, 255, 0).astype(np.uint8))
            else:
                raise ShiftbenchError(f"cannot read a mask from {type(mask).__name__}")
            img = img.convert("L")
            if img.size != (self.image_size, self.image_size):
                img = img.resize((self.image_size, self.image_size), Image.NEAREST)
            arr = np.where(np.asarray(img) > 0, 255, 0).astype(np.uint8)
        return self._crop(arr)

    def size_warning(self, width: int, height: int) -> str | None:
        """A warning for an image far smaller than what the model takes (a side under
        half of ``image_size``): it is upscaled many times, so its score says little
        about the original. None otherwise."""
        side = self.image_size
        if 2 * min(width, height) >= side:
            return None
        return (
            f"the image is {width}x{height} px, far smaller than the model's input of "
            f"{side}x{side} px: it was upscaled {side / min(width, height):.3g}x, so its "
            "score and heat-map say little about it"
        )

    # -- prediction ----------------------------------------------------------------------
    def predict(
        self,
        image,
        mask=None,
        *,
        perturb: str | Path | None = None,
        severity: int = 3,
        shift_seed: int = 0,
        image_id: str = "",
        prepared: bool = False,
        source_size: tuple[int, int] | None = None,
    ) -> Prediction:
        """Score one image. ``mask``: the ground truth (for IoU/F1). ``perturb``: a
        registered perturbation or suite (name or YAML path) applied at ``severity`` with
        ``shift_seed`` and ``image_id`` (as the study does to its test images) before
        scoring. ``prepared=True``: ``image``/``mask`` are already :meth:`prepare`'d;
        ``source_size``: then the (width, height) they were prepared from, for
        :meth:`size_warning` (found from ``image`` itself when not prepared)."""
        t_all = time.perf_counter()
        t0 = time.perf_counter()
        arr = image if prepared else self.prepare(image)
        if source_size is None and not prepared:
            source_size = _source_size(image)
        small = None if source_size is None else self.size_warning(*source_size)
        gt = None if mask is None else (mask if prepared else self.prepare_mask(mask))
        timing = {"prepare": _ms(t0)}
        perturbation = None
        if perturb:
            from shiftbench.transforms._shift import resolve

            t0 = time.perf_counter()
            suite = resolve(str(perturb), int(severity))
            if isinstance(shift_seed, bool) or int(shift_seed) < 0:
                raise ShiftbenchError(f"shift seed {shift_seed!r} must be a non-negative integer")
            arr, gt, params = suite.apply(arr, gt, seed=int(shift_seed), image_id=str(image_id))
            perturbation = {
                "name": str(perturb),
                "severity": int(severity),
                "seed": int(shift_seed),
                "image_id": str(image_id),
                "suite_hash": suite.hash,
                "params": params,
            }
            timing["shift"] = _ms(t0)
        t0 = time.perf_counter()
        with self._lock:
            scores, maps = self.model.score(arr[None])
        timing["score"] = _ms(t0)
        score, amap = float(scores[0]), maps[0]
        region = None if self.pixel_threshold is None else amap >= self.pixel_threshold
        iou, f1 = pixel_iou_f1(region, gt)
        timing["total"] = _ms(t_all)
        return Prediction(
            image=arr,
            score=score,
            threshold=self.threshold,
            decision=int(score >= self.threshold),
            map=amap,
            map_range=self.map_range,
            pixel_threshold=self.pixel_threshold,
            region=region,
            mask=gt,
            iou=iou,
            f1=f1,
            perturbation=perturbation,
            timing_ms=timing,
            model=self.name,
            category=self.category,
            warnings=[small] if small else [],
        )

    # -- figures -------------------------------------------------------------------------
    def composite(self, prediction: Prediction, path: str | Path | None = None, title: str = ""):
        """The composite figure (matplotlib, Agg): image | heat-map overlay with its fixed
        colour bar | predicted region at the pixel threshold | ground truth (when a mask
        was given). Writes a PNG to ``path`` when given; returns the figure.

        A plain :class:`~matplotlib.figure.Figure`, not pyplot's: nothing global to lock
        or close (the app draws from several threads), and a fixed layout rather than
        ``tight_layout`` (which draws the figure once more) and fast PNG compression
        (files ~35% larger): 1.8x quicker than pyplot + ``tight_layout`` (0.55 s against
        1.0 s, 4 panels of 128 px, on a loaded 2-core Xeon)."""
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize
        from matplotlib.figure import Figure

        from shiftbench.inference import render

        p = prediction
        lo, hi = p.map_range
        panels = 4 if p.mask is not None else 3
        fig = Figure(figsize=(3.3 * panels, 3.9))
        axes = fig.subplots(1, panels, squeeze=False)[0]
        fig.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.8, wspace=0.3)
        shifted = p.perturbation is not None
        name = (
            f"shifted: {p.perturbation['name']} sev {p.perturbation['severity']}"
            if shifted
            else "image"
        )
        axes[0].imshow(p.image)
        axes[0].set_title(name, fontsize=9)
        axes[1].imshow(render.overlay(p.image, p.map, lo, hi))
        axes[1].set_title("anomaly map (overlay)", fontsize=9)
        scale = ScalarMappable(norm=Normalize(lo, hi), cmap=render.CMAP_NAME)
        bar = fig.colorbar(scale, ax=axes[1], fraction=0.046, pad=0.03)
        bar.set_label("fixed scale: validation maps\n0.1-99.9th percentile", fontsize=7)
        bar.ax.tick_params(labelsize=7)
        if p.region is not None:
            axes[2].imshow(render.contours(p.image, p.region))
            pct = 100.0 * float(p.region.mean())
            axes[2].set_title(
                f"predicted region (map >= {p.pixel_threshold:.3g}, {pct:.1f}% px)", fontsize=8
            )
        else:
            axes[2].imshow(p.image)
            axes[2].set_title("no pixel threshold (no validation masks)", fontsize=8)
        if p.mask is not None:
            axes[3].imshow(render.contours(p.image, None, p.mask))
            extra = "" if p.iou is None else f": IoU {p.iou:.2f}, F1 {p.f1:.2f}"
            axes[3].set_title(f"ground truth{extra}", fontsize=8)
        for ax in axes:
            ax.set_xticks([])
            ax.set_yticks([])
        verdict = "ANOMALOUS" if p.decision else "normal"
        op = ">=" if p.decision else "<"
        head = title or f"{p.model} / {p.category} ({self.fit}, seed {self.seed})"
        fig.suptitle(
            f"{head}\nscore {p.score:.4g} {op} threshold {p.threshold:.4g} -> {verdict}",
            fontsize=10,
        )
        if path is not None:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(path, dpi=110, pil_kwargs={"compress_level": 1})
        return fig
