"""Entry point of the ``shiftbench`` console script."""

from __future__ import annotations

import sys

import typer

from shiftbench.cli import cache_cmd, data_cmd, list_cmd, report_cmd, run_cmd, shift_cmd
from shiftbench.errors import ShiftbenchError

app = typer.Typer(
    name="shiftbench",
    help="Robustness and domain-shift studies of industrial visual anomaly detection.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _module in (data_cmd, shift_cmd, list_cmd, run_cmd, report_cmd, cache_cmd):
    _module.register(app)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; user errors print one line on stderr and exit with status 2."""
    try:
        app(args=argv, standalone_mode=True)
    except ShiftbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
