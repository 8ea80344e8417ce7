"""Safe file serving: only files inside a served run, never model weights."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from shiftbench.app.state import State

router = APIRouter()


@router.get("/runs/{rid}/files/{rel:path}")
def run_file(state: State, rid: str, rel: str):
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
