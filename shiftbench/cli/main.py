"""Entry point of the ``shiftbench`` console script."""

from __future__ import annotations

import os
import sys

import typer

# Public names only: typer (>= 0.26) vendors click, and every error it raises for a bad
# command line derives from typer.TyperException (public since 0.27); typer.Abort and
# typer.Exit are its own. Checked with typer 0.27.3, 0.28.0 and 0.29.2 (the bounds in
# pyproject.toml); typer 0.26 lacks the public name, older typer raises click's errors.
from typer import TyperException as _UsageError

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
from shiftbench.cli.options import flag_of, set_argv
from shiftbench.errors import ShiftbenchError

app = typer.Typer(
    name="shiftbench",
    help="Robustness and domain-shift studies of industrial visual anomaly detection.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help: rich markup ate text in square brackets (pip install
    # 'shiftbench[ray]', [default: ...] in a help string), cut long words with an ellipsis
    # ($SHIFTBENCH_CACHE/...) and kept the docstrings' hard line breaks. Click re-wraps each
    # paragraph to the terminal (COLUMNS), up to 120 columns (sub-commands inherit it).
    rich_markup_mode=None,
    context_settings={"max_content_width": 120},
)

#: Set (to anything but empty or 0) to get the full traceback of an unexpected error.
DEBUG_ENV = "SHIFTBENCH_DEBUG"


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


def _debug() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def bug_line(exc: BaseException) -> str:
    """The one line the CLI prints for an unexpected exception (not a
    :class:`ShiftbenchError`): its type and the first line of its message, and how to
    see the traceback."""
    text = str(exc).strip().splitlines()
    detail = f": {text[0]}" if text else ""
    return (
        f"error: {type(exc).__name__}{detail} "
        f"(unexpected; run with {DEBUG_ENV}=1 for the traceback)"
    )


def _is_help(exc: Exception) -> bool:
    """True for the 'error' click raises to print a group's help when it gets no
    arguments (``NoArgsIsHelpError``: in no public namespace, hence by name)."""
    return type(exc).__name__ == "NoArgsIsHelpError"


def main(argv: list[str] | None = None) -> None:
    """Run the CLI. User errors (bad input, bad options) print one line on stderr naming the
    file or the flag, and exit with status 2. Any other exception is a bug: one line naming
    it, exit status 1, the traceback only with ``SHIFTBENCH_DEBUG=1``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    set_argv(argv)
    try:
        code = app(args=argv, standalone_mode=False)
    except ShiftbenchError as exc:
        print(error_line(exc), file=sys.stderr)
        sys.exit(2)
    except _UsageError as exc:
        if _is_help(exc):  # the help itself, not an error
            if exc.format_message().strip():  # (rich help is printed while it is built)
                exc.show()
        else:  # unknown option, a value click cannot parse
            print(f"error: {' '.join(exc.format_message().split())}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(1)
    except Exception as exc:
        if _debug():
            raise
        print(bug_line(exc), file=sys.stderr)
        sys.exit(1)
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
