"""The run directory a study writes and ``shiftbench report`` reads: the one writer.

The format (every file, column and manifest key) is :mod:`shiftbench.results.schema`;
the reader is :func:`shiftbench.results.load_run`. Write side::

    <run>/manifest.json      config, command, versions, hashes, status, times
    <run>/splits.csv         write_splits
    <run>/shift_params/      write_shift_params (one file per seed, severity, category)
    <run>/maps/              write_maps
    <run>/units/<key>/       write_unit: one finished fit, scores.parquet + metrics.parquet
    <run>/scores.parquet, metrics.parquet, metrics.csv, shift_params.parquet   assemble
    <run>/.partial/          units being written (moved into units/ when complete)
    <run>/.lock              held (flock) by the one process writing the run

Every file is written to a temporary name and moved into place with ``os.replace``, and a
unit's folder is renamed into ``units/`` only once both of its tables are on disk, so a
process killed at any instant (even ``kill -9``) leaves either a whole unit or none. The
lock is an OS file lock: the kernel drops it when its process dies, so a crashed run never
leaves a stale lock behind, while a second live writer is refused. A finished run calls
:meth:`RunDir.close`, which also removes ``.lock`` and an empty ``.partial/``. Every file is
created with the user's umask (0644 under the usual 022, 0600 under 077).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from shiftbench._io import atomic_file
from shiftbench.errors import ShiftbenchError
from shiftbench.results import schema

LOCK_NAME = schema.LOCK
PARTIAL = schema.PARTIAL
UNITS = schema.UNITS
UNIT_TABLES = schema.UNIT_TABLES


_atomic = atomic_file  # the one temp-file-then-rename writer (shiftbench._io)


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
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)  # the umask applies
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
        #: called by :meth:`write_unit` instead of writing a unit that is already finished
        #: (one fitted again only to save its model): ``recheck(key, scores, metrics)``
        #: checks the new tables against the stored ones, which stay
        self.recheck: Callable[[str, pd.DataFrame, pd.DataFrame], None] | None = None

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, *, reuse_empty: bool = False) -> RunDir:
        """Start a new run in ``path``; refused if the folder already holds a run.

        With ``reuse_empty``, a folder left by a run that failed before finishing any unit
        (:meth:`is_empty_failed`) does not count as a run: its leftovers are removed and
        the new run starts there (so re-running the same command after, say, a bad
        ``--weights`` file or a crash while loading reuses its folder, ``results/<name>``,
        instead of moving on to ``results/<name>-2``). Checked under the writer lock."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise ShiftbenchError(f"{path}: exists and is not a folder; choose another --out")
        path.mkdir(parents=True, exist_ok=True)
        fd = _acquire_lock(path)
        run = cls(path, fd)
        if reuse_empty and cls.is_empty_failed(path):
            for entry in path.iterdir():
                if entry.name == LOCK_NAME:
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
        if any(p.name != LOCK_NAME for p in path.iterdir()):
            run.unlock()
            raise ShiftbenchError(
                f"{path}: a run already exists in this folder; add --resume to continue it "
                "or choose another --out"
            )
        return run

    #: What a run that failed before its first finished unit may have left behind.
    _EMPTY_RUN_ENTRIES = frozenset(
        {schema.MANIFEST, schema.SPLITS, LOCK_NAME, PARTIAL, UNITS, schema.SHIFT_PARAMS_DIR}
    )

    @staticmethod
    def is_empty_failed(path: str | Path) -> bool:
        """True if ``path`` holds a run that stopped before finishing any unit: a readable
        manifest whose ``status`` is still ``running``, no finished unit under ``units/``,
        and nothing but what such a run writes (manifest, ``splits.csv``,
        ``shift_params/``, ``.partial/``, ``.lock``, temporary files). Nothing in it is
        worth keeping, so the same command may start afresh there
        (``create(path, reuse_empty=True)``). False for anything else, including a folder
        without a manifest, a finished run, or one with files a user put there. Takes no
        lock: a run still live in the folder is refused by :meth:`create`."""
        path = Path(path)
        try:
            manifest = json.loads((path / schema.MANIFEST).read_text())
            entries = list(path.iterdir())
        except (OSError, ValueError):
            return False
        if not isinstance(manifest, dict) or manifest.get("status") != schema.STATUS_RUNNING:
            return False
        for entry in entries:
            temporary = entry.name.startswith(".") and entry.name.endswith(".tmp")
            if entry.name not in RunDir._EMPTY_RUN_ENTRIES and not temporary:
                return False
        units = path / UNITS
        if units.is_dir():
            for folder in units.iterdir():
                if all((folder / name).is_file() for name in UNIT_TABLES):
                    return False
        return True

    @classmethod
    def open(cls, path: str | Path) -> RunDir:
        """Reopen an existing run (to resume it); refused while another process writes it."""
        path = Path(path)
        if not (path / schema.MANIFEST).is_file():
            raise ShiftbenchError(
                f"{path / schema.MANIFEST}: not found; this folder holds no shiftbench run"
            )
        run = cls(path, _acquire_lock(path))
        try:  # a run of a newer format is not resumed by older code
            schema.format_version(run.read_manifest(), path / schema.MANIFEST)
        except ShiftbenchError:
            run.unlock()
            raise
        return run

    @staticmethod
    def open_finished(path: str | Path):
        """Read a finished run (no lock taken): see :func:`shiftbench.results.load_run`."""
        from shiftbench.results.run import load_run

        return load_run(path)

    def unlock(self) -> None:
        """Release the writer lock (also released by the OS when the process ends)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = None

    def close(self) -> None:
        """End writing a finished run: remove ``.lock`` and an empty ``.partial/``, then
        release the lock, leaving the folder holding only the run's files. (An interrupted
        run keeps them; :meth:`unlock` alone releases the lock.) Safe to call twice."""
        if self._lock_fd is not None:
            (self.path / LOCK_NAME).unlink(missing_ok=True)  # while still holding the lock
        try:
            (self.path / PARTIAL).rmdir()  # only if empty: staged units are never dropped here
        except OSError:
            pass
        self.unlock()

    # -- manifest ------------------------------------------------------------------------
    def read_manifest(self) -> dict:
        path = self.path / schema.MANIFEST
        try:
            manifest = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ShiftbenchError(
                f"{path}: invalid JSON ({exc.msg}, line {exc.lineno}); restore it or start a new run"
            ) from None
        if not isinstance(manifest, dict):
            raise ShiftbenchError(f"{path}: not a JSON object; restore it or start a new run")
        return manifest

    def write_manifest(self, manifest: dict) -> None:
        """Write ``manifest`` (keys: :data:`schema.MANIFEST_KEYS`), stamped first with
        ``format_version`` = :data:`schema.FORMAT_VERSION`."""
        rest = {k: v for k, v in manifest.items() if k != "format_version"}
        atomic_write_json(
            self.path / schema.MANIFEST, {"format_version": schema.FORMAT_VERSION, **rest}
        )

    # -- run-level tables ----------------------------------------------------------------
    def write_splits(self, table: pd.DataFrame) -> Path:
        """``splits.csv``: the :data:`schema.SPLIT_COLUMNS` of ``table`` (other columns
        dropped), plus :data:`schema.DOMAIN_COLUMN` when the table has it (a real target)."""
        columns = list(schema.SPLIT_COLUMNS)
        if schema.DOMAIN_COLUMN in table.columns:
            columns.append(schema.DOMAIN_COLUMN)
        return atomic_write_table(self.path / schema.SPLITS, table[columns])

    def write_shift_params(
        self, seed: int, severity: int, category: str, rows: pd.DataFrame, shift: str | None = None
    ) -> Path:
        """``shift_params/seed{S}/sev{L}/{category}.parquet`` (rows as built by
        :func:`shift_params_frame`; in a per-shift study ``shift`` names the suite member
        and becomes a :data:`schema.SHIFT_COLUMN` column). An existing file (a resumed run
        that shifts other splits) is merged: every image keeps one row, the newest, sorted
        by sample_id."""
        path = self.path / schema.shift_params_path(seed, severity, category, shift)
        if shift is not None:
            rows = rows.assign(**{schema.SHIFT_COLUMN: shift})
        if path.is_file():
            rows = pd.concat([pd.read_parquet(path), rows], ignore_index=True)
            rows = rows.drop_duplicates("sample_id", keep="last").sort_values("sample_id")
        return atomic_write_table(path, rows.reset_index(drop=True))

    def write_maps(
        self,
        category: str,
        model: str,
        seed: int,
        name: str,
        sample_ids: Sequence[str] | np.ndarray,
        maps: np.ndarray,
    ) -> Path:
        """``maps/<category>/<model>/seed{S}/<name>.npz`` (``name``: :func:`schema.map_name`):
        ``sample_id`` as str, ``maps`` as float16 ``[N, H, W]``."""
        return atomic_write_npz(
            self.path / schema.maps_path(category, model, seed, name),
            sample_id=np.asarray(sample_ids).astype(str),
            maps=np.asarray(maps).astype(np.float16),
        )

    # -- units ---------------------------------------------------------------------------
    def unit_done(self, key: str) -> bool:
        folder = self.path / UNITS / key
        return all((folder / name).is_file() for name in UNIT_TABLES)

    def done_units(self) -> list[str]:
        folder = self.path / UNITS
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if self.unit_done(p.name))

    def write_unit(
        self,
        key: str,
        scores: pd.DataFrame,
        metrics: pd.DataFrame,
        targets: pd.DataFrame | None = None,
    ) -> None:
        """Store one finished unit: both tables appear together or not at all (with the
        unit's :data:`schema.ADAPT_TARGETS` when adaptation strategies read target images).
        A unit already finished goes to :attr:`recheck` instead, when it is set."""
        if self.recheck is not None and self.unit_done(key):
            self.recheck(key, scores, metrics)
            return
        staging = self.path / PARTIAL / key
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        scores.to_parquet(staging / schema.UNIT_SCORES, index=False)
        metrics.to_parquet(staging / schema.UNIT_METRICS, index=False)
        if targets is not None:
            targets.to_parquet(staging / schema.ADAPT_TARGETS, index=False)
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

    # -- the run's tables ----------------------------------------------------------------
    def assemble(self, protocol_order: Sequence[str]) -> pd.DataFrame:
        """Gather the unit tables into ``scores.parquet``, ``metrics.parquet`` and
        ``metrics.csv`` (with the macro average over categories as category ``mean`` when
        there is more than one; protocols sorted in ``protocol_order``) and the per-file
        shift parameters into ``shift_params.parquet``. Returns the metrics table."""
        scores = self.read_units(schema.UNIT_SCORES)
        metrics = self.read_units(schema.UNIT_METRICS)
        keys = ["model", "seed", "protocol", "severity", "metric"]
        sort = list(schema.METRIC_SORT)
        if schema.SHIFT_COLUMN in metrics.columns:  # a per-shift study
            keys.insert(4, schema.SHIFT_COLUMN)
            sort.insert(5, schema.SHIFT_COLUMN)
        if schema.ADAPTATION_COLUMN in metrics.columns:  # a study naming strategies
            adapt = [schema.ADAPTATION_COLUMN, schema.K_COLUMN]
            keys[-1:-1] = adapt
            sort[-1:-1] = adapt
        if metrics["category"].nunique() > 1:
            mean = (
                metrics.groupby(keys, sort=False, dropna=False)["value"]
                .mean()
                .reset_index()
                .assign(category=schema.MEAN_CATEGORY)
            )
            metrics = pd.concat([metrics, mean[metrics.columns]], ignore_index=True)
        order = {name: i for i, name in enumerate(protocol_order)}
        metrics = metrics.sort_values(
            sort,
            key=lambda c: c.map(order) if c.name == "protocol" else c,
        ).reset_index(drop=True)
        atomic_write_table(self.path / schema.SCORES, scores)
        atomic_write_table(self.path / schema.METRICS, metrics)
        atomic_write_table(self.path / schema.METRICS_CSV, metrics)
        targets = [
            self.path / UNITS / k / schema.ADAPT_TARGETS
            for k in self.done_units()
            if (self.path / UNITS / k / schema.ADAPT_TARGETS).is_file()
        ]
        if targets:
            atomic_write_table(
                self.path / schema.ADAPT_TARGETS,
                pd.concat([pd.read_parquet(p) for p in targets], ignore_index=True),
            )
        params = sorted((self.path / schema.SHIFT_PARAMS_DIR).glob(schema.SHIFT_PARAMS_GLOB))
        if params:
            atomic_write_table(
                self.path / schema.SHIFT_PARAMS,
                pd.concat([pd.read_parquet(p) for p in params], ignore_index=True),
            )
        return metrics


def shift_params_frame(
    seed: int,
    category: str,
    sample_ids: Sequence[str] | np.ndarray,
    splits: Sequence[str] | np.ndarray,
    suite_name: str,
    suite_hash: str,
    severity: int,
    params: Sequence[dict | str] | np.ndarray,
) -> pd.DataFrame:
    """The rows of one shift-params file (:data:`schema.SHIFT_PARAM_COLUMNS`), aligned with
    ``sample_ids``. ``params`` are ``Suite.sample`` dicts or their JSON text
    (``json.dumps(p, sort_keys=True)``, which is what a dict is turned into)."""
    text = [str(p) if isinstance(p, str) else json.dumps(p, sort_keys=True) for p in params]
    if not (len(sample_ids) == len(splits) == len(text)):
        raise ValueError(
            f"shift_params_frame: {len(sample_ids)} sample ids, {len(splits)} splits, "
            f"{len(text)} params"
        )
    return pd.DataFrame(
        {
            "seed": seed,
            "sample_id": np.asarray(sample_ids),
            "category": category,
            "split": np.asarray(splits),
            "suite": suite_name,
            "suite_hash": suite_hash,
            "severity": severity,
            "params": np.array(text, dtype=object),
        },
        columns=list(schema.SHIFT_PARAM_COLUMNS),
    )
