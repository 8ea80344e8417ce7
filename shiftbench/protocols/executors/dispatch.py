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

Where things live: :mod:`~shiftbench.protocols.worker` (what runs inside a worker),
:mod:`~shiftbench.protocols.executors.base` (what the executors share),
:mod:`~shiftbench.protocols.executors.process` and :mod:`~shiftbench.protocols.executors.ray`
(the executors); this module holds the driver's side and re-exports the rest.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import numpy as np
import pandas as pd

from shiftbench.errors import ShiftbenchError
from shiftbench.protocols.config import EXECUTORS, StudyConfig
from shiftbench.protocols.executors.base import (  # noqa: F401  (re-exported)
    MAX_RETRIES,
    POLL_SECONDS,
    _died,
    _Executor,
    _Failed,
)
from shiftbench.protocols.executors.process import (  # noqa: F401  (re-exported)
    ProcessExecutor,
    _thread_env,
    _worker_init,
)
from shiftbench.protocols.executors.ray import RayExecutor, _ray_execute, import_ray  # noqa: F401
from shiftbench.protocols.plan import Unit
from shiftbench.protocols.worker import (  # noqa: F401  (re-exported)
    FAULT_ENV,
    UnitPayload,
    UnitTask,
    _fault,
    _set_threads,
    _warm,
    execute,
    make_model,
)
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
    groups = _groups(todo)
    # make each group's twins once, into the image cache, before the workers read them
    if config.image_cache and runner.suites and not config.ship_images:
        _preshift(source, groups, bar)
    ship = _shipper(source, groups, bar, executor)
    task_of = _task_maker(runner, groups)
    collect = _Collector(runner, run, source, bar, timing, params_once)
    try:
        executor.run(
            [task_of(u) for u in todo],
            collect,
            status=lambda running: bar.set_postfix_str(_status_text(running)),
            images=ship if config.ship_images else None,
        )
    except _Failed as failed:
        _stop(runner, run, failed, collect.figures["units"])
    return collect.summary(executor)


def _groups(todo: list[Unit]) -> dict:
    """(seed, categories) -> needs of its units, as the serial runner loads."""
    groups: dict = {}
    for u in todo:
        groups.setdefault((u.seed, u.categories), set()).update(u.needs())
    return groups


def _preshift(source, groups: dict, bar) -> None:
    """Make each group's shifted twins once, into the image cache."""
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


def _shipper(source, groups: dict, bar, executor: _Executor) -> Callable[[UnitTask], object]:
    """``ship(task)`` for ship_images: the task's group's images, read once per group."""
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

    return ship


def _task_maker(runner, groups: dict) -> Callable[[Unit], UnitTask]:
    """``task_of(unit)``: the picklable task a worker runs for ``unit``."""
    config: StudyConfig = runner.build_config  # the options the run pinned (manifest)
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

    return task_of


class _Collector:
    """``on_done`` for the executors: writes each unit's payload into the run and adds up
    the figures for the manifest."""

    def __init__(self, runner, run, source, bar, timing: dict, params_once):
        self.runner, self.run, self.source, self.bar = runner, run, source, bar
        self.timing, self.params_once = timing, params_once
        self.sweep = len(runner.config.severities) > 1
        self.figures = {"units": 0, "unit_seconds": 0.0, "overheads": [], "workers": set()}

    def __call__(self, task: UnitTask, p: UnitPayload, seconds: float) -> None:
        run, source, figures = self.run, self.source, self.figures
        unit = task.unit
        for category, protocol, severity, shift, ids, maps in p.maps:
            sev = severity if self.sweep else None
            name = (
                schema.map_name(protocol, sev)
                if shift is None
                else schema.map_name(protocol, sev, shift)
            )
            run.write_maps(category, unit.model, unit.seed, name, ids, maps)
        for args, kwargs in p.shift_params:
            self.params_once(*args, **kwargs)
        if p.model is not None:
            from shiftbench.results.models import save_fitted

            data, thresholds = p.model
            meta = self.runner.model_meta(unit, thresholds)
            save_fitted(run.path, unit.key, _SavedModel(data), meta)
        for condition, data, thresholds in getattr(p, "adapted_models", []):
            from shiftbench.protocols.adapt_config import adapted_key, adapted_meta
            from shiftbench.results.models import save_fitted

            meta = self.runner.model_meta(unit, thresholds)
            meta = adapted_meta(meta, unit, condition, self.runner.suites)
            save_fitted(run.path, adapted_key(unit, condition), _SavedModel(data), meta)
        run.write_unit(p.key, p.scores, p.metrics, getattr(p, "targets", None))
        self.timing["fit_seconds"] += p.fit_seconds
        self.timing["score_seconds"] += p.score_seconds
        source.shift_seconds += p.shift_seconds
        for k, v in p.cache_stats.items():
            source.cache_stats[k] = source.cache_stats.get(k, 0) + v
        figures["units"] += 1
        figures["unit_seconds"] += p.finished - p.started
        figures["overheads"].append(seconds - (p.finished - p.started))
        figures["workers"].add(p.worker)
        self.bar.update(1)

    def summary(self, executor: _Executor) -> dict:
        """The executor's figures for the manifest."""
        figures = self.figures
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


def _stop(runner, run, failed: _Failed, done: int) -> None:
    """Stop the study with a failed unit's error (called while handling ``failed``)."""
    runner.echo(
        f"fit {failed.task.key} failed; {done} fit(s) of this run were finished and are "
        f"kept in {run.path} (rerun with --resume to continue)"
    )
    if isinstance(failed.error, ShiftbenchError):
        raise failed.error from None
    raise failed.error from failed.error.__cause__  # a bug: keep the worker's traceback
