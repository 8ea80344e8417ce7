"""The web app's shared state: the runs it serves, the images it holds, loaded predictors.

One :class:`AppState` per app, at ``app.state.sb``; route modules reach it with
``Depends(get_state)`` (:data:`State`). Also the limits and choices the routes share.
"""

from __future__ import annotations

import functools
import hashlib
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
from fastapi import Depends, HTTPException, Request
from PIL import Image

from shiftbench.data import io
from shiftbench.errors import ShiftbenchError
from shiftbench.inference import render

VIEWS = ("inspect", "draw", "compare", "study")
#: decoded formats accepted for uploads (decided by decoding, never by the file name)
UPLOAD_FORMATS = ("PNG", "JPEG", "TIFF", "BMP", "WEBP")
DEFAULT_MAX_UPLOAD_BYTES = 20 * 2**20
DEFAULT_MAX_PIXELS = 40_000_000
METRIC_VIEW = (
    "image_auroc",
    "image_auprc",
    "image_f1",
    "image_threshold",
    "pixel_auroc",
    "pixel_aupro",
    "pixel_f1",
    "ms_per_image",
)


def _finite(v):
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    return v


@dataclass
class Stored:
    """An image (or mask) the app holds: the decoded picture and its prepared arrays."""

    picture: Image.Image | None
    array: np.ndarray | None = None  # a mask or an already prepared image
    image_id: str = ""
    prepared: dict = field(default_factory=dict)


class LRU:
    """A small thread-safe least-recently-used map."""

    def __init__(self, size: int):
        self.size = size
        self._data: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            if key not in self._data:
                return None
            self._data.move_to_end(key)
            return self._data[key]

    def items(self) -> list:
        with self._lock:
            return list(self._data.items())

    def put(self, key, value):
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)
        return value


