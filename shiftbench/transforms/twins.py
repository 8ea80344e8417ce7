"""Shifted twins of many images: in memory (:func:`shift_batch`) or on disk (:func:`shift_dataset`).

Both spread the work over processes. Every image's params come from its own generator
(suite, seed, image id, severity), so the output is byte-identical whatever the number of
workers or the order of the images.
"""

from __future__ import annotations

import atexit
import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shiftbench.errors import ShiftbenchError
from shiftbench.transforms.base import canonical_json
from shiftbench.transforms.registry import _BUILTIN_MODULES
from shiftbench.transforms.suites import Suite

#: Columns of the params table written by :func:`shift_dataset` / built by :func:`params_table`.
PARAMS_COLUMNS = [
    "seed",
    "sample_id",
    "category",
    "orig_split",
    "suite",
    "suite_hash",
    "severity",
    "params",
]


def _init_worker() -> None:
    # parallelism is across processes; OpenCV's own thread pool would only oversubscribe
    import cv2

    cv2.setNumThreads(1)


_POOLS: dict[int, ProcessPoolExecutor] = {}


def _pool(workers: int) -> ProcessPoolExecutor:
    """A process pool of ``workers``, kept for the life of the process (starting one costs
    seconds: albumentations imports torch).

    Workers start from a fork server, not a plain fork: forking a parent whose OpenCV or
    torch thread pools are running can deadlock the child.
    """
    import multiprocessing as mp

    pool = _POOLS.get(workers)
    if pool is None:
        if "forkserver" in mp.get_all_start_methods():
            ctx = mp.get_context("forkserver")
            ctx.set_forkserver_preload(["shiftbench.transforms.suites", *_BUILTIN_MODULES])
        else:  # pragma: no cover - Windows
            ctx = mp.get_context("spawn")
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker)
        _POOLS[workers] = pool
    return pool


def _run_in_pool(workers: int, fn: Callable, chunks: list[tuple]) -> Iterator[Any]:
    """Submit ``fn(*chunk)`` for every chunk; yield results in submission order."""
    pool = _pool(workers)
    try:
        futures = [pool.submit(fn, *chunk) for chunk in chunks]
    except BrokenProcessPool:
        _POOLS.pop(workers, None)
        raise
    try:
        for fut in futures:
            yield fut.result()
    except BrokenProcessPool:
        _POOLS.pop(workers, None)  # a worker died (out of memory?): start afresh next time
        raise
    finally:
        for fut in futures:
            fut.cancel()


def _run_in_threads(threads: int, fn: Callable, chunks: list[tuple]) -> Iterator[Any]:
    """``fn(*chunk)`` for every chunk on a few threads; results in submission order."""
    with ThreadPoolExecutor(max_workers=threads) as pool:
        yield from pool.map(lambda chunk: fn(*chunk), chunks)


@atexit.register
def _shutdown_pools() -> None:
    for pool in _POOLS.values():
        pool.shutdown(wait=False, cancel_futures=True)
    _POOLS.clear()


