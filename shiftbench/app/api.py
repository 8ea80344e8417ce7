"""The app's JSON and PNG endpoints: catalogue, images in, predictions, study tables."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np
from fastapi import APIRouter, File, Form, HTTPException, Query, UploadFile
from fastapi.responses import JSONResponse, Response

from shiftbench.app.state import (
    METRIC_VIEW,
    State,
    Stored,
    _decode_sample,
    _finite,
    _images_of,
    _shift_names,
)
from shiftbench.data import io
from shiftbench.errors import ShiftbenchError
from shiftbench.inference import render
from shiftbench.results import schema

router = APIRouter()


# -- catalogue -----------------------------------------------------------------------
@router.get("/api/runs")
def api_runs(state: State):
    return [{"id": rid, "name": p.name} for rid, p in state.runs.items()]


@router.get("/api/runs/{rid}/models")
def api_models(state: State, rid: str):
    table = state.fitted(rid)
    rows = [{k: _finite(v) for k, v in r.items() if k != "path"} for r in table.to_dict("records")]
    held = state.loaded(rid)
    for r in rows:  # loaded: in memory now (the first prediction of the others loads them)
        r["loaded"] = (r["category"], r["model"], r["seed"], r["fit"]) in held
    return {"models": rows, "device": state.device}


@router.get("/api/perturbations")
def api_perturbations(state: State):
    state.warm(shifts_only=True)
    from shiftbench.transforms.registry import list_perturbations
    from shiftbench.transforms.suites import list_suites

    return {
        "perturbations": [{"name": n, "family": f} for n, f, _ in list_perturbations()],
        "suites": [{"name": n, "description": d} for n, d in list_suites()],
    }


# -- images in ---------------------------------------------------------------------------
@router.post("/api/upload")
def api_upload(state: State, file: UploadFile = File(...)):
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


@router.post("/api/runs/{rid}/open")
def api_open(state: State, rid: str, sample_id: str = Form(...)):
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


@router.get("/api/runs/{rid}/thumb")
def api_thumb(state: State, rid: str, sample_id: str, size: int = Query(96, ge=16, le=512)):
    row = state.sample_row(rid, sample_id)
    img, _ = _decode_sample(state, row["image_path"], sample_id)
    return Response(render.png_bytes(io.image_to_array(img, size)), media_type="image/png")


# -- predictions -----------------------------------------------------------------------
def _predict(state, rid, category, model, seed, fit, image, mask, perturb, severity, shift_seed):
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
        source_size=None if item.picture is None else item.picture.size,
    )
    return predictor, pred, t0


#: score columns the study view leaves out (it shows one split's rows at one level)
_NOT_IN_SCORE_VIEW = ("severity", "split", "pixel_threshold")


@router.get("/api/predict")
def api_predict(
    state: State,
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
        state, run, category, model, seed, fit, image, mask, perturb, severity, shift_seed
    )
    t1 = time.perf_counter()
    body = pred.to_dict()
    body["images"] = _images_of(pred)
    body["seed"] = predictor.seed
    body["fit"] = predictor.fit
    body["timing_ms"]["render"] = round(1000 * (time.perf_counter() - t1), 2)
    body["timing_ms"]["request"] = round(1000 * (time.perf_counter() - t0), 2)
    return body


@router.get("/api/composite")
def api_composite(
    state: State,
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

    predictor, pred, _ = _predict(
        state, run, category, model, seed, fit, image, mask, perturb, severity, shift_seed
    )
    fig = predictor.composite(pred)  # a plain Figure: no pyplot state to lock or close
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, pil_kwargs={"compress_level": 1})
    return Response(buf.getvalue(), media_type="image/png")


@router.post("/api/defect")
def api_defect(
    state: State,
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
@router.get("/api/runs/{rid}/manifest")
def api_manifest(state: State, rid: str):
    return JSONResponse(json.loads(json.dumps(state.run(rid).manifest, default=str)))


@router.get("/api/runs/{rid}/metrics")
def api_metrics(
    state: State,
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
    # the macro average over categories goes after them, not between them by name
    wide = wide.sort_values("category", key=lambda c: c == schema.MEAN_CATEGORY, kind="stable")
    cols = keys + [c for c in METRIC_VIEW if c in wide.columns]
    rows = [[_finite(v) for v in r] for r in wide[cols].itertuples(index=False)]
    return {"columns": cols, "rows": rows, "filters": filters}


@router.get("/api/runs/{rid}/figures")
def api_figures(state: State, rid: str):
    from shiftbench.app.study import figure_entries

    root = state.run_path(rid)
    names = {"category": [], "model": []}
    try:  # the run's names split "scores_<category>_<model>"; a folder of figures alone works
        metrics = state.run(rid).metrics
    except ShiftbenchError:
        metrics = None
    if metrics is not None and not metrics.empty:
        names = {k: sorted({str(v) for v in metrics[k]}) for k in names}
    return {
        "figures": figure_entries(root, names["category"], names["model"]),
        "report": (root / "report.html").is_file(),
    }


@router.get("/api/runs/{rid}/scores")
def api_scores(
    state: State,
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
    cols = [c for c in schema.SCORE_COLUMNS if c not in _NOT_IN_SCORE_VIEW and c in s.columns]
    return {"rows": [{k: _finite(v) for k, v in r.items()} for r in s[cols].to_dict("records")]}
