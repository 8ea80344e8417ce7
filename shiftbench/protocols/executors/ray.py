"""``ray``: units as tasks on a Ray cluster."""

from __future__ import annotations

import math
import os
import sys
import time
from collections import deque

from shiftbench.errors import ShiftbenchError
from shiftbench.protocols.executors.base import MAX_RETRIES, POLL_SECONDS, _Executor, _Failed
from shiftbench.protocols.worker import UnitPayload, UnitTask, _warm, execute

__all__ = ["RayExecutor", "import_ray"]


#: Ray's switch for token authentication (docs.ray.io, ray-security/token-auth).
AUTH_MODE_ENV = "RAY_AUTH_MODE"


def import_ray(local: bool = False):
    """``ray``, imported with its usage statistics off (unless the user set them).

    ``local``: this process will start its own Ray instance (no address, no
    ``RAY_ADDRESS``). Ray >= 2.59 turns token authentication on for such an instance and
    warns so on every run when ``RAY_AUTH_MODE`` is unset; setting it to ``token`` keeps
    authentication on, without the warning (the token is made, once, in ~/.ray/auth_token,
    as Ray does). Only before Ray is first imported (it caches the mode at import) and
    unless the user chose a mode. Joining a cluster leaves the variable alone."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if local and "ray" not in sys.modules and not os.environ.get("RAY_ADDRESS"):
        os.environ.setdefault(AUTH_MODE_ENV, "token")
    try:
        import ray
    except ImportError:
        raise ShiftbenchError(
            "executor ray: Ray is not installed; pip install 'shiftbench[ray]' "
            "(or choose --executor process)",
            param="executor",
        ) from None
    return ray


def _ray_execute(task: UnitTask, images=None) -> UnitPayload:
    import ray

    payload = execute(task, images)
    node = ray.get_runtime_context().get_node_id()
    payload.worker = f"{node[:12]}:{os.getpid()}"  # several nodes may share a host
    return payload


class RayExecutor(_Executor):
    """Units as Ray tasks with ``cpus``/``gpus`` each (fractions allowed); a worker that
    dies is retried by Ray (``max_retries``), a unit's own error is not. Joins ``address``
    (``auto``, ``HOST:PORT``) or starts a local instance; reuses a running one."""

    name = "ray"

    def __init__(
        self,
        address: str | None,
        cpus: float,
        gpus: float,
        threads: int | None,
        max_retries: int = MAX_RETRIES,
    ):
        self.ray = ray = import_ray(local=address is None)
        self._started = False
        if not ray.is_initialized():
            kwargs: dict = {"include_dashboard": False, "log_to_driver": False}
            try:
                ray.init(address=address, **kwargs)
            except ConnectionError as exc:
                raise ShiftbenchError(
                    f"ray_address {address}: cannot join the Ray cluster ({exc}); start it with "
                    "`ray start --head` or check the address",
                    param="ray_address",
                ) from None
            self._started = True
        self.cpus, self.gpus, self.threads = cpus, gpus, threads
        self.remote = ray.remote(_ray_execute).options(
            num_cpus=cpus, num_gpus=gpus, max_retries=max_retries, retry_exceptions=False
        )
        self.slots = self._capacity()
        self._refs: dict = {}

    def _capacity(self) -> int:
        """How many units the cluster can run at once (at least 1)."""
        res = self.ray.cluster_resources()
        n = math.floor(res.get("CPU", 1) / self.cpus + 1e-9) if self.cpus else 10**6
        if self.gpus:
            n = min(n, math.floor(res.get("GPU", 0) / self.gpus + 1e-9))
        if n < 1:
            raise ShiftbenchError(
                f"the Ray cluster ({res.get('CPU', 0):g} CPUs, {res.get('GPU', 0):g} GPUs) has no "
                f"room for one fit ({self.cpus:g} CPUs, {self.gpus:g} GPUs); lower "
                "--cpus-per-unit/--gpus-per-unit or add nodes"
            )
        return n

    def put(self, value):
        return self.ray.put(value)

    def warm(self) -> None:
        warm = self.ray.remote(_warm).options(num_cpus=self.cpus, num_gpus=self.gpus)
        self._warming = [warm.remote(self.threads) for _ in range(self.slots)]

    def run(self, tasks, on_done, status=lambda running: None, images=None):
        ray = self.ray
        pending = deque(tasks)
        error: _Failed | None = None
        refs = self._refs  # ObjectRef -> (task, submitted)
        try:
            while refs or (pending and error is None):
                self.slots = max(self.slots, self._capacity())  # nodes may have joined
                while pending and error is None and len(refs) < self.slots:
                    task = pending.popleft()
                    args = (task,) if images is None else (task, images(task))
                    refs[self.remote.remote(*args)] = (task, time.monotonic())
                now = time.monotonic()
                status({t.key: now - t0 for t, t0 in refs.values()})
                done, _ = ray.wait(list(refs), num_returns=1, timeout=POLL_SECONDS)
                for ref in done:
                    task, t0 = refs.pop(ref)
                    try:
                        payload = ray.get(ref)
                    except ray.exceptions.RayTaskError as exc:  # raised by the unit itself
                        cause = getattr(exc, "cause", None)
                        error = error or _Failed(task, cause if cause is not None else exc)
                    except ray.exceptions.RayError as exc:  # its worker died, retries spent
                        died = ShiftbenchError(
                            f"fit {task.key}: failed on Ray after retries ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}). The fits finished "
                            "so far are kept: fix the cause and rerun with --resume"
                        )
                        error = error or _Failed(task, died)
                    else:
                        on_done(task, payload, time.monotonic() - t0)
        except BaseException:
            for ref in list(refs):
                ray.cancel(ref, force=True)
            refs.clear()
            raise
        if error is not None:
            raise error

    def close(self) -> None:
        if self._started and self.ray.is_initialized():
            self.ray.shutdown()
        self._started = False
