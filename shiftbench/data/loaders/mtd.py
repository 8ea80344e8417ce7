"""Magnetic Tile Defect (MTD): one folder per defect class, no official split."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from shiftbench.data.loaders._common import (
    check_root,
    finish,
    list_images,
    pick_categories,
    require_mask,
    sample_row,
)
from shiftbench.errors import ShiftbenchError

CATEGORY = "mtd"
NORMAL_FOLDER = "MT_Free"
#: The official release (Huang et al., The Visual Computer 2020;
#: github.com/abin24/Magnetic-tile-defect-datasets.): images per folder, 1344 in all.
MTD_COUNTS = {
    "MT_Blowhole": 115,
    "MT_Break": 85,
    "MT_Crack": 57,
    "MT_Fray": 32,
    "MT_Free": 952,
    "MT_Uneven": 103,
}
#: The default share of MT_Free held out as test normals, and the seed choosing them.
TEST_FRAC, SPLIT_SEED = 0.2, 0


def _photos(folder: Path) -> list[Path]:
    """The photographs of an ``Imgs`` folder (JPEGs; the PNGs beside them are masks)."""
    return [p for p in list_images(folder) if p.suffix.lower() in (".jpg", ".jpeg")]


def load_mtd(
    root: str | Path,
    categories: Iterable[str] | None = None,
    *,
    test_frac: float = TEST_FRAC,
    split_seed: int = SPLIT_SEED,
) -> pd.DataFrame:
    """Magnetic Tile Defect: ``MT_<Defect>/Imgs/<stem>.jpg`` with the mask
    ``MT_<Defect>/Imgs/<stem>.png``; ``MT_Free`` holds the normal tiles. One category,
    ``mtd``; ``defect_type`` is the folder's name without ``MT_``, lower-cased
    (``blowhole``, ``break``, ``crack``, ``fray``, ``uneven``).

    The release has no train/test split, so the loader makes one: ``test_frac`` (0.2) of
    the MT_Free images become test normals, the rest training normals, chosen by the
    digest ``sha256("mtd-test", split_seed, stem)`` as :mod:`shiftbench.data.splits`
    does (the same images for the same ``split_seed``, 0 by default, on every machine,
    whatever the listing order). Every defect image is a test image. The images vary in
    size (the tiles were cropped from larger photographs)."""
    from shiftbench.data.splits import stable_key

    if not 0 < test_frac < 1:
        raise ShiftbenchError(f"mtd test_frac {test_frac}: must be in (0, 1)")
    root = check_root(root)
    pick_categories(root, [CATEGORY], categories)
    free = root / NORMAL_FOLDER / "Imgs"
    normals = _photos(free)
    if not normals:
        raise ShiftbenchError(
            f"{free}: no normal images; is --root the folder that holds MT_Free and MT_<Defect>?"
        )
    ranked = sorted(normals, key=lambda p: (stable_key("mtd-test", split_seed, p.stem), p.stem))
    held_out = set(ranked[: int(test_frac * len(normals) + 0.5)])  # half up
    rows = [
        sample_row(CATEGORY, "test" if p in held_out else "train", 0, "good", p, None)
        for p in normals
    ]
    for folder in sorted(root.glob("MT_*")):
        if folder.name == NORMAL_FOLDER or not folder.is_dir():
            continue
        defect = folder.name[len("MT_") :].lower()
        for image in _photos(folder / "Imgs"):
            mask = image.with_suffix(".png")
            require_mask(image, mask if mask.is_file() else None, str(mask))
            rows.append(sample_row(CATEGORY, "test", 1, defect, image, mask))
    return finish(rows, root)
