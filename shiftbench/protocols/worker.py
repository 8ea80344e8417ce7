"""What runs inside a worker: a unit as a picklable :class:`UnitTask`, :func:`execute`
that runs it anywhere and returns a :class:`UnitPayload`, and the test-only fault hooks
(:data:`FAULT_ENV`). See :mod:`shiftbench.protocols.executors.dispatch` for the whole picture.

Everything here is importable by module path, so spawned processes and Ray workers can
unpickle the tasks and the functions they run.
"""

from __future__ import annotations

import functools
import os
import socket
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from shiftbench.errors import ShiftbenchError
from shiftbench.protocols.config import StudyConfig
from shiftbench.protocols.evaluate import build_model
from shiftbench.protocols.plan import Unit
from shiftbench.results import schema

__all__ = ["FAULT_ENV", "UnitTask", "UnitPayload", "execute", "make_model"]

#: test-only fault injection, read by the driver and carried by each task:
#: ``hang:<unit key>:<pid file>`` (the worker writes its pid there and sleeps, once: a
#: retry finds the file and runs normally) or ``fail:<unit key>`` (raises ShiftbenchError)
FAULT_ENV = "SHIFTBENCH_TEST_FAULT"


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
    #: --save-models in a study naming strategies: (Condition, bytes, thresholds) each
    adapted_models: list = field(default_factory=list)
    #: the target images the adaptation strategies read (adaptation_targets), or None
    targets: pd.DataFrame | None = None
    worker: str = ""  # host:pid
    started: float = 0.0  # time.time() on the worker
    finished: float = 0.0


@functools.cache
def _device(spec: str) -> str:
    """The device a worker's models use, resolved once per worker process (a Ray GPU
    worker resolves ``auto`` to its own GPU)."""
    from shiftbench.models.device import resolve_device

    return str(resolve_device(spec))


def make_model(config: StudyConfig, name: str, seed: int):
    """A new, unfitted model ``name`` with the study's settings, built exactly as the
    serial runner builds it (:func:`~shiftbench.protocols.evaluate.build_model`)."""
    return build_model(config, name, seed, _device(config.device))


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
                getattr(condition, "map_protocol", condition.protocol.name),
                condition.severity,
                shift,
                ids,
                m.astype(np.float16),
            )
        )

    saved: list = []
    adapted: list = []

    def model_bytes(fitted, key: str) -> bytes:
        import tempfile

        name = f".{key}{schema.MODEL_SUFFIX}.{task.driver_pid}.tmp"  # as save_fitted's
        with tempfile.TemporaryDirectory(prefix="shiftbench-model-") as tmp:
            path = os.path.join(tmp, name)
            fitted.save(path)
            with open(path, "rb") as f:
                return f.read()

    def keep_model(fitted, thresholds):
        saved.append((model_bytes(fitted, unit.key), thresholds))

    def keep_adapted(condition, fitted, thresholds):
        from shiftbench.protocols.adapt_config import adapted_key

        key = adapted_key(unit, condition)
        if key is not None:
            adapted.append((condition, model_bytes(fitted, key), thresholds))

    model = make_model(config, unit.model, unit.seed)
    result = run_unit(
        unit,
        model,
        images,
        on_maps=keep_maps if config.save_maps else None,
        on_fitted=keep_model if getattr(config, "save_models", False) else None,
        on_adapted=keep_adapted if getattr(config, "save_models", False) else None,
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
        adapted_models=adapted,
        targets=result.targets,
        worker=f"{socket.gethostname()}:{os.getpid()}",
        started=started,
        finished=time.time(),
    )


def _warm(threads: int | None = None) -> str:
    """Import what a unit needs (torch, the models, the evaluation), so that a worker's
    start-up overlaps the driver's own preparations instead of the first unit."""
    _set_threads(threads)
    import shiftbench.models  # noqa: F401
    import shiftbench.protocols.evaluate  # noqa: F401
    import shiftbench.transforms  # noqa: F401

    return f"{socket.gethostname()}:{os.getpid()}"
