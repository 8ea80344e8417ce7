"""What every built-in layout shares: the sample table's columns and the helpers that
list images, build rows, pair masks, pick categories and check the finished table."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from shiftbench.errors import ShiftbenchError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".JPG", ".PNG")
COLUMNS = ["sample_id", "image_path", "category", "orig_split", "label", "defect_type", "mask_path"]
ORIG_SPLITS = ("train", "validation", "test", "unsplit")


def list_images(folder: Path) -> list[Path]:
    """The image files directly in ``folder``, sorted (none if it does not exist)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in IMAGE_SUFFIXES and p.is_file())


def sample_row(category, split, label, defect, image: Path, mask: Path | None) -> dict:
    """One row of the sample table; the id is ``category/split/defect/stem``."""
    return {
        "sample_id": f"{category}/{split}/{defect}/{image.stem}",
        "image_path": os.path.abspath(image),
        "category": category,
        "orig_split": split,
        "label": int(label),
        "defect_type": defect,
        "mask_path": None if mask is None else os.path.abspath(mask),
    }


def find_mask(folder: Path, stem: str, suffixes: Iterable[str] = ("_mask", "")) -> Path | None:
    """The first ``<folder>/<stem><suffix><ext>`` that exists, trying ``suffixes`` in order."""
    for suffix in suffixes:
        for ext in IMAGE_SUFFIXES:
            candidate = folder / f"{stem}{suffix}{ext}"
            if candidate.is_file():
                return candidate
    return None


def check_root(root: str | Path) -> Path:
    """``root`` as a Path; a missing folder is the one-line error that names ``--root``."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise ShiftbenchError(
            f"{root}: dataset root not found; pass an existing folder with --root"
        )
    return root


def pick_categories(root: Path, available: list[str], wanted: Iterable[str] | None) -> list[str]:
    """``wanted`` (all of ``available`` when None), each checked to exist."""
    if not available:
        raise ShiftbenchError(
            f"{root}: no category folders found; is --root the dataset's top folder?"
        )
    if wanted is None:
        return available
    wanted = list(wanted)
    missing = [c for c in wanted if c not in available]
    if missing:
        raise ShiftbenchError(
            f"{root}: category {missing[0]!r} not found; available: {', '.join(available)}"
        )
    return wanted


def require_mask(image: Path, mask: Path | None, hint: str) -> Path:
    """``mask``, or the error naming the anomalous ``image`` and where its mask belongs."""
    if mask is None:
        raise ShiftbenchError(f"{image}: anomalous image without a mask; expected {hint}")
    return mask


def category_folders(root: Path, marker: str = "train") -> list[str]:
    """The sub-folders of ``root`` that hold a ``marker`` folder (MVTec-style layouts)."""
    return sorted(p.name for p in root.iterdir() if (p / marker).is_dir())


def finish(rows: list[dict], root: Path) -> pd.DataFrame:
    """The sample table of ``rows``: both classes in every category, unique ids, sorted."""
    table = pd.DataFrame(rows, columns=COLUMNS)
    if table.empty:
        raise ShiftbenchError(f"{root}: no images found; check --root and --dataset")
    for cat, group in table.groupby("category", sort=True):
        if (group["label"] == 0).sum() == 0:
            raise ShiftbenchError(
                f"{root / str(cat)}: category has no normal images; add train/good images"
            )
        if (group["label"] == 1).sum() == 0:
            raise ShiftbenchError(
                f"{root / str(cat)}: category has no anomalous images; add test/<defect> images"
            )
    dup = table["sample_id"].duplicated()
    if dup.any():
        raise ShiftbenchError(
            f"{table.loc[dup, 'image_path'].iloc[0]}: duplicate image id (same name, other extension?); rename it"
        )
    return table.sort_values("sample_id", kind="stable").reset_index(drop=True)


# ----------------------------------------------------------------------------- derived masks
#: Bump when :func:`merged_mask` writes other pixels for the same source files.
MERGE_VERSION = 1


def derived_masks_dir() -> Path:
    """Where masks made from a dataset's files live (``<cache_dir()>/masks``): never
    inside the user's dataset; safe to delete (they are made again on the next load)."""
    from shiftbench.data.cache import cache_dir

    return cache_dir() / "masks"


def merged_mask(sources: list[Path], relative: Path, name: str) -> Path:
    """One {0, 255} PNG mask that is the union of ``sources`` (each read as grey; every
    non-zero pixel counts), kept in :func:`derived_masks_dir` as ``<name>-<key>/<relative>``.

    ``key`` digests every source's absolute path, byte size and modification time (ns),
    so an edited or replaced source gets a new file and a stale one is never returned;
    the file is written atomically (temporary file, then rename). ``relative`` is where
    the mask sits in the dataset's own layout (``shiftbench shift`` writes the shifted
    mask there: :func:`derived_relative`). Sources of different sizes are an error
    naming both files."""
    import numpy as np
    from PIL import Image

    from shiftbench._io import atomic_file
    from shiftbench.data.cache import digest
    from shiftbench.data.io import _open, to_8bit

    files = []
    for src in sources:
        st = os.stat(src)
        files.append([os.path.abspath(src), st.st_size, st.st_mtime_ns])
    target = derived_masks_dir() / f"{name}-{digest([MERGE_VERSION, files])}" / relative
    if target.is_file():
        return target
    union = None
    for src in sources:
        grey = np.asarray(to_8bit(_open(src)).convert("L"))
        if union is None:
            union, first = grey > 0, src
        elif grey.shape != union.shape:
            raise ShiftbenchError(
                f"{src}: mask size {grey.shape[1]}x{grey.shape[0]} differs from {first} "
                f"({union.shape[1]}x{union.shape[0]}); masks of one image must share its size"
            )
        else:
            union |= grey > 0
    out = np.where(union, 255, 0).astype(np.uint8)
    with atomic_file(target) as tmp:
        Image.fromarray(out).save(tmp, format="PNG")
    return target


def derived_relative(path: str | Path) -> Path | None:
    """The layout path of a mask made by :func:`merged_mask` (the part after its
    ``<name>-<key>`` folder), or None for any other file."""
    try:
        rest = Path(path).resolve().relative_to(derived_masks_dir().resolve())
    except ValueError:
        return None
    return Path(*rest.parts[1:]) if len(rest.parts) > 1 else None
