"""BTAD (beanTech Anomaly Detection) layout: ``ok``/``ko`` folders per product."""

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


def load_btad(root: str | Path, categories: Iterable[str] | None = None) -> pd.DataFrame:
    """BTAD: ``<cat>/train/ok``, ``<cat>/test/{ok,ko}``, ``<cat>/ground_truth/ko/<id>.png``."""
    root = check_root(root)
    rows = []
    for cat in pick_categories(root, category_folders(root), categories):
        base = root / cat
        for image in list_images(base / "train" / "ok"):
            rows.append(sample_row(cat, "train", 0, "good", image, None))
        for image in list_images(base / "test" / "ok"):
            rows.append(sample_row(cat, "test", 0, "good", image, None))
        gt = base / "ground_truth" / "ko"
        for image in list_images(base / "test" / "ko"):
            mask = require_mask(
                image, find_mask(gt, image.stem, ("", "_mask")), f"{gt}/{image.stem}.png"
            )
            rows.append(sample_row(cat, "test", 1, "ko", image, mask))
    return finish(rows, root)
