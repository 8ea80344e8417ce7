"""Where a study's units run: in the driver (``serial``), in worker processes on this
machine (``process``) or on a Ray cluster (``ray``).

A unit (:class:`~shiftbench.protocols.plan.Unit`: one fit and the conditions it serves)
travels as a picklable :class:`UnitTask`: the study config as a dict, the unit, the rows of
the splits it reads, the shift suites and the threads it may use. :func:`execute` runs it
anywhere: it reads its images (through the content-keyed image cache), fits and scores,
and returns a :class:`UnitPayload` (score and metric tables, timings, the anomaly maps
and shift-parameter rows to write). Workers never touch the run folder: the driver alone
writes each unit atomically (:meth:`RunDir.write_unit`), so no shared filesystem is needed
for results. The dataset root must be readable at the same path on every node, unless
``ship_images`` sends the decoded arrays through Ray's object store.

Before dispatching, the driver makes every needed set of shifted twins once into the image
cache (one (seed, category, severity) batch is then read by every unit that needs it
instead of being shifted in each worker); with the cache off, workers shift themselves
(deterministic: the same bytes).

Scores do not depend on the executor: a unit's result is a function of its inputs and of
the number of torch threads it runs with (torch's CPU reductions are split by thread, so
1 and 2 threads differ in the last bits). ``cpus_per_unit`` sets that number everywhere;
``serial`` without it keeps torch's default, as before executors existed.

Faults: a worker that dies mid-unit (killed, out of memory) costs only its unit, which is
run again on another worker, at most :data:`MAX_RETRIES` times; a unit that raises (a
:class:`~shiftbench.errors.ShiftbenchError`, a bug) stops the study with that error once
the units already running are finished and written, and ``--resume`` picks up the rest.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from shiftbench.errors import ShiftbenchError
from shiftbench.protocols.config import EXECUTORS, StudyConfig
from shiftbench.protocols.plan import Unit
from shiftbench.results import schema

__all__ = [
    "EXECUTORS",
    "MAX_RETRIES",
    "UnitTask",
    "UnitPayload",
    "execute",
    "make_model",
    "ProcessExecutor",
    "RayExecutor",
    "make_executor",
    "run_distributed",
]

#: a unit whose worker died is run again at most this many times
MAX_RETRIES = 2
#: test-only fault injection, read by the driver and carried by each task:
#: ``hang:<unit key>:<pid file>`` (the worker writes its pid there and sleeps, once: a
#: retry finds the file and runs normally) or ``fail:<unit key>`` (raises ShiftbenchError)
FAULT_ENV = "SHIFTBENCH_TEST_FAULT"
#: how often the driver refreshes per-worker status while waiting (seconds)
POLL_SECONDS = 1.0


# -- the unit of work ----------------------------------------------------------------------
@dataclass(frozen=True)
class UnitTask:
    """Everything a worker needs to run one unit (picklable)."""

    config: dict  # StudyConfig.to_dict()
    unit: Unit
    splits: pd.DataFrame  # the unit's seed and categories (absolute image paths)
    suites: dict  # the runner's suites (what ImageSource takes), a few kB
    needs: frozenset  # (Domain, split) pairs to load: the group's, to hit the cache
    threads: int | None  # torch threads; None leaves torch's default
    fault: str | None = None
    env: dict = field(default_factory=dict)  # environment for the worker (SHIFTBENCH_CACHE)
    driver_pid: int = 0  # names a saved model's file as the driver would (torch.save
    # records the file's name inside the archive: the same name, the same bytes)

    @property
    def key(self) -> str:
        return self.unit.key


@dataclass
class UnitPayload:
    """What a worker sends back for one unit; the driver writes it."""

    key: str
    scores: pd.DataFrame
    metrics: pd.DataFrame
    fit_seconds: float
    score_seconds: float
    shift_seconds: float
    #: (category, protocol name, severity, shift, sample ids, float16 maps) per condition
    maps: list = field(default_factory=list)
    #: (args, kwargs) of ImageSource's on_params per batch of twins made or read
    shift_params: list = field(default_factory=list)
    cache_stats: dict = field(default_factory=dict)
    #: --save-models: (the bytes model.save wrote, {category: Thresholds}), else None
    model: tuple | None = None
    worker: str = ""  # host:pid
    started: float = 0.0  # time.time() on the worker
    finished: float = 0.0


#: per worker process: one stand-in runner per config, so what the runner resolves once
#: (the device) is resolved once per worker too
_FACTORIES: dict = {}


def make_model(config: StudyConfig, name: str, seed: int):
    """A new, unfitted model ``name`` with the study's settings, made exactly as the serial
    runner makes it (:meth:`StudyRunner._model`, which reads only the config)."""
    from types import SimpleNamespace

    from shiftbench.protocols.runner import StudyRunner

    key = config.hash + repr(sorted(config.to_dict().items(), key=str))
    if key not in _FACTORIES:
        factory = SimpleNamespace(config=config)
        if hasattr(config, "device"):  # resolved here: a Ray GPU worker sees its own GPU
            from shiftbench.models.device import resolve_device

            factory.device = str(resolve_device(config.device))
        _FACTORIES[key] = factory
    return StudyRunner._model(_FACTORIES[key], name, seed)


def _set_threads(threads: int | None) -> None:
    if threads is not None:
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def _fault(task: UnitTask) -> None:
    """Test-only: hang or fail on one unit (see :data:`FAULT_ENV`)."""
    if not task.fault:
        return
    kind, _, rest = task.fault.partition(":")
    key, _, pid_file = rest.partition(":")
    if key != task.key:
        return
    if kind == "fail":
        raise ShiftbenchError(f"{key}: injected failure ({FAULT_ENV})")
    if kind == "hang" and pid_file and not os.path.exists(pid_file):
        tmp = f"{pid_file}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            f.write(str(os.getpid()))
        os.replace(tmp, pid_file)
        time.sleep(600)


def execute(task: UnitTask, images: dict | None = None) -> UnitPayload:
    """Run one unit in this process: read its images (or use ``images``, category ->
    :class:`~shiftbench.protocols.images.SplitImages`, sent by the driver), fit, score,
    and return the tables and what the driver has to write."""
    from shiftbench.protocols.evaluate import run_unit
    from shiftbench.protocols.images import ImageSource

    started = time.time()
    os.environ.update(task.env)
    _set_threads(task.threads)
    _fault(task)
    config = StudyConfig(**task.config)
    unit = task.unit
    params: list = []
    source = ImageSource(
        config, task.splits, task.suites, lambda *a, **k: params.append((a, k)), progress=False
    )
    if images is None:
        images = {c: source.load_category(c, unit.seed, set(task.needs)) for c in unit.categories}
    maps: list = []

    def keep_maps(category, condition, sample_ids, m):
        ids = np.asarray(sample_ids).astype(str)
        shift = getattr(condition, "shift", None)
        maps.append(
            (
                category,
                condition.protocol.name,
                condition.severity,
                shift,
                ids,
                m.astype(np.float16),
            )
        )

    saved: list = []

    def keep_model(fitted, thresholds):
        import tempfile

        name = f".{unit.key}{schema.MODEL_SUFFIX}.{task.driver_pid}.tmp"  # as save_fitted's
        with tempfile.TemporaryDirectory(prefix="shiftbench-model-") as tmp:
            path = os.path.join(tmp, name)
            fitted.save(path)
            with open(path, "rb") as f:
                saved.append((f.read(), thresholds))

    model = make_model(config, unit.model, unit.seed)
    result = run_unit(
        unit,
        model,
        images,
        on_maps=keep_maps if config.save_maps else None,
        on_fitted=keep_model if getattr(config, "save_models", False) else None,
    )
    return UnitPayload(
        key=unit.key,
        scores=result.scores,
        metrics=result.metrics,
        fit_seconds=result.fit_seconds,
        score_seconds=result.score_seconds,
        shift_seconds=source.shift_seconds,
        maps=maps,
        shift_params=params,
        cache_stats=dict(source.cache_stats),
        model=saved[0] if saved else None,
        worker=f"{socket.gethostname()}:{os.getpid()}",
        started=started,
        finished=time.time(),
    )


# -- executors ------------------------------------------------------------------------------
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


def _warm(threads: int | None = None) -> str:
    """Import what a unit needs (torch, the models, the evaluation), so that a worker's
    start-up overlaps the driver's own preparations instead of the first unit."""
    _set_threads(threads)
    import shiftbench.models  # noqa: F401
    import shiftbench.protocols.evaluate  # noqa: F401
    import shiftbench.transforms  # noqa: F401

    return f"{socket.gethostname()}:{os.getpid()}"


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


