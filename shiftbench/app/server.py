"""The shiftbench web app: FastAPI, server-rendered HTML, a little plain JavaScript.

``create_app(run_dirs)`` -> a FastAPI application; ``shiftbench app`` serves it with uvicorn.
Every asset ships in the package (``templates/``, ``static/``): no CDN, no fonts or scripts
from elsewhere, no telemetry.

Safety: uploads are bounded in bytes (``max_upload_bytes``) and pixels (``max_pixels``,
checked from the image header before decoding), their type is decided by decoding; files
are served only from inside the given runs (resolved paths, so ``..``, absolute paths and
symlinks pointing out are refused); dataset images are served only by the ``sample_id`` a
run's ``splits.csv`` names, never by a path from the client. Every bad request is a 4xx
with a readable ``detail``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from fastapi import FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from PIL import Image

from shiftbench.data import io
from shiftbench.errors import ShiftbenchError
from shiftbench.inference import render

HERE = Path(__file__).parent
_PYPLOT_LOCK = threading.Lock()
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

    def put(self, key, value):
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)
        return value


class AppState:
    def __init__(self, run_dirs, max_upload_bytes: int, max_pixels: int):
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
        from shiftbench.inference import Predictor

        key = (rid, category, model, seed, fit)
        hit = self.predictors.get(key)
        if hit is not None:
            return hit
        with self._load_lock:  # one load at a time (a model is large)
            hit = self.predictors.get(key)
            if hit is None:
                hit = Predictor.from_run(self.run_path(rid), category, model, seed=seed, fit=fit)
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


def create_app(
    run_dirs,
    *,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> FastAPI:
    """The web app over ``run_dirs`` (run folders; their fitted models come from
    ``--save-models``)."""
    state = AppState(run_dirs, max_upload_bytes, max_pixels)
    app = FastAPI(title="shiftbench", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sb = state
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    colorbar_url = render.data_url(render.colorbar(0, 1))

    @app.exception_handler(ShiftbenchError)
    async def _user_error(request: Request, exc: ShiftbenchError):
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.middleware("http")
    async def _bound_body(request: Request, call_next):
        length = request.headers.get("content-length")
        limit = state.max_upload_bytes + 2**20  # room for the other form fields
        if length is not None:
            try:
                too_big = int(length) > limit
            except ValueError:
                return JSONResponse({"detail": "bad Content-Length header"}, status_code=400)
            if too_big:
                return JSONResponse(
                    {
                        "detail": f"request of {int(length):,} bytes is over the upload limit "
                        f"of {state.max_upload_bytes:,} bytes"
                    },
                    status_code=413,
                )
        return await call_next(request)

    # -- pages -------------------------------------------------------------------------------
    def page(request: Request, name: str, **context):
        context.setdefault("runs", list(state.runs))
        return templates.TemplateResponse(request, name, context)

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request):
        runs = []
        for rid, path in state.runs.items():
            try:
                table = state.fitted(rid)
                n, cats = len(table), sorted(table["category"].unique()) if len(table) else []
                models = sorted(table["model"].unique()) if len(table) else []
                error = None
            except ShiftbenchError as exc:
                n, cats, models, error = 0, [], [], str(exc)
            runs.append(
                {
                    "id": rid,
                    "path": str(path),
                    "n": n,
                    "categories": cats,
                    "models": models,
                    "error": error,
                }
            )
        return page(request, "index.html", run_list=runs, view="")

    @app.get("/run/{rid}", response_class=HTMLResponse)
    @app.get("/run/{rid}/{view}", response_class=HTMLResponse)
    def view_page(request: Request, rid: str, view: str = "inspect"):
        state.run_path(rid)
        if view not in VIEWS:
            raise HTTPException(404, f"unknown view {view!r}; views: {', '.join(VIEWS)}")
        return page(request, f"{view}.html", rid=rid, view=view, colorbar=colorbar_url)

    # -- catalogue -----------------------------------------------------------------------
    @app.get("/api/runs")
    def api_runs():
        return [{"id": rid, "name": p.name} for rid, p in state.runs.items()]

    @app.get("/api/runs/{rid}/models")
    def api_models(rid: str):
        table = state.fitted(rid)
        rows = [
            {k: _finite(v) for k, v in r.items() if k != "path"} for r in table.to_dict("records")
        ]
        return {"models": rows}

    @app.get("/api/perturbations")
    def api_perturbations():
        from shiftbench.transforms.registry import list_perturbations
        from shiftbench.transforms.suites import list_suites

        return {
            "perturbations": [{"name": n, "family": f} for n, f, _ in list_perturbations()],
            "suites": [{"name": n, "description": d} for n, d in list_suites()],
        }

    # -- images in ---------------------------------------------------------------------------
    @app.post("/api/upload")
    def api_upload(file: UploadFile = File(...)):
        data = file.file.read(state.max_upload_bytes + 1)
        name = Path(file.filename or "upload").name
        if not data:
            raise HTTPException(400, f"{name}: empty file")
        img = state.decode(data, name)
        token = state.store(Stored(picture=img, image_id=Path(name).stem), data)
        return {
            "token": token,
            "width": img.size[0],
            "height": img.size[1],
            "format": img.format,
            "mode": img.mode,
            "name": name,
        }

    @app.post("/api/runs/{rid}/open")
    def api_open(rid: str, sample_id: str = Form(...)):
        row = state.sample_row(rid, sample_id)
        img, data = _decode_sample(state, row["image_path"], sample_id)
        token = state.store(Stored(picture=img, image_id=sample_id), data)
        out = {
            "token": token,
            "mask_token": None,
            "sample_id": sample_id,
            "label": int(row["label"]),
            "category": row["category"],
        }
        mask_path = io.path_str_or_none(row.get("mask_path"))
        if mask_path:
            m, mdata = _decode_sample(state, mask_path, sample_id + " (mask)")
            out["mask_token"] = state.store(Stored(picture=m), b"mask" + mdata)
        return out

    @app.get("/api/runs/{rid}/thumb")
    def api_thumb(rid: str, sample_id: str, size: int = Query(96, ge=16, le=512)):
        row = state.sample_row(rid, sample_id)
        img, _ = _decode_sample(state, row["image_path"], sample_id)
        return Response(render.png_bytes(io.image_to_array(img, size)), media_type="image/png")

    # -- predictions -----------------------------------------------------------------------
    def _predict(rid, category, model, seed, fit, image, mask, perturb, severity, shift_seed):
        t0 = time.perf_counter()
        predictor = state.predictor(rid, category, model, seed, fit)
        item = state.stored(image)
        arr = state.prepared(image, predictor)
        gt = state.prepared_mask(mask, predictor)
        if not (0 <= severity <= 5):
            raise HTTPException(422, f"severity {severity}: levels run from 0 to 5")
        if perturb and perturb not in _shift_names():
            # names only: a suite YAML path would read files outside the runs
            raise HTTPException(
                400,
                f"unknown perturbation or suite {perturb!r}; see /api/perturbations "
                "(the app takes registered names only, not file paths)",
            )
        pred = predictor.predict(
            arr,
            gt,
            perturb=perturb or None,
            severity=severity,
            shift_seed=shift_seed,
            image_id=item.image_id,
            prepared=True,
        )
        return predictor, pred, t0

    @app.get("/api/predict")
    def api_predict(
        run: str,
        category: str,
        model: str,
        image: str,
        seed: int | None = None,
        fit: str = "clean",
        mask: str | None = None,
        perturb: str | None = None,
        severity: int = 3,
        shift_seed: int = Query(0, ge=0),
    ):
        predictor, pred, t0 = _predict(
            run, category, model, seed, fit, image, mask, perturb, severity, shift_seed
        )
        t1 = time.perf_counter()
        body = pred.to_dict()
        body["images"] = _images_of(pred)
        body["seed"] = predictor.seed
        body["fit"] = predictor.fit
        body["timing_ms"]["render"] = round(1000 * (time.perf_counter() - t1), 2)
        body["timing_ms"]["request"] = round(1000 * (time.perf_counter() - t0), 2)
        return body

    @app.get("/api/composite")
    def api_composite(
        run: str,
        category: str,
        model: str,
        image: str,
        seed: int | None = None,
        fit: str = "clean",
        mask: str | None = None,
        perturb: str | None = None,
        severity: int = 3,
        shift_seed: int = Query(0, ge=0),
    ):
        import io as _io

        import matplotlib.pyplot as plt

        predictor, pred, _ = _predict(
            run, category, model, seed, fit, image, mask, perturb, severity, shift_seed
        )
        with _PYPLOT_LOCK:  # pyplot's figure registry is not thread-safe
            fig = predictor.composite(pred)
            buf = _io.BytesIO()
            fig.savefig(buf, format="png", dpi=100)
            plt.close(fig)
        return Response(buf.getvalue(), media_type="image/png")

    @app.post("/api/defect")
    def api_defect(
        run: str = Form(...),
        category: str = Form(...),
        model: str = Form(...),
        image: str = Form(...),
        seed: int | None = Form(None),
        fit: str = Form("clean"),
        kind: str = Form("scratch"),
        color: str = Form("#202020"),
        defect_seed: int = Form(0),
        stroke: UploadFile = File(...),
    ):
        from shiftbench.app.defects import paint_defect

        predictor = state.predictor(run, category, model, seed, fit)
        arr = state.prepared(image, predictor)
        data = stroke.file.read(state.max_upload_bytes + 1)
        stroke_img = state.decode(data, "stroke")
        drawn = np.asarray(stroke_img.convert("RGBA"))
        # a transparent canvas with the strokes drawn in (alpha), or an opaque black/white mask
        alpha = drawn[..., 3]
        stroke_mask = alpha > 0 if (alpha < 255).any() else drawn[..., :3].max(-1) > 0
        new, mask = paint_defect(
            arr, stroke_mask.astype(np.uint8) * 255, kind, color=color, seed=defect_seed
        )
        base = state.stored(image)
        digest = hashlib.sha256(new.tobytes() + mask.tobytes()).digest()
        key = (predictor.image_size, predictor.crop)
        new_item = Stored(picture=None, array=new, image_id=base.image_id, prepared={key: new})
        token = state.store(new_item, b"img" + digest)
        mask_item = Stored(picture=None, array=mask, prepared={("mask",) + key: mask})
        mask_token = state.store(mask_item, b"mask" + digest)
        return {"token": token, "mask_token": mask_token, "mask_fraction": float((mask > 0).mean())}

    # -- study -----------------------------------------------------------------------------
    @app.get("/api/runs/{rid}/manifest")
    def api_manifest(rid: str):
        return JSONResponse(json.loads(json.dumps(state.run(rid).manifest, default=str)))

    @app.get("/api/runs/{rid}/metrics")
    def api_metrics(
        rid: str,
        category: str | None = None,
        model: str | None = None,
        protocol: str | None = None,
        severity: str | None = None,
    ):
        run = state.run(rid)
        m = run.metrics
        if m is None or m.empty:
            return {"columns": [], "rows": [], "filters": {}}
        m = m[m["metric"].isin(METRIC_VIEW)].copy()
        m["severity"] = m["severity"].map(lambda v: "none" if v != v else f"{v:g}")
        keys = ["category", "model", "seed", "protocol", "severity"]
        filters = {
            k: sorted({str(v) for v in m[k]}) for k in ("category", "model", "protocol", "severity")
        }
        for k, v in (
            ("category", category),
            ("model", model),
            ("protocol", protocol),
            ("severity", severity),
        ):
            if v not in (None, ""):
                m = m[m[k].astype(str) == v]
        wide = m.pivot_table(index=keys, columns="metric", values="value", aggfunc="first")
        wide = wide.reset_index()
        cols = keys + [c for c in METRIC_VIEW if c in wide.columns]
        rows = [[_finite(v) for v in r] for r in wide[cols].itertuples(index=False)]
        return {"columns": cols, "rows": rows, "filters": filters}

    @app.get("/api/runs/{rid}/figures")
    def api_figures(rid: str):
        root = state.run_path(rid)
        folder = root / "figures"
        pngs = sorted(folder.rglob("*.png")) if folder.is_dir() else []
        return {
            "figures": [p.relative_to(root).as_posix() for p in pngs],
            "report": (root / "report.html").is_file(),
        }

    @app.get("/api/runs/{rid}/scores")
    def api_scores(
        rid: str,
        category: str | None = None,
        model: str | None = None,
        protocol: str = "clean",
        seed: int | None = None,
        limit: int = Query(200, ge=1, le=5000),
    ):
        s = state.run(rid).scores
        s = s[(s["split"] == "test") & (s["protocol"] == protocol)]
        if category:
            s = s[s["category"] == category]
        if model:
            s = s[s["model"] == model]
        if seed is not None:
            s = s[s["seed"] == seed]
        s = s.head(limit)
        cols = [
            "category",
            "model",
            "seed",
            "protocol",
            "sample_id",
            "label",
            "defect_type",
            "score",
            "threshold",
            "decision",
        ]
        cols = [c for c in cols if c in s.columns]
        return {"rows": [{k: _finite(v) for k, v in r.items()} for r in s[cols].to_dict("records")]}

    @app.get("/runs/{rid}/files/{rel:path}")
    def run_file(rid: str, rel: str):
        root = state.run_path(rid).resolve()
        if not rel or "\x00" in rel or Path(rel).is_absolute() or rel.startswith(("/", "\\")):
            raise HTTPException(403, f"{rel!r}: only paths inside the run are served")
        target = (root / rel).resolve()
        if not target.is_relative_to(root):
            raise HTTPException(403, f"{rel!r}: outside the run folder; not served")
        if not target.is_file():
            raise HTTPException(404, f"{rel!r}: no such file in run {rid!r}")
        if target.suffix in (".pt",):
            raise HTTPException(403, f"{rel!r}: model files are not served")
        return FileResponse(target)

    return app
