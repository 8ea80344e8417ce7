"""MPDD (Metal Parts Defect Detection): the MVTec AD layout, six metal-part categories."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from shiftbench.data.loaders._common import check_root, finish
from shiftbench.data.loaders.mvtec import mvtec_rows

#: The official release (Jezek et al., ICUMT 2021; github.com/stepanje/MPDD): normal
#: training images, normal test images and anomalous test images per defect folder.
MPDD_COUNTS = {
    "bracket_black": {"train": 289, "good": 32, "defects": ("hole", "scratches"), "anomalous": 47},
    "bracket_brown": {"train": 185, "good": 26, "defects": ("bend_and_parts_mismatch", "parts_mismatch"), "anomalous": 51},
    "bracket_white": {"train": 110, "good": 30, "defects": ("defective_painting", "scratches"), "anomalous": 30},
    "connector": {"train": 128, "good": 30, "defects": ("parts_mismatch",), "anomalous": 14},
    "metal_plate": {"train": 54, "good": 26, "defects": ("major_rust", "scratches", "total_rust"), "anomalous": 71},
    "tubes": {"train": 122, "good": 32, "defects": ("anomalous",), "anomalous": 69},
}  # fmt: skip


def load_mpdd(root: str | Path, categories: Iterable[str] | None = None) -> pd.DataFrame:
    """MPDD: ``<cat>/train/good``, ``<cat>/test/<defect|good>``,
    ``<cat>/ground_truth/<defect>/<id>_mask.png`` (the MVTec AD layout) for the six
    categories of :data:`MPDD_COUNTS`; images are 1024 x 1024 RGB, many of one
    category's parts photographed at other positions and under other light."""
    root = check_root(root)
    return finish(mvtec_rows(root, categories), root)
