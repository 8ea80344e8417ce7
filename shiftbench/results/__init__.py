"""The run directory: manifest, per-unit results written atomically, resume, one writer."""

from shiftbench.results.rundir import RunDir, atomic_write_npz, atomic_write_table

__all__ = ["RunDir", "atomic_write_npz", "atomic_write_table"]
