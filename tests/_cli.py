"""The test files' one way to call ``shiftbench ARGV`` in this process."""

from __future__ import annotations

from shiftbench.cli.main import main


def run_main(argv, capsys) -> tuple[int | str | None, str, str]:
    """``shiftbench ARGV`` here: its exit code (0 when it returns), stdout and stderr."""
    try:
        main(argv)
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
    out = capsys.readouterr()
    return code, out.out, out.err
