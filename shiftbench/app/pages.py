"""The app's HTML views: the run list and each run's inspect/draw/compare/study page."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from shiftbench.app.state import VIEWS, State
from shiftbench.errors import ShiftbenchError

router = APIRouter()
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def page(request: Request, name: str, **context):
    context.setdefault("runs", list(request.app.state.sb.runs))
    return templates.TemplateResponse(request, name, context)


@router.get("/", response_class=HTMLResponse)
def index(request: Request, state: State):
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


@router.get("/run/{rid}", response_class=HTMLResponse)
@router.get("/run/{rid}/{view}", response_class=HTMLResponse)
def view_page(request: Request, state: State, rid: str, view: str = "inspect"):
    state.run_path(rid)
    if view not in VIEWS:
        raise HTTPException(404, f"unknown view {view!r}; views: {', '.join(VIEWS)}")
    colorbar = request.app.state.colorbar_url
    return page(request, f"{view}.html", rid=rid, view=view, colorbar=colorbar)
