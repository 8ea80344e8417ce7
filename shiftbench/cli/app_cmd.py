"""``shiftbench app``: the local web app over one or more run folders."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import typer


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def app_command(
    runs: list[Path] | None = typer.Argument(
        None, help="Run folders (written with --save-models). [default: every run under results/]"
    ),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to bind; anything but loopback exposes the app."
    ),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
    max_upload_mb: float = typer.Option(
        20.0, "--max-upload-mb", min=0.01, help="Largest upload (MB)."
    ),
    max_megapixels: float = typer.Option(
        40.0,
        "--max-megapixels",
        min=0.01,
        help="Largest upload in pixels (millions), checked before decoding.",
    ),
) -> None:
    """Serve the web app for runs: Inspect, Draw a defect, Compare, Study.

    Every asset ships with shiftbench, so it works with no network at all.
    """
    import os

    from shiftbench.errors import ShiftbenchError

    # idle OpenMP threads sleep instead of spinning (one image per request; see predict)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import uvicorn

        from shiftbench.app.server import create_app
    except ImportError as exc:
        raise ShiftbenchError(
            f"the web app needs the 'app' extra ({exc.name} is missing): pip install 'shiftbench[app]'"
        ) from None
    if not runs:
        root = Path("results")
        runs = (
            sorted(p for p in root.glob("*") if (p / "manifest.json").is_file())
            if root.is_dir()
            else []
        )
        if not runs:
            raise ShiftbenchError("no run folders given and none under results/; pass RUN_DIR...")
    application = create_app(
        runs, max_upload_bytes=int(max_upload_mb * 2**20), max_pixels=int(max_megapixels * 1e6)
    )
    if not is_loopback(host):
        typer.echo(
            f"warning: binding to {host}, not loopback: anyone who can reach this machine on port "
            f"{port} can use the app and read the runs' files",
            err=True,
        )
    shown = f"[{host}]" if ":" in host else host
    typer.echo(f"shiftbench app on http://{shown}:{port}/ serving {len(runs)} run(s); Ctrl+C stops")
    uvicorn.run(application, host=host, port=port, log_level="warning")


def register(app: typer.Typer) -> None:
    """Add ``app`` to ``app``."""
    app.command("app")(app_command)
