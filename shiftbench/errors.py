"""The one error type users see.

Anything raised as :class:`ShiftbenchError` is a problem with the user's input (a path, a
name, an option); the CLI prints its message on one line and exits non-zero. Everything
else is a bug and keeps its traceback.

Library code names the *parameter* a bad value came from (``severity 7: levels run from 0
to 5``), never a command-line flag: the same message serves Python callers, study YAML
files and the CLI. Such an error carries the parameter in :attr:`ShiftbenchError.param`
and starts its message with it; the CLI rewrites that start to the flag
(:meth:`ShiftbenchError.message_for`, e.g. ``--severity 7: levels run from 0 to 5``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager


class ShiftbenchError(Exception):
    """A user-facing error: the message names the file/parameter and the fix.

    ``param`` (optional) is the name of the study parameter at fault (a
    :class:`~shiftbench.protocols.config.StudyConfig` field such as ``severity``); the
    message then starts with that name.
    """

    def __init__(self, message: str = "", *, param: str | None = None):
        if param is not None and not message.startswith(param):
            message = f"{param}: {message}"
        super().__init__(message)
        self.param = param

    def message_for(self, name_of: Callable[[str], str]) -> str:
        """The message with its leading parameter name replaced by ``name_of(param)``
        (the CLI passes the parameter -> flag mapping); unchanged without ``param``."""
        text = str(self)
        if self.param is None or not text.startswith(self.param):
            return text
        return name_of(self.param) + text[len(self.param) :]


@contextmanager
def about(param: str) -> Iterator[None]:
    """Attach ``param`` to a :class:`ShiftbenchError` raised inside the block that names no
    parameter yet (e.g. a registry's ``unknown model 'padim'; did you mean ...``), so the
    CLI can say which option it came from: the message becomes ``models: unknown ...``."""
    try:
        yield
    except ShiftbenchError as exc:
        if exc.param is None:
            exc.param = param
            text = str(exc)
            if not text.startswith(param):
                exc.args = (f"{param}: {text}", *exc.args[1:])
        raise
