"""Progress that suits where the output goes.

On a terminal, :func:`bar` is a tqdm bar. When stderr is a file or a pipe (a batch job's
log, CI), redrawing a bar writes escape codes and carriage returns that turn logs into
noise; there :func:`bar` returns :class:`LineProgress`, which prints a plain line such as
``fits: 3/12 fit (25%) 41s`` at most every ~10% of the total or every 30 s, plus one at the
end. Both take the same calls: ``update(n)``, ``set_postfix_str(s)``, ``close()``, and
``with bar(...) as b:``.
"""

from __future__ import annotations

import math
import sys
import time
from typing import IO, Any

#: A plain line at most every this fraction of the total ...
LINE_EVERY_FRACTION = 0.1
#: ... or every this many seconds, whichever comes first.
LINE_EVERY_SECONDS = 30.0


def _is_tty(stream: IO[str] | None) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError):  # a closed or unusual stream
        return False


class LineProgress:
    """A tqdm-compatible progress report that writes plain lines (no escape codes)."""

    def __init__(
        self,
        total: int | None,
        desc: str = "",
        unit: str = "it",
        *,
        disable: bool = False,
        leave: bool = True,
        file: IO[str] | None = None,
        every_fraction: float = LINE_EVERY_FRACTION,
        every_seconds: float = LINE_EVERY_SECONDS,
        clock=time.monotonic,
    ):
        self.total = total
        self.desc = desc
        self.unit = unit
        self.disable = disable
        self.leave = leave
        self.n = 0
        self.postfix = ""
        self._file = file
        self._every_n = max(1, math.ceil(total * every_fraction)) if total else None
        self._every_s = every_seconds
        self._clock = clock
        self._start = clock()
        self._last_time = self._start
        self._last_n = 0
        self._closed = False
        self._emitted = False

    # -- tqdm's interface ---------------------------------------------------------------
    def update(self, n: int = 1) -> None:
        self.n += n
        if self.disable or self._closed:
            return
        now = self._clock()
        due_n = self._every_n is not None and self.n - self._last_n >= self._every_n
        if due_n or now - self._last_time >= self._every_s:
            if self.total is None or self.n < self.total:
                self._emit(now)

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = str(s)

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    def refresh(self) -> None:  # nothing is redrawn
        pass

    def write(self, s: str) -> None:
        print(s, file=self._stream(), flush=True)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self.disable and self.leave and (self.n != self._last_n or not self._emitted):
            self._emit(self._clock())  # the final count, unless just printed

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- output ---------------------------------------------------------------------------
    def _stream(self) -> IO[str]:
        return self._file if self._file is not None else sys.stderr

    def line(self, now: float | None = None) -> str:
        """The line for the current state, e.g. ``fits: 3/12 fit (25%) 41s, ae brick``."""
        elapsed = (self._clock() if now is None else now) - self._start
        count = f"{self.n}/{self.total}" if self.total else f"{self.n}"
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        head = f"{self.desc}: " if self.desc else ""
        tail = f", {self.postfix}" if self.postfix else ""
        return f"{head}{count} {self.unit}{pct} {elapsed:.0f}s{tail}"

    def _emit(self, now: float) -> None:
        self._last_time, self._last_n, self._emitted = now, self.n, True
        print(self.line(now), file=self._stream(), flush=True)


def bar(
    total: int | None,
    desc: str = "",
    unit: str = "it",
    *,
    disable: bool = False,
    leave: bool = True,
    position: int | None = None,
    file: IO[str] | None = None,
):
    """A progress bar for ``total`` steps: tqdm when the output stream (``file``, default
    stderr) is a terminal, else a :class:`LineProgress` printing a plain line at most every
    ~10% or 30 s. ``disable=True`` shows nothing (the object still counts ``n``)."""
    stream = file if file is not None else sys.stderr
    if not disable and _is_tty(stream):
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit=unit, leave=leave, position=position, file=file)
    return LineProgress(total, desc, unit, disable=disable, leave=leave, file=file)