def _chunks(n: int, workers: int) -> list[range]:
    # a few chunks per worker keeps them busy when image sizes differ
    size = max(1, -(-n // (workers * 4)))
    return [range(i, min(n, i + size)) for i in range(0, n, size)]


def _shift_chunk(
    suite: Suite,
    images: list[np.ndarray],
    masks: list[np.ndarray | None],
    ids: list[str],
    seed: int,
) -> list[tuple[np.ndarray, np.ndarray | None, dict]]:
    return [
        suite.apply(img, m, seed=seed, image_id=i)
        for img, m, i in zip(images, masks, ids, strict=True)
    ]


def shift_batch(
    suite: Suite,
    images: np.ndarray | Sequence[np.ndarray],
    masks: np.ndarray | Sequence[np.ndarray | None] | None,
    image_ids: Sequence[str],
    seed: int,
    workers: int = 1,
    progress: Callable[[int], Any] | None = None,
    threads: int = 1,
) -> tuple[np.ndarray | list[np.ndarray], np.ndarray | list[np.ndarray | None] | None, list[dict]]:
    """Shift many images with ``suite``.

    ``images``: ``uint8 [N, H, W, 3]`` or a list of ``[H, W, 3]`` (sizes may differ);
    ``masks``: ``uint8 [N, H, W]``, a list (None entries allowed) or None; ``image_ids``: N
    stable ids (the sample table's ``sample_id``). Returns the shifted images and masks in
    the input's form (stacked in, stacked out) and the N params dicts. ``workers > 1``
    spreads chunks over processes; with one process, ``threads > 1`` spreads them over
    threads instead (OpenCV and numpy release the GIL; no start-up cost, so it suits small
    batches). The result is byte-identical for any ``workers`` and ``threads``.
    ``progress(k)`` is called with the number of images just finished.
    """
    n = len(images)
    if len(image_ids) != n:
        raise ValueError(f"shift_batch: {n} images but {len(image_ids)} image ids")
    if masks is not None and len(masks) != n:
        raise ValueError(f"shift_batch: {n} images but {len(masks)} masks")
    ids = [str(i) for i in image_ids]
    if len(set(ids)) != n:
        raise ValueError("shift_batch: image ids must be unique (they seed each image's shift)")
    img_list = list(images)
    mask_list: list[np.ndarray | None] = [None] * n if masks is None else list(masks)
    results: list[tuple[np.ndarray, np.ndarray | None, dict]] = []
    parallel = workers if workers > 1 else threads
    if n <= 1 or parallel <= 1:
        parts: Iterable[list] = (
            _shift_chunk(suite, img_list[k : k + 1], mask_list[k : k + 1], ids[k : k + 1], seed)
            for k in range(n)
        )
    else:
        chunks = [
            (
                suite,
                img_list[c.start : c.stop],
                mask_list[c.start : c.stop],
                ids[c.start : c.stop],
                seed,
            )
            for c in _chunks(n, parallel)
        ]
        run = _run_in_pool if workers > 1 else _run_in_threads
        parts = run(parallel, _shift_chunk, chunks)
    for part in parts:  # in order: aligned with inputs
        results.extend(part)
        if progress:
            progress(len(part))
    out_images: np.ndarray | list[np.ndarray] = [r[0] for r in results]
    out_masks: np.ndarray | list[np.ndarray | None] | None = (
        None if masks is None else [r[1] for r in results]
    )
    if isinstance(images, np.ndarray):
        out_images = np.stack(out_images) if n else images.copy()
    if isinstance(masks, np.ndarray):
        out_masks = np.stack(out_masks) if n else masks.copy()
    return out_images, out_masks, [r[2] for r in results]


def params_table(
    samples: pd.DataFrame, suite: Suite, seed: int, params: Sequence[dict]
) -> pd.DataFrame:
    """One row per image: :data:`PARAMS_COLUMNS`, ``params`` as canonical JSON text.

    ``samples`` is the sample table (aligned with ``params``); if it carries the ``split``
    column of :func:`shiftbench.data.splits.make_splits`, that column is kept too (after
    ``orig_split``), as the run directory's ``shift_params.parquet`` wants it.
    """
    if len(samples) != len(params):
        raise ValueError(f"params_table: {len(samples)} samples but {len(params)} params")
    table = pd.DataFrame(
        {
            "seed": int(seed),
            "sample_id": samples["sample_id"].astype(str).to_numpy(),
            "category": samples["category"].astype(str).to_numpy(),
            "orig_split": samples["orig_split"].astype(str).to_numpy(),
            "suite": suite.name,
            "suite_hash": suite.hash,
            "severity": -1 if suite.severity is None else int(suite.severity),
            "params": [canonical_json(p) for p in params],
        },
        columns=PARAMS_COLUMNS,
    )
    if "split" in samples.columns:
        table.insert(4, "split", samples["split"].astype(str).to_numpy())
    return table


# --------------------------------------------------------------------------- on disk


def _relative(path: str, root: Path) -> Path:
    try:
        return Path(path).resolve().relative_to(root)
    except ValueError:
        from shiftbench.data.loaders._common import derived_relative

        derived = derived_relative(path)  # e.g. MVTec LOCO's merged masks, in the cache
        if derived is not None:
            return derived
        raise ShiftbenchError(
            f"{path}: lies outside the dataset root {root}; cannot mirror the layout"
        ) from None


def _save(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    from shiftbench.data.io import write_image

    if path.suffix.lower() == ".png":
        write_image(path, array)
        return
    # keep the dataset's own file names; lossy formats are written at high quality
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ShiftbenchError(f"{path}: cannot write images with suffix {path.suffix!r}")
    kwargs = {"quality": 95, "subsampling": 0} if fmt == "JPEG" else {}
    Image.fromarray(np.ascontiguousarray(array)).save(path, format=fmt, **kwargs)


def _shift_files(
    suite: Suite, jobs: list[tuple[str, str, str | None, str, str | None]], seed: int
) -> list[dict]:
    """Worker: read, shift and write a chunk of (id, image, mask, out image, out mask)."""
    from shiftbench.data.io import read_image, read_mask

    out = []
    for sample_id, image_path, mask_path, image_out, mask_out in jobs:
        image = read_image(image_path)
        mask = read_mask(mask_path) if mask_path else None
        if mask is not None and mask.shape != image.shape[:2]:
            raise ShiftbenchError(
                f"{mask_path}: mask size differs from image {image_path}; regenerate the mask"
            )
        shifted, shifted_mask, params = suite.apply(image, mask, seed=seed, image_id=sample_id)
        _save(Path(image_out), shifted)
        if shifted_mask is not None and mask_out:
            _save(Path(mask_out), shifted_mask)
        out.append(params)
    return out


def shift_dataset(
    samples: pd.DataFrame,
    suite: Suite,
    *,
    seed: int,
    root: str | Path,
    out: str | Path,
    workers: int = 1,
    progress: Callable[[int], Any] | None = None,
    copy_files: Iterable[str] = ("split_csv", "realiad_jsons"),
) -> pd.DataFrame:
    """Write the shifted twin of every image (and mask) of ``samples`` under ``out``, at the
    same path relative to ``out`` as the original has relative to ``root`` (the dataset's
    own layout), plus ``shift_params.parquet`` and ``shift_params.csv``.

    ``samples`` is a sample table (:func:`shiftbench.data.load_dataset`). Entries of
    ``copy_files`` found under ``root`` (VisA's ``split_csv``, Real-IAD's ``realiad_jsons``)
    are copied as they are.
    Returns the params table with the written paths added (``image_path``, ``mask_path``).
    """
    root = Path(root).expanduser().resolve()
    out = Path(out).expanduser().resolve()
    if out == root or root in out.parents:
        raise ShiftbenchError(
            f"--out {out}: must not be the dataset root or inside it; choose another folder"
        )
    if out.exists() and any(out.iterdir()):
        raise ShiftbenchError(
            f"--out {out}: folder exists and is not empty; choose a new folder (runs are never overwritten)"
        )
    jobs = []
    for rec in samples.itertuples(index=False):
        mask_path = rec.mask_path if isinstance(rec.mask_path, str) and rec.mask_path else None
        image_out = str(out / _relative(rec.image_path, root))
        mask_out = str(out / _relative(mask_path, root)) if mask_path else None
        jobs.append((str(rec.sample_id), str(rec.image_path), mask_path, image_out, mask_out))
    out.mkdir(parents=True, exist_ok=True)
    for name in copy_files:
        src = root / name
        if src.is_dir():
            shutil.copytree(src, out / name)
        elif src.is_file():
            shutil.copy2(src, out / name)

    params: list[dict] = []
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            params.extend(_shift_files(suite, [job], seed))
            if progress:
                progress(1)
    else:
        chunks = [(suite, jobs[c.start : c.stop], seed) for c in _chunks(len(jobs), workers)]
        for part in _run_in_pool(workers, _shift_files, chunks):
            params.extend(part)
            if progress:
                progress(len(part))

    table = params_table(samples, suite, seed, params)
    table["image_path"] = [j[3] for j in jobs]
    table["mask_path"] = [j[4] for j in jobs]
    table.to_parquet(out / "shift_params.parquet", index=False)
    table.to_csv(out / "shift_params.csv", index=False)
    return table


def default_workers() -> int:
    """Worker processes to use by default: the CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)
