"""MVTec AD layout (also WFDD, MPDD, converted VisA and any set laid out the same way)."""

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
from shiftbench.errors import ShiftbenchError


def mvtec_rows(
    root: Path, categories: Iterable[str] | None, *, train_optional: bool = False
) -> list[dict]:
    """The rows of an MVTec-style tree (shared by the layouts that copy it).
    ``train_optional``: a category may lack ``train/good`` (a real target domain that ships
    test images only); its categories are then the folders with ``train`` or ``test``."""
    rows = []
    available = category_folders(root)
    if train_optional:
        available = sorted({*available, *category_folders(root, "test")})
    for cat in pick_categories(root, available, categories):
        base = root / cat
        if not train_optional and not list_images(base / "train" / "good"):
            raise ShiftbenchError(
                f"{base / 'train' / 'good'}: category {cat!r} has no normal images; add train/good images"
            )
        for image in list_images(base / "train" / "good"):
            rows.append(sample_row(cat, "train", 0, "good", image, None))
        test = base / "test"
        if not test.is_dir():
            raise ShiftbenchError(
                f"{test}: missing test folder; MVTec layout needs <cat>/test/<defect>/"
            )
        for defect_dir in sorted(p for p in test.iterdir() if p.is_dir()):
            defect = defect_dir.name
            for image in list_images(defect_dir):
                if defect == "good":
                    rows.append(sample_row(cat, "test", 0, "good", image, None))
                    continue
                gt = base / "ground_truth" / defect
                mask = require_mask(image, find_mask(gt, image.stem), f"{gt}/{image.stem}_mask.png")
                rows.append(sample_row(cat, "test", 1, defect, image, mask))
    return rows


def load_mvtec(
    root: str | Path, categories: Iterable[str] | None = None, *, train_optional: bool = False
) -> pd.DataFrame:
    """MVTec AD layout (also WFDD, converted VisA and any set laid out the same way):
    ``<cat>/train/good``, ``<cat>/test/<defect|good>``, ``<cat>/ground_truth/<defect>/<id>_mask.png``.
    ``train_optional``: ``train/good`` may be missing (a real target domain, ``--target-root``)."""
    root = check_root(root)
    return finish(mvtec_rows(root, categories, train_optional=train_optional), root)
