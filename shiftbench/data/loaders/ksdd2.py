"""KolektorSDD2: surface defects on electrical commutators, labels read from the masks."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from shiftbench.data.loaders._common import (
    check_root,
    finish,
    list_images,
    pick_categories,
    sample_row,
)
from shiftbench.errors import ShiftbenchError

CATEGORY = "ksdd2"
#: The official release (Bozic et al., Computers in Industry 2021): images without and
#: with a defect per split. Images are about 230 x 630 px and vary slightly in size.
KSDD2_COUNTS = {"train": {"good": 2085, "defect": 246}, "test": {"good": 894, "defect": 110}}
log = logging.getLogger(__name__)


def _foreground(masks: list[Path]) -> np.ndarray:
    """Whether each mask has any anomalous pixel under :func:`read_mask`'s rule, kept in
    the array cache (keyed by the files' path, size and mtime and the reader's source) so
    the thousands of masks are decoded once."""
    from concurrent.futures import ThreadPoolExecutor

    from shiftbench.data.cache import READ_THREADS, batch_key, cached
    from shiftbench.data.io import read_mask

    def compute() -> dict[str, np.ndarray]:
        with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:  # decoding frees the GIL
            found = list(pool.map(lambda p: bool(read_mask(p).any()), masks))
        return {"a": np.array(found, dtype=bool)}

    key = batch_key(masks, 0, "ksdd2-foreground")
    out = cached("ksdd2-foreground", key, compute)["a"]
    return out if len(out) == len(masks) else compute()["a"]


def load_ksdd2(root: str | Path, categories: Iterable[str] | None = None) -> pd.DataFrame:
    """KolektorSDD2: ``train/`` and ``test/`` folders of ``<id>.png`` with its mask
    ``<id>_GT.png``. An image is anomalous (``defect_type`` ``defect``) when its mask has
    any anomalous pixel (:func:`~shiftbench.data.io.binarize_mask`), normal otherwise.
    One category, ``ksdd2``.

    The official training split also holds 246 images with defects (meant for
    supervised training). A study trains on normal images only, so those are **left
    out** of the table, and a log line says how many; the test split is kept whole."""
    root = check_root(root)
    pick_categories(root, [CATEGORY], categories)
    rows, dropped = [], 0
    for split in ("train", "test"):
        folder = root / split
        if not folder.is_dir():
            raise ShiftbenchError(
                f"{folder}: missing {split} folder; KolektorSDD2 needs train/ and test/ under --root"
            )
        images = [p for p in list_images(folder) if not p.stem.endswith("_GT")]
        masks = []
        for image in images:
            gt = folder / f"{image.stem}_GT.png"
            if not gt.is_file():
                raise ShiftbenchError(
                    f"{image}: image without its mask; expected {gt} (KolektorSDD2 ships one per image)"
                )
            masks.append(gt)
        for image, gt, positive in zip(images, masks, _foreground(masks), strict=True):
            if positive and split == "train":
                dropped += 1
            elif positive:
                rows.append(sample_row(CATEGORY, split, 1, "defect", image, gt))
            else:
                rows.append(sample_row(CATEGORY, split, 0, "good", image, None))
    if dropped:
        log.warning(
            "ksdd2: %d training images with a defect left out (a study trains on normal "
            "images only; the official test split is kept whole)",
            dropped,
        )
    return finish(rows, root)
