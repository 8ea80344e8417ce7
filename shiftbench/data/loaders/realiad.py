"""Real-IAD: 30 objects, five camera views each, splits given by JSON files."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from shiftbench.data.loaders._common import (
    check_root,
    finish,
    pick_categories,
    require_mask,
    sample_row,
)
from shiftbench.errors import ShiftbenchError

#: The official release (Wang et al., CVPR 2024): 30 objects, each photographed by five
#: cameras (C1 top, C2-C5 sides); 151,050 images, 99,721 normal (OK) and 51,329 with a
#: defect (NG) and its mask. Defect codes: AK pit, BX deformation, CH abrasion, HS
#: scratch, PS damage, QS missing parts, YW foreign objects, ZW contamination.
REALIAD_CATEGORIES = (
    "audiojack", "bottle_cap", "button_battery", "end_cap", "eraser", "fire_hood", "mint",
    "mounts", "pcb", "phone_battery", "plastic_nut", "plastic_plug", "porcelain_doll",
    "regulator", "rolled_strip_base", "sim_card_set", "switch", "tape", "terminalblock",
    "toothbrush", "toy", "toy_brick", "transistor1", "u_block", "usb", "usb_adaptor",
    "vcpill", "wooden_beads", "woodstick", "zipper",
)  # fmt: skip
REALIAD_COUNTS = {"images": 151_050, "normal": 99_721, "anomalous": 51_329}
DEFECT_CODES = {
    "AK": "pit", "BX": "deformation", "CH": "abrasion", "HS": "scratch",
    "PS": "damage", "QS": "missing parts", "YW": "foreign objects", "ZW": "contamination",
}  # fmt: skip
VIEWS = ("C1", "C2", "C3", "C4", "C5")
#: image folders, the first one found is used unless ``resolution`` names one
RESOLUTIONS = ("1024", "512", "256", "raw")
_VIEW = re.compile(r"_(C[1-5])(?=_|$)")
log = logging.getLogger(__name__)


def parse_views(views: str | Iterable[str | int] | None) -> tuple[str, ...]:
    """``"C1,C3"``, ``["C1", 3]`` or None (all five) as a tuple of view names."""
    if views is None:
        return VIEWS
    items = views.split(",") if isinstance(views, str) else list(views)
    out = []
    for item in items:
        text = str(item).strip().upper()
        name = f"C{text}" if text.isdigit() else text
        if name not in VIEWS:
            raise ShiftbenchError(
                f"views {item!r}: not a Real-IAD camera view; choose from {', '.join(VIEWS)}",
                param="views",
            )
        if name not in out:
            out.append(name)
    if not out:
        raise ShiftbenchError(f"views: empty; choose from {', '.join(VIEWS)}", param="views")
    return tuple(sorted(out))


def _image_dir(root: Path, resolution: str | None) -> Path:
    names = [str(resolution)] if resolution is not None else list(RESOLUTIONS)
    for name in names:
        if (root / f"realiad_{name}").is_dir():
            return root / f"realiad_{name}"
    wanted = " or ".join(f"realiad_{n}" for n in names)
    raise ShiftbenchError(f"{root}: no {wanted} folder; is --root the Real-IAD top folder?")


def _json_dir(root: Path, split_json: str) -> Path:
    for folder in (root / "realiad_jsons" / split_json, root / split_json, root / "realiad_jsons"):
        if folder.is_dir() and any(folder.glob("*.json")):
            return folder
    raise ShiftbenchError(
        f"{root / 'realiad_jsons' / split_json}: no split files (<category>.json); "
        "unpack realiad_jsons under --root"
    )


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ShiftbenchError(
            f"{path}: unreadable split file ({exc.__class__.__name__}); unpack it again"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("train", []), list):
        raise ShiftbenchError(f"{path}: not a Real-IAD split file (needs train and test lists)")
    return data


def load_realiad(
    root: str | Path,
    categories: Iterable[str] | None = None,
    *,
    views: str | Iterable[str | int] | None = None,
    resolution: str | None = None,
    split_json: str = "realiad_jsons",
) -> pd.DataFrame:
    """Real-IAD: images under ``realiad_<resolution>/<cat>/`` (``OK/S<nnnn>/...`` and
    ``NG/<code>/S<nnnn>/...``, masks ``<image stem>.png`` beside their image) and the
    official splits ``realiad_jsons/<split_json>/<cat>.json``: ``{"meta": {"prefix",
    "normal_class"}, "train": [...], "test": [...]}``, each entry with ``category``,
    ``anomaly_class`` (``OK`` or a defect code), ``image_path`` and ``mask_path``
    (relative to ``realiad_<resolution>/<prefix or cat>``).

    ``views`` keeps the images of the camera views named (``"C1,C3"``; the view is the
    ``_C<n>_`` part of the file name); all five by default. ``resolution`` picks the
    image folder (``1024``, ``512``, ``256`` or ``raw``; else the first found in that
    order); ``split_json`` the split files (``realiad_jsons`` the multi-view setting,
    ``realiad_jsons_sv`` single view, ``realiad_jsons_fuiad_<r>`` the noisy-training
    ones). ``defect_type`` is the defect code. A study trains on normal images only, so
    anomalous entries of a ``train`` list (the FUIAD files have them) are left out, with
    a log line saying how many."""
    root = check_root(root)
    wanted_views = parse_views(views)
    images_root = _image_dir(root, resolution)
    json_dir = _json_dir(root, split_json)
    available = sorted(p.stem for p in json_dir.glob("*.json"))
    rows, dropped = [], 0
    for cat in pick_categories(json_dir, available, categories):
        path = json_dir / f"{cat}.json"
        data = _read_json(path)
        meta = data.get("meta") or {}
        normal_class = str(meta.get("normal_class", "OK"))
        prefix = str(meta.get("prefix") or "")
        base = images_root / cat
        if prefix:  # relative to the image folder; some copies give it from the top folder
            base = images_root / prefix
            if not base.is_dir() and (root / prefix).is_dir():
                base = root / prefix
        for split in ("train", "test"):
            for entry in data.get(split, []):
                image = base / str(entry["image_path"])
                if wanted_views != VIEWS:
                    found = _VIEW.search(image.stem)
                    if found is None:
                        raise ShiftbenchError(
                            f"{image}: no camera view (_C1_ to _C5_) in the file name; "
                            f"cannot select --views in {path}"
                        )
                    if found.group(1) not in wanted_views:
                        continue
                anomalous = str(entry.get("anomaly_class", normal_class)) != normal_class
                if not anomalous:
                    rows.append(sample_row(cat, split, 0, "good", image, None))
                    continue
                if split == "train":
                    dropped += 1
                    continue
                mask = entry.get("mask_path")
                mask = require_mask(
                    image, base / str(mask) if mask else None, f"a mask_path in {path}"
                )
                rows.append(sample_row(cat, split, 1, str(entry["anomaly_class"]), image, mask))
    if dropped:
        log.warning(
            "realiad: %d anomalous training entries of %s left out (a study trains on "
            "normal images only)",
            dropped,
            json_dir.name,
        )
    return finish(rows, root)
