"""``shiftbench app``: the local web app over one or more run folders."""

from __future__ import annotations

import errno
import ipaddress
import socket
from pathlib import Path

import typer

from shiftbench.cli.predict_cmd import DEVICE_HELP


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_port_free(host: str, port: int) -> None:
    """Refuse, with the fix, a ``host:port`` another program is listening on (uvicorn would
    only log an error and exit)."""
    from shiftbench.errors import ShiftbenchError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ShiftbenchError(f"--host {host}: not an address of this machine ({exc})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ShiftbenchError(
                    f"port {port} is in use on {host}; stop the program using it or pass --port N"
                ) from None
            raise ShiftbenchError(
                f"--host {host}: cannot listen on {host}:{port} ({exc.strerror or exc}); "
                "pass an address of this machine (127.0.0.1 is the default)"
            ) from None


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
    device: str = typer.Option("auto", "--device", help=DEVICE_HELP),
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
    from shiftbench.models.device import resolve_device

    where = str(resolve_device(device))  # an absent GPU fails now, not at the first image
    application = create_app(
        runs,
        max_upload_bytes=int(max_upload_mb * 2**20),
        max_pixels=int(max_megapixels * 1e6),
        device=where,
        preload=True,
    )
    check_port_free(host, port)
    if not is_loopback(host):
        typer.echo(
            f"warning: binding to {host}, not loopback: anyone who can reach this machine on port "
            f"{port} can use the app and read the runs' files",
            err=True,
        )
    shown = f"[{host}]" if ":" in host else host
    typer.echo(
        f"shiftbench app on http://{shown}:{port}/ serving {len(runs)} run(s), models on "
        f"{where}; Ctrl+C stops"
    )
    uvicorn.run(application, host=host, port=port, log_level="warning")


def register(app: typer.Typer) -> None:
    """Add ``app`` to ``app``."""
    app.command("app")(app_command)
