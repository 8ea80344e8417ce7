"""Decode each image once: a content-keyed disk cache of image batches.

Decoding and resizing a PNG costs far more than reading its pixels back from a raw array
(about 1 ms for a 128 px image, 25 ms for a 1024 px MVTec image, against a few µs per
image from an uncompressed ``.npz``). Every seed of a study, and every later study on the
same dataset and image size, reads the same files: :func:`read_batch` decodes them once
and keeps the stacked result. The study runner keeps the shifted twins of a batch the same
way (:func:`cached`), so a resumed run, or a second study with another model, reuses them.

Keys are digests of everything that determines the arrays. For a decoded batch: the
reader version (and a digest of its source), the kind (image or mask), the target size
and, for every file, its absolute path, byte size and modification time (ns), so a file
that is replaced or edited gets a new key and a stale array is never returned. Entries are
written atomically (temporary file, then rename), so a crash or two racing processes never
leave a half-written one; an unreadable entry is computed again and replaced. The cache lives in
``<cache_dir()>/arrays/``, is safe to delete at any time, and is kept under
``$SHIFTBENCH_CACHE_GB`` GiB (default 20) by dropping the least recently used entries.
``image_cache: false`` in a study (or ``--no-image-cache``) turns it off.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import math
import os
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from shiftbench.data.io import as_path, read_image, read_mask
from shiftbench.errors import ShiftbenchError

#: Bump when read_image/read_mask change the pixels they return for the same file.
READER_VERSION = 1
#: Decoding releases the GIL: a few threads read a batch ~2x faster on 2 cores.
READ_THREADS = 4
DEFAULT_BUDGET_GB = 20.0


def cache_dir() -> Path:
    """Where shiftbench caches data (``$SHIFTBENCH_CACHE`` or ``~/.cache/shiftbench``)."""
    return Path(os.environ.get("SHIFTBENCH_CACHE", Path.home() / ".cache" / "shiftbench"))


def arrays_dir() -> Path:
    return cache_dir() / "arrays"


def digest(parts: object) -> str:
    """A stable hex digest of JSON-serialisable ``parts``."""
    payload = json.dumps(parts, separators=(",", ":"), sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


@functools.lru_cache(maxsize=64)
def source_digest(files: tuple[str, ...]) -> str:
    """A digest of the bytes of ``files`` (source code whose output a key must follow):
    an edited reader or perturbation gets new keys even if nobody bumped a version."""
    h = hashlib.sha256()
    for name in sorted(set(files)):
        h.update(name.encode())
        try:
            h.update(Path(name).read_bytes())
        except OSError:
            h.update(b"<unreadable>")
    return h.hexdigest()[:16]


def _reader_digest() -> str:
    import PIL

    return f"{PIL.__version__}-{source_digest((inspect.getfile(read_image),))}"


def batch_key(paths: Sequence[str | Path | None], size: int, kind: str) -> str | None:
    """The key of one decoded batch, or None when a file cannot be stat'ed (reading it
    will then raise the error that names it)."""
    files: list[list | None] = []
    for p in map(as_path, paths):
        if p is None:
            files.append(None)
            continue
        try:
            st = os.stat(p)
        except OSError:
            return None
        files.append([os.path.abspath(p), st.st_size, st.st_mtime_ns])
    return digest([READER_VERSION, _reader_digest(), kind, int(size), files])


def _load(path: Path) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    try:
        os.utime(path)  # mark as recently used
    except OSError:
        pass
    return arrays


def budget_gb() -> float:
    """The cache budget in GiB: ``$SHIFTBENCH_CACHE_GB``, or 20; a value that is not a
    number >= 0 is a one-line :class:`ShiftbenchError` (the runner asks before any work)."""
    value = os.environ.get("SHIFTBENCH_CACHE_GB")
    if value is None:
        return DEFAULT_BUDGET_GB
    try:
        gb = float(value)
    except ValueError:
        gb = math.nan
    if not gb >= 0 or math.isinf(gb):
        raise ShiftbenchError(
            f"SHIFTBENCH_CACHE_GB={value!r}: not a size in GiB; set a number such as 20, or unset it"
        )
    return gb


def _budget_bytes() -> float:
    return budget_gb() * 2**30


def _entries(folder: Path) -> list[tuple[float, int, Path]]:
    """``(last use, bytes, path)`` of every entry; one evicted meanwhile is left out."""
    out = []
    for entry in folder.glob("*.npz") if folder.is_dir() else []:
        try:
            st = entry.stat()
        except OSError:
            continue
        out.append((st.st_mtime, st.st_size, entry))
    return out


def _evict(folder: Path, keep: Path) -> None:
    """Drop the least recently used entries until the folder fits the budget."""
    entries = _entries(folder)
    total, budget = sum(s for _, s, _ in entries), _budget_bytes()
    for _, size, entry in sorted(entries, key=lambda e: e[0]):
        if total <= budget:
            break
        if entry != keep:
            entry.unlink(missing_ok=True)
            total -= size


def _store(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` atomically; a cache that cannot be written is simply not kept."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.stem + ".", suffix=".tmp", dir=path.parent)
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        return
    _evict(path.parent, keep=path)


def entry_path(name: str, key: str) -> Path:
    """The file of one cache entry (it may not exist: not computed yet, or evicted)."""
    return arrays_dir() / f"{name}-{key}.npz"


def cached(
    name: str,
    key: str | None,
    compute: Callable[[], dict[str, np.ndarray]],
    stats: dict[str, int] | None = None,
) -> dict[str, np.ndarray]:
    """``compute()`` once per ``key``: later calls read the arrays back from the cache.

    ``name`` prefixes the entry's file (for people looking at the folder); ``key=None``
    means "do not cache" and just computes. Arrays must not be object arrays. ``stats``,
    if given, counts ``hits`` and ``misses``."""
    if key is None:
        return compute()
    path = entry_path(name, key)
    arrays = _load(path) if path.is_file() else None
    if stats is not None:
        outcome = "misses" if arrays is None else "hits"
        stats[outcome] = stats.get(outcome, 0) + 1
    if arrays is None:
        arrays = compute()
        _store(path, arrays)
    return arrays


def _decode(paths: Sequence[str | None], size: int, kind: str) -> np.ndarray:
    if kind == "image":
        read = lambda p: read_image(p, size)  # noqa: E731
    else:
        read = lambda p: read_mask(p, size)  # noqa: E731
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        arrays = list(pool.map(read, paths))
    empty = (0, size, size, 3) if kind == "image" else (0, size, size)
    return np.stack(arrays) if arrays else np.zeros(empty, np.uint8)


def read_batch(
    paths: Sequence[str | Path | None],
    size: int,
    *,
    kind: str = "image",
    cache: bool = True,
    stats: dict[str, int] | None = None,
) -> np.ndarray:
    """Images ``uint8 [N, size, size, 3]`` (``kind="image"``) or masks ``uint8 [N, size,
    size]`` in {0, 255} (``kind="mask"``, a None path is an empty mask), read with
    :func:`~shiftbench.data.io.read_image` / :func:`~shiftbench.data.io.read_mask` or,
    with ``cache``, from the cache (``stats`` as in :func:`cached`). Bad files raise the
    same one-line :class:`~shiftbench.errors.ShiftbenchError` as the readers do."""
    if kind not in ("image", "mask"):
        raise ValueError(f"read_batch: kind must be 'image' or 'mask', not {kind!r}")
    files = [as_path(p) for p in paths]
    if kind == "mask" and all(p is None for p in files):
        return np.zeros((len(files), size, size), np.uint8)  # nothing to decode
    key = batch_key(files, size, kind) if cache and files else None
    out = cached(f"{kind}-{size}px", key, lambda: {"a": _decode(files, size, kind)}, stats)["a"]
    if len(out) != len(files):  # a digest collision or a damaged entry: decode afresh
        out = _decode(files, size, kind)
    return out


def cache_info() -> dict[str, float | int | str]:
    """Where the array cache is, how many entries it holds and their size (MiB), and its
    budget (MiB)."""
    entries = _entries(arrays_dir())
    return {
        "path": str(arrays_dir()),
        "entries": len(entries),
        "size_mb": sum(s for _, s, _ in entries) / 2**20,
        "budget_mb": _budget_bytes() / 2**20,
    }


def clear_cache() -> int:
    """Delete every array-cache entry (never the synthetic dataset); returns how many."""
    n = 0
    if arrays_dir().is_dir():
        for entry in arrays_dir().iterdir():
            if entry.suffix in (".npz", ".tmp") and entry.is_file():
                entry.unlink(missing_ok=True)
                n += entry.suffix == ".npz"
    return n
