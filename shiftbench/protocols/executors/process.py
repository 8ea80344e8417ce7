"""``process``: units in worker processes on this machine."""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from contextlib import contextmanager

from shiftbench.protocols.executors.base import (
    MAX_RETRIES,
    POLL_SECONDS,
    _died,
    _Executor,
    _Failed,
)
from shiftbench.protocols.worker import _set_threads, _warm, execute

__all__ = ["ProcessExecutor"]


@contextmanager
def _thread_env(threads: int | None):
    """While workers are spawned: their OpenMP/BLAS pools sized to ``threads`` (as Ray
    does), read by those libraries when they load. Two workers with two threads each on
    two busy cores spend their time waiting at each other's barriers."""
    keys = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
    if threads is None:
        yield
        return
    old = {k: os.environ.get(k) for k in keys}
    os.environ.update({k: str(threads) for k in keys})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _worker_init(threads: int | None, parent: int) -> None:
    """A process worker: its torch threads, and an exit when the driver is gone (killed
    with -9, it cannot tell its workers to stop)."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    _set_threads(threads)

    def watch():
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


class ProcessExecutor(_Executor):
    """``jobs`` worker processes on this machine (``spawn``ed: fork after torch has
    started its thread pool can deadlock). A worker that dies breaks the pool: it is
    rebuilt and the units that were in flight are submitted again."""

    name = "process"

    def __init__(self, jobs: int, threads: int | None, max_retries: int = MAX_RETRIES):
        self.slots = self.jobs = jobs
        self.threads = threads
        self.max_retries = max_retries
        self._pool = None

    def _new_pool(self):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(
            max_workers=self.jobs,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init,
            initargs=(self.threads, os.getpid()),
        )

    def warm(self) -> None:
        if self._pool is None:
            self._pool = self._new_pool()
        with _thread_env(self.threads):  # the workers start now, with this environment
            for _ in range(self.jobs):
                self._pool.submit(_warm, self.threads)

    def run(self, tasks, on_done, status=lambda running: None, images=None):
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        pending = deque(tasks)
        deaths: dict[str, int] = {}
        running: dict = {}  # future -> (task, submitted)
        error: _Failed | None = None

        def settle(fut) -> None:
            nonlocal error
            task, t0 = running.pop(fut)
            try:
                payload = fut.result()
            except BrokenProcessPool:  # its worker (or a neighbour) died: run it again
                deaths[task.key] = deaths.get(task.key, 0) + 1
                if deaths[task.key] > self.max_retries:
                    error = error or _Failed(task, _died(task.key, deaths[task.key]))
                else:
                    pending.appendleft(task)
            except BaseException as exc:  # the unit's own error: not retried
                error = error or _Failed(task, exc)
            else:
                on_done(task, payload, time.monotonic() - t0)

        if self._pool is None:
            self._pool = self._new_pool()
        try:
            while running or (pending and error is None):
                while pending and error is None and len(running) < self.jobs:
                    task = pending.popleft()
                    args = (task,) if images is None else (task, images(task))
                    try:
                        with _thread_env(self.threads):  # a new pool spawns on submit
                            fut = self._pool.submit(execute, *args)
                    except BrokenProcessPool:
                        pending.appendleft(task)
                        break
                    running[fut] = (task, time.monotonic())
                now = time.monotonic()
                status({t.key: now - t0 for t, t0 in running.values()})
                if running:
                    done, _ = wait(list(running), timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
                    for fut in done:
                        settle(fut)
                if getattr(self._pool, "_broken", False):
                    # a dead worker takes the whole pool down: settle what was in flight
                    # (finished units are kept, lost ones queued again), then a new pool
                    for fut in wait(list(running)).done:
                        settle(fut)
                    self._pool.shutdown(wait=True)
                    self._pool = self._new_pool()
        except BaseException:
            self.close()  # interrupted: do not leave workers behind
            raise
        if error is not None:
            raise error

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        procs = list(getattr(pool, "_processes", {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for p in procs:  # a unit still computing would otherwise run to its end
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=5)