class AppState:
    """The runs served, the limits, the images held and the predictors loaded.

    ``device``: where models score (a resolved ``torch.device`` string, e.g. ``cuda:0``).
    ``preload``: import torch, timm and the perturbations (with albumentations) in a
    background thread from the start, so the first prediction does not wait for them
    (seconds); requests that need them wait for that thread (:meth:`warm`) rather than
    import the same modules concurrently.
    """

    def __init__(
        self,
        run_dirs,
        max_upload_bytes: int,
        max_pixels: int,
        device: str = "cpu",
        preload: bool = False,
    ):
        self.runs: dict[str, Path] = {}
        for d in run_dirs:
            path = Path(d).expanduser().resolve()
            if not (path / "manifest.json").is_file():
                raise ShiftbenchError(
                    f"{d}: not a run directory (no manifest.json); pass folders `shiftbench run` wrote"
                )
            rid, n = path.name, 2
            while rid in self.runs:
                rid, n = f"{path.name}-{n}", n + 1
            self.runs[rid] = path
        self.max_upload_bytes = int(max_upload_bytes)
        self.max_pixels = int(max_pixels)
        self.predictors = LRU(8)
        self.images = LRU(64)
        self._run_cache = LRU(8)
        self._load_lock = threading.Lock()
        self.device = str(device)
        self._warming: threading.Thread | None = None
        self._shifts_ready = threading.Event()  # the perturbations are imported
        if preload:
            self._warming = threading.Thread(target=self._preload, name="preload", daemon=True)
            self._warming.start()
        else:
            self._shifts_ready.set()

    def _preload(self) -> None:
        """Import what the first prediction needs: the perturbations first (albumentations,
        which imports torch: the page lists them), then the models and timm (their
        backbones). A failure is left for the request that needs the module to report."""
        try:
            _shift_names()
        except Exception:  # noqa: BLE001 - reported by the request that needs it
            pass
        self._shifts_ready.set()
        try:
            import timm  # noqa: F401

            import shiftbench.models  # noqa: F401
        except Exception:  # noqa: BLE001
            pass

    def warm(self, shifts_only: bool = False) -> None:
        """Wait for the background imports (if any): all of them, or (``shifts_only``)
        those of the perturbations."""
        if shifts_only:
            self._shifts_ready.wait()
        elif self._warming is not None:
            self._warming.join()

    # -- runs ----------------------------------------------------------------------------
    def run_path(self, rid: str) -> Path:
        if rid not in self.runs:
            raise HTTPException(404, f"unknown run {rid!r}; known runs: {', '.join(self.runs)}")
        return self.runs[rid]

    def run(self, rid: str):
        from shiftbench.results import load_run

        path = self.run_path(rid)
        stamp = (path / "manifest.json").stat().st_mtime
        hit = self._run_cache.get((rid, stamp))
        return hit if hit is not None else self._run_cache.put((rid, stamp), load_run(path))

    def fitted(self, rid: str):
        from shiftbench.results.models import list_fitted

        return list_fitted(self.run_path(rid))

    def predictor(self, rid: str, category: str, model: str, seed: int | None, fit: str):
        self.warm()
        from shiftbench.inference import Predictor

        key = (rid, category, model, seed, fit)
        hit = self.predictors.get(key)
        if hit is not None:
            return hit
        with self._load_lock:  # one load at a time (a model is large)
            hit = self.predictors.get(key)
            if hit is None:
                hit = Predictor.from_run(
                    self.run_path(rid), category, model, seed=seed, fit=fit, device=self.device
                )
                self.predictors.put(key, hit)
        return hit

    # -- images --------------------------------------------------------------------------
    def decode(self, data: bytes, name: str) -> Image.Image:
        if len(data) > self.max_upload_bytes:
            raise HTTPException(
                413,
                f"{name}: {len(data):,} bytes is over the upload limit "
                f"of {self.max_upload_bytes:,} bytes",
            )
        try:
            img = io.decode_image_bytes(data, name=name, max_pixels=self.max_pixels)
        except ShiftbenchError as exc:
            status = 413 if "over the limit" in str(exc) else 415
            raise HTTPException(status, str(exc)) from None
        if img.format not in UPLOAD_FORMATS:
            raise HTTPException(
                415,
                f"{name}: {img.format or 'unknown'} images are not accepted; "
                f"upload {', '.join(UPLOAD_FORMATS)}",
            )
        return img

    def store(self, stored: Stored, content: bytes) -> str:
        token = hashlib.sha256(content).hexdigest()[:20]
        self.images.put(token, stored)
        return token

    def stored(self, token: str | None, what: str = "image") -> Stored:
        item = self.images.get(token) if token else None
        if item is None:
            raise HTTPException(
                404,
                f"{what} {token!r} is not held by the server (expired?); upload or pick it again",
            )
        return item

    def prepared(self, token: str, predictor) -> np.ndarray:
        item = self.stored(token)
        key = (predictor.image_size, predictor.crop)
        if key not in item.prepared:
            src = item.picture if item.picture is not None else item.array
            item.prepared[key] = predictor.prepare(src)
        return item.prepared[key]

    def prepared_mask(self, token: str | None, predictor) -> np.ndarray | None:
        if not token:
            return None
        item = self.stored(token, "mask")
        key = ("mask", predictor.image_size, predictor.crop)
        if key not in item.prepared:
            src = item.picture if item.picture is not None else item.array
            item.prepared[key] = predictor.prepare_mask(src)
        return item.prepared[key]

    def loaded(self, rid: str) -> set[tuple]:
        """``(category, model, seed, fit)`` of the predictors of run ``rid`` held now."""
        return {(k[1], k[2], p.seed, k[4]) for k, p in self.predictors.items() if k[0] == rid}

    def sample_row(self, rid: str, sample_id: str) -> dict:
        run = self.run(rid)
        if run.splits is None:
            raise HTTPException(404, f"run {rid!r} has no splits.csv; its images are unknown")
        rows = run.splits[run.splits["sample_id"] == sample_id]
        if rows.empty:
            raise HTTPException(404, f"run {rid!r} has no image {sample_id!r}")
        return rows.iloc[0].to_dict()


def _decode_sample(state: AppState, path: str, name: str) -> tuple[Image.Image, bytes]:
    file = Path(path)
    if not file.is_file():
        raise HTTPException(404, f"{name}: the image file of this sample is missing ({file.name})")
    data = file.read_bytes()
    try:
        return io.decode_image_bytes(data, name=name), data
    except ShiftbenchError as exc:
        raise HTTPException(422, str(exc)) from None


@functools.lru_cache(maxsize=1)
def _shift_names() -> frozenset[str]:
    """Registered perturbations and shipped suites (the app's perturbation choices)."""
    from shiftbench.transforms.registry import list_perturbations
    from shiftbench.transforms.suites import list_suites

    return frozenset([n for n, _, _ in list_perturbations()] + [n for n, _ in list_suites()])


def _images_of(pred, state: AppState | None = None) -> dict[str, str]:
    lo, hi = pred.map_range
    out = {
        "input": render.data_url(pred.image),
        "overlay": render.data_url(render.overlay(pred.image, pred.map, lo, hi)),
        "region": render.data_url(render.contours(pred.image, pred.region, pred.mask)),
    }
    if pred.mask is not None:
        out["truth"] = render.data_url(render.contours(pred.image, None, pred.mask))
    return out


def get_state(request: Request) -> AppState:
    """The :class:`AppState` of the app serving ``request``."""
    return request.app.state.sb


#: a route parameter ``state: State`` receives the app's :class:`AppState`
State = Annotated[AppState, Depends(get_state)]
