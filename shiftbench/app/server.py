"""The shiftbench web app: FastAPI, server-rendered HTML, a little plain JavaScript.

``create_app(run_dirs)`` -> a FastAPI application; ``shiftbench app`` serves it with uvicorn.
Every asset ships in the package (``templates/``, ``static/``): no CDN, no fonts or scripts
from elsewhere, no telemetry. The routes live in :mod:`~shiftbench.app.pages` (HTML
views), :mod:`~shiftbench.app.api` (JSON/PNG endpoints) and :mod:`~shiftbench.app.files`
(run files); they share one :class:`~shiftbench.app.state.AppState` at ``app.state.sb``.

Safety: uploads are bounded in bytes (``max_upload_bytes``) and pixels (``max_pixels``,
checked from the image header before decoding), their type is decided by decoding; files
are served only from inside the given runs (resolved paths, so ``..``, absolute paths and
symlinks pointing out are refused); dataset images are served only by the ``sample_id`` a
run's ``splits.csv`` names, never by a path from the client. Every bad request is a 4xx
with a readable ``detail``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from shiftbench.app import api, files, pages
from shiftbench.app.state import (  # noqa: F401  (re-exported: importable from here as before)
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_UPLOAD_BYTES,
    LRU,
    METRIC_VIEW,
    UPLOAD_FORMATS,
    VIEWS,
    AppState,
    Stored,
    _decode_sample,
    _finite,
    _images_of,
    _shift_names,
)
from shiftbench.errors import ShiftbenchError
from shiftbench.inference import render

HERE = Path(__file__).parent


def create_app(
    run_dirs,
    *,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    device: str = "cpu",
    preload: bool = False,
) -> FastAPI:
    """The web app over ``run_dirs`` (run folders; their fitted models come from
    ``--save-models``). Models score on ``device``; ``preload`` imports torch, timm and
    the perturbations in the background from the start (``shiftbench app`` does)."""
    state = AppState(run_dirs, max_upload_bytes, max_pixels, device=device, preload=preload)
    app = FastAPI(title="shiftbench", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sb = state
    app.state.colorbar_url = render.data_url(render.colorbar(0, 1))
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

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

    app.include_router(pages.router)
    app.include_router(api.router)
    app.include_router(files.router)
    return app
