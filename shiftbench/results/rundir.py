"""The run directory a study writes and ``shiftbench report`` reads.

Layout (see ``docs/architecture.md``)::

    <run>/manifest.json      config, command, versions, hashes, status, times
    <run>/units/<key>/       one finished fit: scores.parquet + metrics.parquet
    <run>/.partial/          units being written (moved into units/ when complete)
    <run>/.lock              held (flock) by the one process writing the run

Every file is written to a temporary name and moved into place with ``os.replace``, and a
unit's folder is renamed into ``units/`` only once both of its tables are on disk, so a
process killed at any instant (even ``kill -9``) leaves either a whole unit or none. The
lock is an OS file lock: the kernel drops it when its process dies, so a crashed run never
leaves a stale lock behind, while a second live writer is refused.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from shiftbench.errors import ShiftbenchError

LOCK_NAME = ".lock"
PARTIAL = ".partial"
UNITS = "units"
UNIT_TABLES = ("scores.parquet", "metrics.parquet")


@contextmanager
def _atomic(path: Path) -> Iterator[Path]:
    """Yield a temporary name beside ``path``; on success move it onto ``path`` in one
    step, on any failure remove it. Readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_table(path: str | Path, table: pd.DataFrame) -> Path:
    """Write ``table`` to ``path`` (``.csv`` or ``.parquet``, no index) atomically."""
    path = Path(path)
    if path.suffix not in (".csv", ".parquet"):
        raise ValueError(f"atomic_write_table: {path}: expected a .csv or .parquet name")
    with _atomic(path) as tmp:
        if path.suffix == ".csv":
            table.to_csv(tmp, index=False)
        else:
            table.to_parquet(tmp, index=False)
    return path


def atomic_write_npz(path: str | Path, **arrays: np.ndarray) -> Path:
    """Write ``arrays`` to a compressed ``.npz`` at ``path`` atomically."""
    path = Path(path)
    with _atomic(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
    return path


def atomic_write_json(path: str | Path, obj) -> Path:
    """Write ``obj`` as indented JSON at ``path`` atomically."""
    path = Path(path)
    with _atomic(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")
    return path


def _try_lock(fd: int) -> bool:
    """Take an exclusive lock on ``fd`` without waiting; False if another process has it."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def _acquire_lock(folder: Path) -> int:
    """Take the run's writer lock; refuse (one line) if another process holds it."""
    lock = folder / LOCK_NAME
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    if not _try_lock(fd):
        holder = lock.read_text().strip() or "?"
        os.close(fd)
        raise ShiftbenchError(
            f"{folder}: another shiftbench run is writing to this folder (pid {holder}); "
            "wait for it to finish or choose another --out"
        )
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


class RunDir:
    """One run folder, held open for writing by this process (use :meth:`create`/:meth:`open`)."""

    def __init__(self, path: Path, lock_fd: int | None):
        self.path = Path(path)
        self._lock_fd = lock_fd

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path) -> RunDir:
        """Start a new run in ``path``; refused if the folder already holds a run."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise ShiftbenchError(f"{path}: exists and is not a folder; choose another --out")
        path.mkdir(parents=True, exist_ok=True)
        fd = _acquire_lock(path)
        run = cls(path, fd)
        if any(p.name != LOCK_NAME for p in path.iterdir()):
            run.unlock()
            raise ShiftbenchError(
                f"{path}: a run already exists in this folder; add --resume to continue it "
                "or choose another --out"
            )
        return run

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """Reopen an existing run (to resume it); refused while another process writes it."""
        path = Path(path)
        if not (path / "manifest.json").is_file():
            raise ShiftbenchError(
                f"{path / 'manifest.json'}: not found; this folder holds no shiftbench run"
            )
        return cls(path, _acquire_lock(path))

    def unlock(self) -> None:
        """Release the writer lock (also released by the OS when the process ends)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = None

    # -- manifest ------------------------------------------------------------------------
    def read_manifest(self) -> dict:
        path = self.path / "manifest.json"
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ShiftbenchError(
                f"{path}: invalid JSON ({exc.msg}, line {exc.lineno}); restore it or start a new run"
            ) from None

    def write_manifest(self, manifest: dict) -> None:
        atomic_write_json(self.path / "manifest.json", manifest)

    # -- units ---------------------------------------------------------------------------
    def unit_done(self, key: str) -> bool:
        folder = self.path / UNITS / key
        return all((folder / name).is_file() for name in UNIT_TABLES)

    def done_units(self) -> list[str]:
        folder = self.path / UNITS
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if self.unit_done(p.name))

    def write_unit(self, key: str, scores: pd.DataFrame, metrics: pd.DataFrame) -> None:
        """Store one finished unit: both tables appear together or not at all."""
        staging = self.path / PARTIAL / key
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        scores.to_parquet(staging / "scores.parquet", index=False)
        metrics.to_parquet(staging / "metrics.parquet", index=False)
        final = self.path / UNITS / key
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():  # a unit re-run on resume replaces its incomplete remains
            shutil.rmtree(final)
        os.replace(staging, final)

    def read_units(self, name: str) -> pd.DataFrame:
        """Concatenate table ``name`` (e.g. ``scores.parquet``) over all finished units."""
        keys = self.done_units()
        if not keys:
            raise ShiftbenchError(f"{self.path / UNITS}: no finished fits to assemble")
        return pd.concat(
            [pd.read_parquet(self.path / UNITS / k / name) for k in keys], ignore_index=True
        )

    def clean_partial(self) -> None:
        """Drop what an interrupted process left half-written (staged units, temp files)."""
        shutil.rmtree(self.path / PARTIAL, ignore_errors=True)
        for tmp in self.path.rglob(".*.tmp"):
            tmp.unlink(missing_ok=True)
        units = self.path / UNITS
        if units.is_dir():
            for folder in units.iterdir():
                if not self.unit_done(folder.name):
                    shutil.rmtree(folder, ignore_errors=True)
