"""The one error type users see.

Anything raised as :class:`ShiftbenchError` is a problem with the user's input (a path, a
name, an option); the CLI prints its message on one line and exits non-zero. Everything
else is a bug and keeps its traceback.
"""


class ShiftbenchError(Exception):
    """A user-facing error: the message names the file/option and the fix."""