def import_ray():
    """``ray``, imported with its usage statistics off (unless the user set them)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
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
        self.ray = ray = import_ray()
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


def worker_threads(config: StudyConfig) -> int | None:
    """Torch threads per unit: ``cpus_per_unit`` rounded up; None (torch's default) for
    ``serial`` without it, 1 for the parallel executors."""
    if config.cpus_per_unit is not None:
        return max(1, math.ceil(config.cpus_per_unit - 1e-9))
    return None if config.executor == "serial" else 1


def make_executor(config: StudyConfig) -> _Executor:
    """The executor a study's config names (not ``serial``: the runner runs that itself)."""
    threads = worker_threads(config)
    if config.executor == "process":
        per = config.cpus_per_unit or 1
        jobs = config.jobs or max(1, math.floor((os.cpu_count() or 1) / per + 1e-9))
        return ProcessExecutor(jobs, threads)
    if config.executor == "ray":
        return RayExecutor(
            config.ray_address, config.cpus_per_unit or 1, config.gpus_per_unit, threads
        )
    raise ShiftbenchError(
        f"executor {config.executor!r}: unknown; choose from {', '.join(EXECUTORS)}",
        param="executor",
    )


# -- the driver's side ---------------------------------------------------------------------
class _SavedModel:
    """A fitted model as the bytes its worker's ``model.save`` wrote (for save_fitted)."""

    def __init__(self, data: bytes):
        self.data = data

    def save(self, path) -> None:
        with open(path, "wb") as f:
            f.write(self.data)


def _absolute(paths: pd.Series) -> pd.Series:
    return paths.map(lambda p: os.path.abspath(p) if isinstance(p, str) and p else p)


def _status_text(running: dict, limit: int = 4) -> str:
    """``brick__ae__seed0__clean 12s | washer__patchcore__seed0__clean 3s``."""
    items = sorted(running.items(), key=lambda kv: -kv[1])
    text = " | ".join(f"{k} {s:.0f}s" for k, s in items[:limit])
    more = len(items) - limit
    return text + (f" | +{more} more" if more > 0 else "")


def run_distributed(runner, run, source, todo: list[Unit], bar, timing: dict) -> dict:
    """Run the units ``todo`` of ``runner`` (a StudyRunner) on its config's executor,
    writing each finished one into ``run`` (a RunDir) from this process. ``source`` is
    the driver's ImageSource (pre-shifting; its counters gather the workers'), ``bar``
    one progress bar over all units, ``timing`` the run's fit/score seconds to add to.
    Returns the executor's figures for the manifest."""
    config: StudyConfig = runner.config
    written_params: set = set()
    write_params = source.on_params

    def params_once(seed, severity, category, rows, **kw):
        # every unit of a group reads the same twins: write their parameters once
        key = (seed, severity, category, tuple(sorted(kw.items())), tuple(rows["sample_id"]))
        if key not in written_params:
            written_params.add(key)
            write_params(seed, severity, category, rows, **kw)

    source.on_params = params_once
    executor = make_executor(config)
    try:
        executor.warm()  # workers start while the driver reads and shifts
        return _dispatch(runner, run, source, todo, bar, timing, executor, params_once)
    finally:
        executor.close()


def _dispatch(runner, run, source, todo, bar, timing, executor: _Executor, params_once) -> dict:
    config: StudyConfig = runner.config
    sweep = len(config.severities) > 1
    groups: dict = {}  # (seed, categories) -> needs of its units, as the serial runner loads
    for u in todo:
        groups.setdefault((u.seed, u.categories), set()).update(u.needs())
    # make each group's twins once, into the image cache, before the workers read them
    if config.image_cache and runner.suites and not config.ship_images:
        for (seed, cats), needs in groups.items():
            shifted = sorted({d for d, _ in needs if not d.is_clean}, key=str)
            if not shifted:
                continue
            for c in cats:
                bar.set_postfix_str(f"shifting {c} (seed {seed})")
                data = source.load_category(c, seed, needs)
                for domain in shifted:
                    split = next(sp for d, sp in sorted(needs, key=str) if d == domain)
                    data.pixels(domain, split)  # makes (or reads) the twins, all splits
                    data.drop(domain)
                del data
    shipped: dict = {}

    def ship(task: UnitTask):
        """The group's decoded images (clean and twins), sent once per group."""
        group = (task.unit.seed, task.unit.categories)
        if group not in shipped:
            shipped.clear()  # one group's arrays at a time in the driver
            needs = groups[group]
            data = {}
            for c in task.unit.categories:
                bar.set_postfix_str(f"reading {c} (seed {task.unit.seed})")
                d = source.load_category(c, task.unit.seed, needs)
                for domain, split in needs:
                    d.pixels(domain, split)
                d.loaders.clear()  # plain arrays: nothing to reload on the worker
                data[c] = d
            shipped[group] = executor.put(data) if hasattr(executor, "put") else data
        return shipped[group]

    env = {k: os.environ[k] for k in ("SHIFTBENCH_CACHE", "SHIFTBENCH_CACHE_GB") if k in os.environ}
    fault = os.environ.get(FAULT_ENV)
    threads = worker_threads(config)
    splits = runner.splits.assign(
        image_path=_absolute(runner.splits["image_path"]),
        mask_path=_absolute(runner.splits["mask_path"]),
    )
    config_dict = config.to_dict()
    if isinstance(config.weights, str) and os.path.isfile(config.weights):
        config_dict["weights"] = os.path.abspath(config.weights)  # workers' cwd may differ

    def task_of(u: Unit) -> UnitTask:
        rows = splits[(splits["seed"] == u.seed) & splits["category"].isin(u.categories)]
        needs = groups[u.seed, u.categories] if config.image_cache else u.needs()
        return UnitTask(
            config=config_dict,
            unit=u,
            splits=rows.reset_index(drop=True),
            suites=runner.suites,
            needs=frozenset(needs),
            threads=threads,
            fault=fault,
            env=env,
            driver_pid=os.getpid(),
        )

    figures = {"units": 0, "unit_seconds": 0.0, "overheads": [], "workers": set()}

    def on_done(task: UnitTask, p: UnitPayload, seconds: float) -> None:
        unit = task.unit
        for category, protocol, severity, shift, ids, maps in p.maps:
            sev = severity if sweep else None
            name = (
                schema.map_name(protocol, sev)
                if shift is None
                else schema.map_name(protocol, sev, shift)
            )
            run.write_maps(category, unit.model, unit.seed, name, ids, maps)
        for args, kwargs in p.shift_params:
            params_once(*args, **kwargs)
        if p.model is not None:
            from shiftbench.results.models import save_fitted

            data, thresholds = p.model
            meta = runner.model_meta(unit, thresholds)
            save_fitted(run.path, unit.key, _SavedModel(data), meta)
        run.write_unit(p.key, p.scores, p.metrics)
        timing["fit_seconds"] += p.fit_seconds
        timing["score_seconds"] += p.score_seconds
        source.shift_seconds += p.shift_seconds
        for k, v in p.cache_stats.items():
            source.cache_stats[k] = source.cache_stats.get(k, 0) + v
        figures["units"] += 1
        figures["unit_seconds"] += p.finished - p.started
        figures["overheads"].append(seconds - (p.finished - p.started))
        figures["workers"].add(p.worker)
        bar.update(1)

    try:
        executor.run(
            [task_of(u) for u in todo],
            on_done,
            status=lambda running: bar.set_postfix_str(_status_text(running)),
            images=ship if config.ship_images else None,
        )
    except _Failed as failed:
        done = figures["units"]
        runner.echo(
            f"fit {failed.task.key} failed; {done} fit(s) of this run were finished and are "
            f"kept in {run.path} (rerun with --resume to continue)"
        )
        if isinstance(failed.error, ShiftbenchError):
            raise failed.error from None
        raise failed.error from failed.error.__cause__  # a bug: keep the worker's traceback
    over = figures["overheads"] or [0.0]
    return {
        "name": executor.name,
        "slots": executor.slots,  # units run at once
        "workers": len(figures["workers"]),  # worker processes that ran units
        "nodes": len({w.rsplit(":", 1)[0] for w in figures["workers"]}),
        "unit_seconds": figures["unit_seconds"],  # inside the workers, summed
        # submit -> result seen by the driver, minus the unit's own time: scheduling,
        # transfer, worker start-up (the first units wait for it)
        "overhead_seconds_mean": float(np.mean(over)),
        "overhead_seconds_median": float(np.median(over)),
    }
