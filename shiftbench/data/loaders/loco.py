"""MVTec LOCO AD: logical and structural anomalies, several masks per image."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from shiftbench.data.loaders._common import (
    category_folders,
    check_root,
    finish,
    list_images,
    merged_mask,
    pick_categories,
    require_mask,
    sample_row,
)
from shiftbench.errors import ShiftbenchError

#: The official release (Bergmann et al., IJCV 2022): images per category and folder.
LOCO_COUNTS = {
    "breakfast_box": {"train": 351, "validation": 62, "good": 102, "logical_anomalies": 83, "structural_anomalies": 90},
    "juice_bottle": {"train": 335, "validation": 54, "good": 94, "logical_anomalies": 142, "structural_anomalies": 94},
    "pushpins": {"train": 372, "validation": 69, "good": 138, "logical_anomalies": 91, "structural_anomalies": 81},
    "screw_bag": {"train": 360, "validation": 60, "good": 122, "logical_anomalies": 137, "structural_anomalies": 82},
    "splicing_connectors": {"train": 354, "validation": 59, "good": 119, "logical_anomalies": 108, "structural_anomalies": 85},
}  # fmt: skip


def load_loco(root: str | Path, categories: Iterable[str] | None = None) -> pd.DataFrame:
    """MVTec LOCO AD: ``<cat>/train/good``, ``<cat>/validation/good``,
    ``<cat>/test/{good,logical_anomalies,structural_anomalies}/<id>.png`` and, per
    anomalous image, a folder ``<cat>/ground_truth/<type>/<id>/`` of one or more grey
    masks ``000.png, 001.png, ...`` (one per defect region, each pixel value naming the
    defect; every non-zero pixel is anomalous).

    An image with one mask file points at it; the masks of an image with several are
    merged into one {0, 255} mask in the shiftbench cache (:func:`merged_mask`, keyed by
    the files' path, size and mtime), so the rest of the pipeline reads one mask path.
    ``defect_type`` keeps ``logical_anomalies`` and ``structural_anomalies`` apart; the
    validation images join the pool of normal training images, as for MVTec AD 2."""
    root = check_root(root)
    rows = []
    for cat in pick_categories(root, category_folders(root), categories):
        base = root / cat
        for split in ("train", "validation"):
            for image in list_images(base / split / "good"):
                rows.append(sample_row(cat, split, 0, "good", image, None))
        test = base / "test"
        if not test.is_dir():
            raise ShiftbenchError(
                f"{test}: missing test folder; MVTec LOCO needs <cat>/test/<type>/"
            )
        for type_dir in sorted(p for p in test.iterdir() if p.is_dir()):
            defect = type_dir.name
            for image in list_images(type_dir):
                if defect == "good":
                    rows.append(sample_row(cat, "test", 0, "good", image, None))
                    continue
                folder = base / "ground_truth" / defect / image.stem
                files = list_images(folder)
                require_mask(image, files[0] if files else None, f"{folder}/000.png")
                mask = files[0]
                if len(files) > 1:
                    layout = Path(cat, "ground_truth", defect, image.stem, "000.png")
                    mask = merged_mask(files, layout, "loco")
                rows.append(sample_row(cat, "test", 1, defect, image, mask))
    return finish(rows, root)
