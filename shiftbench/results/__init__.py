"""The run directory: its format (:mod:`~shiftbench.results.schema`), the one writer
(:class:`RunDir`: manifest, atomic per-unit results, resume, assembly) and the one reader
(:func:`load_run`)."""

from shiftbench.results import schema
from shiftbench.results.run import Run, load_run
from shiftbench.results.rundir import (
    RunDir,
    atomic_write_json,
    atomic_write_npz,
    atomic_write_table,
    shift_params_frame,
)

__all__ = [
    "Run",
    "RunDir",
    "atomic_write_json",
    "atomic_write_npz",
    "atomic_write_table",
    "load_run",
    "schema",
    "shift_params_frame",
]
