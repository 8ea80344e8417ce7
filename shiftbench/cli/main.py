"""Entry point of the ``shiftbench`` console script."""

from __future__ import annotations

import sys

import typer

try:  # typer >= 0.2x vendors click as typer._click; older typer uses click itself
    from typer._click import exceptions as _click_errors
except ImportError:  # pragma: no cover
    from click import exceptions as _click_errors

from shiftbench.cli import (
    app_cmd,
    cache_cmd,
    data_cmd,
    list_cmd,
    predict_cmd,
    report_cmd,
    run_cmd,
    shift_cmd,
)
from shiftbench.cli.options import flag_of
from shiftbench.errors import ShiftbenchError

app = typer.Typer(
    name="shiftbench",
    help="Robustness and domain-shift studies of industrial visual anomaly detection.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from shiftbench import __version__

        typer.echo(f"shiftbench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Robustness and domain-shift studies of industrial visual anomaly detection."""


_COMMANDS = (data_cmd, shift_cmd, list_cmd, run_cmd, report_cmd, cache_cmd, predict_cmd, app_cmd)
for _module in _COMMANDS:
    _module.register(app)


def error_line(exc: ShiftbenchError) -> str:
    """The one line the CLI prints for ``exc``: a parameter it names shown as its flag."""
    return f"error: {exc.message_for(flag_of)}"


def main(argv: list[str] | None = None) -> None:
    """Run the CLI. User errors (bad input, bad options) print one line on stderr naming the
    file or the flag, and exit with status 2."""
    try:
        code = app(args=argv, standalone_mode=False)
    except ShiftbenchError as exc:
        print(error_line(exc), file=sys.stderr)
        sys.exit(2)
    except _click_errors.NoArgsIsHelpError as exc:  # the help itself, not an error
        if exc.format_message().strip():  # (rich help is printed while it is built)
            exc.show()
        sys.exit(exc.exit_code)
    except _click_errors.ClickException as exc:  # unknown option, a value click cannot parse
        print(f"error: {' '.join(exc.format_message().split())}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except _click_errors.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(1)
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
