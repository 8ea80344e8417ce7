"""What the executors share: the retry limit, the polling period, the base class and the
error a unit that failed for good stops the study with."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from shiftbench.errors import ShiftbenchError
from shiftbench.protocols.worker import UnitPayload, UnitTask

__all__ = ["MAX_RETRIES", "POLL_SECONDS"]

#: a unit whose worker died is run again at most this many times
MAX_RETRIES = 2
#: how often the driver refreshes per-worker status while waiting (seconds)
POLL_SECONDS = 1.0


class _Failed(Exception):
    """A unit failed for good; ``error`` is what the study stops with."""

    def __init__(self, task: UnitTask, error: BaseException):
        super().__init__(str(error))
        self.task, self.error = task, error


def _died(key: str, times: int) -> ShiftbenchError:
    return ShiftbenchError(
        f"fit {key}: its worker died {times} times (killed, or out of memory?); giving up on "
        "it. The fits finished so far are kept: fix the cause and rerun with --resume"
    )


class _Executor:
    """Runs tasks with a bounded number in flight; ``on_done(task, payload, seconds)``
    receives each result in the driver (seconds: submit -> result, as the driver saw it).
    ``status(running)`` receives {key: seconds running} while waiting."""

    name = "?"
    slots = 1

    def run(
        self,
        tasks: Iterable[UnitTask],
        on_done: Callable[[UnitTask, UnitPayload, float], None],
        status: Callable[[dict], None] = lambda running: None,
        images: Callable[[UnitTask], object] | None = None,
    ) -> None:
        raise NotImplementedError

    def warm(self) -> None:
        """Start the workers now (they import torch and the models), without waiting."""

    def close(self) -> None:
        pass
