"""VisA through its official ``split_csv/1cls.csv`` (or converted to the MVTec layout)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from shiftbench.data.loaders._common import check_root, finish, pick_categories, sample_row
from shiftbench.data.loaders.mvtec import load_mvtec
from shiftbench.errors import ShiftbenchError


def load_visa(root: str | Path, categories: Iterable[str] | None = None) -> pd.DataFrame:
    """VisA through its ``split_csv/1cls.csv`` (columns object, split, label, image, mask;
    paths relative to the root). A VisA converted to the MVTec layout loads with ``mvtec``."""
    root = check_root(root)
    csv = root / "split_csv" / "1cls.csv"
    if not csv.is_file():
        if any((p / "train").is_dir() for p in root.iterdir()):
            return load_mvtec(root, categories)
        raise ShiftbenchError(
            f"{csv}: not found; VisA needs split_csv/1cls.csv or the MVTec-style layout"
        )
    table = pd.read_csv(csv)
    need = {"object", "split", "label", "image", "mask"}
    if not need <= set(table.columns):
        raise ShiftbenchError(
            f"{csv}: columns {sorted(need - set(table.columns))} missing; expected {sorted(need)}"
        )
    available = sorted(table["object"].unique())
    rows = []
    for cat in pick_categories(root, available, categories):
        for rec in table[table["object"] == cat].itertuples(index=False):
            anomalous = str(rec.label).lower() in ("anomaly", "1", "abnormal")
            image = root / rec.image
            mask = None
            if anomalous:
                if not isinstance(rec.mask, str) or not rec.mask:
                    raise ShiftbenchError(f"{image}: anomalous image without a mask in {csv}")
                mask = root / rec.mask
            rows.append(
                sample_row(
                    cat,
                    str(rec.split),
                    int(anomalous),
                    "anomaly" if anomalous else "good",
                    image,
                    mask,
                )
            )
    return finish(rows, root)
