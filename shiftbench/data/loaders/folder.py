"""A generic folder dataset: one folder of normal images, one of anomalous ones."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from shiftbench.data.loaders._common import (
    check_root,
    find_mask,
    finish,
    list_images,
    pick_categories,
    require_mask,
    sample_row,
)
from shiftbench.errors import ShiftbenchError


def load_folder(
    root: str | Path,
    categories: Iterable[str] | None = None,
    *,
    normal_dir: str = "normal",
    abnormal_dir: str = "abnormal",
    mask_dir: str | None = "mask",
) -> pd.DataFrame:
    """A generic folder dataset: ``<root>/<normal_dir>``, ``<root>/<abnormal_dir>`` and an
    optional ``<root>/<mask_dir>`` (masks named like the image, or ``<stem>_mask``). The
    category is the root folder's name. Normal images are ``unsplit``: the split carves
    Test-clean normals from them. Without a mask folder, pixel metrics are skipped."""
    root = check_root(root)
    category = root.name
    pick_categories(root, [category], categories)
    normal, abnormal = root / normal_dir, root / abnormal_dir
    if not normal.is_dir():
        raise ShiftbenchError(
            f"{normal}: normal image folder not found; create it or pass its name"
        )
    masks = root / mask_dir if mask_dir else None
    has_masks = masks is not None and masks.is_dir()
    rows = [
        sample_row(category, "unsplit", 0, "good", image, None) for image in list_images(normal)
    ]
    for image in list_images(abnormal):
        mask = None
        if has_masks:
            mask = require_mask(
                image, find_mask(masks, image.stem, ("", "_mask")), f"{masks}/{image.stem}.png"
            )
        rows.append(sample_row(category, "test", 1, "abnormal", image, mask))
    return finish(rows, root)
