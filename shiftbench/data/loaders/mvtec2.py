"""MVTec AD 2 layout: public test set with one ``bad`` folder per category."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from shiftbench.data.loaders._common import (
    category_folders,
    check_root,
    find_mask,
    finish,
    list_images,
    pick_categories,
    require_mask,
    sample_row,
)


def load_mvtec2(root: str | Path, categories: Iterable[str] | None = None) -> pd.DataFrame:
    """MVTec AD 2: ``train/good``, ``validation/good``, ``test_public/{good,bad}``,
    ``test_public/ground_truth/bad/<id>_mask.png``. Its own validation images join the
    pool of normal training images that :func:`make_splits` divides."""
    root = check_root(root)
    rows = []
    for cat in pick_categories(root, category_folders(root), categories):
        base = root / cat
        for split in ("train", "validation"):
            for image in list_images(base / split / "good"):
                rows.append(sample_row(cat, split, 0, "good", image, None))
        for image in list_images(base / "test_public" / "good"):
            rows.append(sample_row(cat, "test", 0, "good", image, None))
        gt = base / "test_public" / "ground_truth" / "bad"
        for image in list_images(base / "test_public" / "bad"):
            mask = require_mask(image, find_mask(gt, image.stem), f"{gt}/{image.stem}_mask.png")
            rows.append(sample_row(cat, "test", 1, "bad", image, mask))
    return finish(rows, root)
