"""Efficiency figures: wall seconds, peak memory, parameter count, size on disk.

``track()`` measures one block (a fit or a scoring pass)::

    with track() as fit_cost:
        model.fit(train)
    with track() as score_cost:
        model.score(test)
    figures = efficiency_figures(model, fit_cost, score_cost, n_scored=len(test))

Peak memory is the process's resident-set high-water mark during the block. On Linux the
kernel's own mark (``VmHWM``) is reset at entry through ``/proc/self/clear_refs``, so the
figure is exact; elsewhere a sampling thread reads the RSS every 5 ms.
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shiftbench.models.base import AnomalyModel

_PROC_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


@dataclass
class Measurement:
    """Filled in when the ``track()`` block ends.

    ``seconds``: wall time; ``peak_memory_mb``: RSS high-water mark in the block (MiB);
    ``start_memory_mb``: RSS at entry, so ``peak_memory_mb - start_memory_mb`` is what the
    block added; ``method``: how the peak was measured.
    """

    seconds: float = float("nan")
    peak_memory_mb: float = float("nan")
    start_memory_mb: float = float("nan")
    method: str = ""
    _samples: list[float] = field(default_factory=list, repr=False)


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        # no /proc: the lifetime peak is the best portable figure (bytes on macOS)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def _vm_hwm_mb() -> float | None:
    try:
        for line in _PROC_STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


def _reset_hwm() -> bool:
    try:
        _CLEAR_REFS.write_text("5")  # "5" resets the peak RSS counter (Linux >= 4.0)
    except OSError:
        return False
    hwm, rss = _vm_hwm_mb(), _rss_mb()
    return hwm is not None and hwm <= rss + 1.0


@contextmanager
def track(sample_interval: float = 0.005) -> Iterator[Measurement]:
    """Measure the wall seconds and peak RSS of the ``with`` block."""
    result = Measurement(start_memory_mb=_rss_mb())
    exact = _reset_hwm()
    stop = threading.Event()
    sampler = None
    if not exact:
        result._samples.append(result.start_memory_mb)

        def sample() -> None:
            while not stop.wait(sample_interval):
                result._samples.append(_rss_mb())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
    start = time.perf_counter()
    try:
        yield result
    finally:
        result.seconds = time.perf_counter() - start
        if exact:
            result.peak_memory_mb = max(_vm_hwm_mb() or 0.0, result.start_memory_mb)
            result.method = "VmHWM"
        else:
            stop.set()
            sampler.join()
            result._samples.append(_rss_mb())
            result.peak_memory_mb = max(result._samples)
            result.method = f"sampled every {sample_interval * 1000:g} ms"


def model_size_mb(model: AnomalyModel) -> float:
    """Size (MiB) of the fitted model's file as :meth:`AnomalyModel.save` writes it."""
    with tempfile.TemporaryDirectory() as tmp:
        path = model.save(Path(tmp) / "model.pt")
        return path.stat().st_size / 2**20


def efficiency_figures(
    model: AnomalyModel, fit: Measurement, score: Measurement, n_scored: int
) -> dict[str, float]:
    """The efficiency metrics of ``metrics.parquet`` for one fit and one scoring pass.

    Keys: ``fit_seconds, ms_per_image, images_per_second, n_parameters, model_size_mb,
    peak_memory_mb`` (the larger peak of fit and scoring).
    """
    per_image = score.seconds / n_scored if n_scored else float("nan")
    return {
        "fit_seconds": fit.seconds,
        "ms_per_image": per_image * 1000.0,
        "images_per_second": 1.0 / per_image if per_image > 0 else float("nan"),
        "n_parameters": float(model.n_parameters),
        "model_size_mb": model_size_mb(model),
        "peak_memory_mb": max(fit.peak_memory_mb, score.peak_memory_mb),
    }
