"""Dataset loaders: every layout becomes the same sample table.

Columns (see docs/architecture.md): ``sample_id, image_path, category, orig_split, label,
defect_type, mask_path``. ``orig_split`` is what the dataset ships (``train``,
``validation``, ``test``) or ``unsplit`` for a folder dataset whose normal images are not
divided into train and test; :func:`shiftbench.data.splits.make_splits` handles each.

Dataset plugins
---------------
A lab adds its own layout (say a line camera's folders) like a perturbation plugin,
through the ``shiftbench.datasets`` entry-point group of its package metadata::

    [project.entry-points."shiftbench.datasets"]
    linecam = "my_lab.linecam:load_linecam"

after which ``load_dataset("linecam", root)`` and ``--dataset linecam`` work. The entry
point is imported only when its name is first asked for; :func:`dataset_kinds` lists it
without importing it. In-process, :func:`register_dataset` does the same. The contract:

* the target is a callable ``load(root: Path, categories: list[str] | None, **options)
  -> pandas.DataFrame``; ``root`` exists (checked before the call), ``categories`` is
  ``None`` for all, and ``options`` are passed through from :func:`load_dataset`;
* the table has the columns :data:`COLUMNS`: ``sample_id`` (unique, e.g.
  ``category/split/defect/stem``), ``image_path`` (absolute, or relative to ``root``),
  ``category``, ``orig_split`` (``train``, ``validation``, ``test`` or ``unsplit``),
  ``label`` (0 normal, 1 anomalous), ``defect_type`` (``good`` for normal images) and
  ``mask_path`` (the {0, 255} mask of an anomalous image, or ``None``);
* every category has normal and anomalous images; a problem with the user's files is a
  :class:`~shiftbench.errors.ShiftbenchError` naming the file and the fix.

shiftbench checks a plugin's table (columns, labels, splits, unique ids, both classes per
category), sorts it by ``sample_id`` and, with ``validate=True``, reads every header.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd

from shiftbench._registry import Registry
from shiftbench.data.io import image_size, path_str_or_none
from shiftbench.errors import ShiftbenchError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".JPG", ".PNG")
COLUMNS = ["sample_id", "image_path", "category", "orig_split", "label", "defect_type", "mask_path"]
ORIG_SPLITS = ("train", "validation", "test", "unsplit")
ENTRY_POINT_GROUP = "shiftbench.datasets"


def _check_loader(name: str, fn: object) -> None:
    if not callable(fn):
        raise TypeError(f"dataset {name!r}: {fn!r} is not a callable loader(root, categories)")


DATASETS: Registry[Callable[..., pd.DataFrame]] = Registry(
    "dataset", ENTRY_POINT_GROUP, check=_check_loader, known_label="choose one of"
)


def register_dataset(
    name: str,
) -> Callable[[Callable[..., pd.DataFrame]], Callable[..., pd.DataFrame]]:
    """Decorator registering ``load(root, categories, **options) -> DataFrame`` as dataset
    ``name`` (the contract is in the module docstring). A taken name is an error."""

    def deco(fn: Callable[..., pd.DataFrame]) -> Callable[..., pd.DataFrame]:
        DATASETS.register(name, fn)
        return fn

    return deco


_loader = register_dataset


def dataset_kinds() -> list[str]:
    """Names accepted by :func:`load_dataset` (built-ins and plugins, without importing them)."""
    return DATASETS.names()


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in IMAGE_SUFFIXES and p.is_file())


def _row(category, split, label, defect, image: Path, mask: Path | None) -> dict:
    return {
        "sample_id": f"{category}/{split}/{defect}/{image.stem}",
        "image_path": os.path.abspath(image),
        "category": category,
        "orig_split": split,
        "label": int(label),
        "defect_type": defect,
        "mask_path": None if mask is None else os.path.abspath(mask),
    }


def _find_mask(folder: Path, stem: str, suffixes: Iterable[str] = ("_mask", "")) -> Path | None:
    for suffix in suffixes:
        for ext in IMAGE_SUFFIXES:
            candidate = folder / f"{stem}{suffix}{ext}"
            if candidate.is_file():
                return candidate
    return None


def _check_root(root: Path) -> Path:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise ShiftbenchError(
            f"{root}: dataset root not found; pass an existing folder with --root"
        )
    return root


def _pick_categories(root: Path, available: list[str], wanted: Iterable[str] | None) -> list[str]:
    if not available:
        raise ShiftbenchError(
            f"{root}: no category folders found; is --root the dataset's top folder?"
        )
    if wanted is None:
        return available
    wanted = list(wanted)
    missing = [c for c in wanted if c not in available]
    if missing:
        raise ShiftbenchError(
            f"{root}: category {missing[0]!r} not found; available: {', '.join(available)}"
        )
    return wanted


def _require_mask(image: Path, mask: Path | None, hint: str) -> Path:
    if mask is None:
        raise ShiftbenchError(f"{image}: anomalous image without a mask; expected {hint}")
    return mask


@_loader("mvtec")
def load_mvtec(
    root: str | Path, categories: Iterable[str] | None = None, *, train_optional: bool = False
) -> pd.DataFrame:
    """MVTec AD layout (also WFDD, converted VisA and any set laid out the same way):
    ``<cat>/train/good``, ``<cat>/test/<defect|good>``, ``<cat>/ground_truth/<defect>/<id>_mask.png``.
    ``train_optional``: a category may lack ``train/good`` (a real target domain that
    ships test images only)."""
    root = _check_root(root)
    markers = ("train", "test") if train_optional else ("train",)
    available = sorted(p.name for p in root.iterdir() if any((p / m).is_dir() for m in markers))
    rows = []
    for cat in _pick_categories(root, available, categories):
        base = root / cat
        if not train_optional and not _images(base / "train" / "good"):
            raise ShiftbenchError(
                f"{base / 'train' / 'good'}: category {cat!r} has no normal images; add train/good images"
            )
        for image in _images(base / "train" / "good"):
            rows.append(_row(cat, "train", 0, "good", image, None))
        test = base / "test"
        if not test.is_dir():
            raise ShiftbenchError(
                f"{test}: missing test folder; MVTec layout needs <cat>/test/<defect>/"
            )
        for defect_dir in sorted(p for p in test.iterdir() if p.is_dir()):
            defect = defect_dir.name
            for image in _images(defect_dir):
                if defect == "good":
                    rows.append(_row(cat, "test", 0, "good", image, None))
                    continue
                gt = base / "ground_truth" / defect
                mask = _require_mask(
                    image, _find_mask(gt, image.stem), f"{gt}/{image.stem}_mask.png"
                )
                rows.append(_row(cat, "test", 1, defect, image, mask))
    return _finish(rows, root)


@_loader("mvtec2")
def load_mvtec2(root: str | Path, categories: Iterable[str] | None = None) -> pd.DataFrame:
    """MVTec AD 2: ``train/good``, ``validation/good``, ``test_public/{good,bad}``,
    ``test_public/ground_truth/bad/<id>_mask.png``. Its own validation images join the
    pool of normal training images that :func:`make_splits` divides."""
    root = _check_root(root)
    available = sorted(p.name for p in root.iterdir() if (p / "train").is_dir())
    rows = []
    for cat in _pick_categories(root, available, categories):
        base = root / cat
        for split in ("train", "validation"):
            for image in _images(base / split / "good"):
                rows.append(_row(cat, split, 0, "good", image, None))
        for image in _images(base / "test_public" / "good"):
            rows.append(_row(cat, "test", 0, "good", image, None))
        gt = base / "test_public" / "ground_truth" / "bad"
        for image in _images(base / "test_public" / "bad"):
            mask = _require_mask(image, _find_mask(gt, image.stem), f"{gt}/{image.stem}_mask.png")
            rows.append(_row(cat, "test", 1, "bad", image, mask))
    return _finish(rows, root)


@_loader("btad")
def load_btad(root: str | Path, categories: Iterable[str] | None = None) -> pd.DataFrame:
    """BTAD: ``<cat>/train/ok``, ``<cat>/test/{ok,ko}``, ``<cat>/ground_truth/ko/<id>.png``."""
    root = _check_root(root)
    available = sorted(p.name for p in root.iterdir() if (p / "train").is_dir())
    rows = []
    for cat in _pick_categories(root, available, categories):
        base = root / cat
        for image in _images(base / "train" / "ok"):
            rows.append(_row(cat, "train", 0, "good", image, None))
        for image in _images(base / "test" / "ok"):
            rows.append(_row(cat, "test", 0, "good", image, None))
        gt = base / "ground_truth" / "ko"
        for image in _images(base / "test" / "ko"):
            mask = _require_mask(
                image, _find_mask(gt, image.stem, ("", "_mask")), f"{gt}/{image.stem}.png"
            )
            rows.append(_row(cat, "test", 1, "ko", image, mask))
    return _finish(rows, root)


@_loader("visa")
def load_visa(root: str | Path, categories: Iterable[str] | None = None) -> pd.DataFrame:
    """VisA through its ``split_csv/1cls.csv`` (columns object, split, label, image, mask;
    paths relative to the root). A VisA converted to the MVTec layout loads with ``mvtec``."""
    root = _check_root(root)
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
    for cat in _pick_categories(root, available, categories):
        for rec in table[table["object"] == cat].itertuples(index=False):
            anomalous = str(rec.label).lower() in ("anomaly", "1", "abnormal")
            image = root / rec.image
            mask = None
            if anomalous:
                if not isinstance(rec.mask, str) or not rec.mask:
                    raise ShiftbenchError(f"{image}: anomalous image without a mask in {csv}")
                mask = root / rec.mask
            rows.append(
                _row(
                    cat,
                    str(rec.split),
                    int(anomalous),
                    "anomaly" if anomalous else "good",
                    image,
                    mask,
                )
            )
    return _finish(rows, root)


@_loader("folder")
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
    root = _check_root(root)
    category = root.name
    _pick_categories(root, [category], categories)
    normal, abnormal = root / normal_dir, root / abnormal_dir
    if not normal.is_dir():
        raise ShiftbenchError(
            f"{normal}: normal image folder not found; create it or pass its name"
        )
    masks = root / mask_dir if mask_dir else None
    has_masks = masks is not None and masks.is_dir()
    rows = [_row(category, "unsplit", 0, "good", image, None) for image in _images(normal)]
    for image in _images(abnormal):
        mask = None
        if has_masks:
            mask = _require_mask(
                image, _find_mask(masks, image.stem, ("", "_mask")), f"{masks}/{image.stem}.png"
            )
        rows.append(_row(category, "test", 1, "abnormal", image, mask))
    return _finish(rows, root)


def _finish(rows: list[dict], root: Path) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=COLUMNS)
    if table.empty:
        raise ShiftbenchError(f"{root}: no images found; check --root and --dataset")
    for cat, group in table.groupby("category", sort=True):
        if (group["label"] == 0).sum() == 0:
            raise ShiftbenchError(
                f"{root / str(cat)}: category has no normal images; add train/good images"
            )
        if (group["label"] == 1).sum() == 0:
            raise ShiftbenchError(
                f"{root / str(cat)}: category has no anomalous images; add test/<defect> images"
            )
    dup = table["sample_id"].duplicated()
    if dup.any():
        raise ShiftbenchError(
            f"{table.loc[dup, 'image_path'].iloc[0]}: duplicate image id (same name, other extension?); rename it"
        )
    return table.sort_values("sample_id", kind="stable").reset_index(drop=True)


def _check_plugin_table(table: object, entry, root: Path) -> pd.DataFrame:
    """A plugin loader's table, checked like a built-in one's (see the module docstring)."""
    where = f"dataset {entry.name!r} ({entry.origin})"
    if not isinstance(table, pd.DataFrame):
        raise ShiftbenchError(
            f"{where}: the loader returned {type(table).__name__}, not a pandas DataFrame "
            f"with columns {COLUMNS}; fix the plugin"
        )
    if table.empty:
        return _finish([], root)  # "no images found", as for a built-in layout
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ShiftbenchError(f"{where}: columns {missing} missing from its table; fix the plugin")
    table = table[COLUMNS].astype(object).where(table[COLUMNS].notna(), None)
    bad_label = ~table["label"].isin([0, 1])
    if bad_label.any():
        raise ShiftbenchError(
            f"{where}: label {table.loc[bad_label, 'label'].iloc[0]!r} of "
            f"{table.loc[bad_label, 'sample_id'].iloc[0]!r} is not 0 or 1; fix the plugin"
        )
    bad_split = ~table["orig_split"].isin(ORIG_SPLITS)
    if bad_split.any():
        raise ShiftbenchError(
            f"{where}: orig_split {table.loc[bad_split, 'orig_split'].iloc[0]!r} is not one of "
            f"{', '.join(ORIG_SPLITS)}; fix the plugin"
        )
    rows = table.to_dict("records")
    for row in rows:
        row["label"] = int(row["label"])
        for key in ("image_path", "mask_path"):
            if row[key] is not None:
                row[key] = os.path.abspath(root / Path(row[key]))
    return _finish(rows, root)


def validate_samples(table: pd.DataFrame) -> None:
    """Check every file is a readable image and every mask has its image's size.

    Reads headers only (fast). Raises :class:`ShiftbenchError` naming the first bad file.
    """
    for rec in table.itertuples(index=False):
        shape = image_size(rec.image_path)
        mask_path = path_str_or_none(rec.mask_path)
        if mask_path is not None:
            mshape = image_size(mask_path)
            if mshape != shape:
                raise ShiftbenchError(
                    f"{mask_path}: mask size {mshape[1]}x{mshape[0]} differs from image "
                    f"{rec.image_path} ({shape[1]}x{shape[0]}); regenerate the mask at image size"
                )


def load_dataset(
    kind: str,
    root: str | Path | None = None,
    categories: Iterable[str] | None = None,
    *,
    validate: bool = True,
    **options,
) -> pd.DataFrame:
    """Load a dataset into the sample table.

    ``kind`` is one of :func:`dataset_kinds`; ``synthetic`` with ``root=None`` uses (and if
    needed generates) the cached embedded synthetic dataset. ``validate`` reads every
    image and mask header to catch unreadable files and size mismatches up front.
    """
    if kind == "synthetic":
        from shiftbench.data.synthetic import default_synthetic_root

        root = root or default_synthetic_root()
        kind = "mvtec"
    entry = DATASETS.entry(kind, also_known=["synthetic"])
    if root is None:
        raise ShiftbenchError(f"dataset {kind!r} needs --root pointing at its top folder")
    if isinstance(categories, str):
        categories = [c for c in categories.split(",") if c]
    if entry.origin == "builtin":
        table = entry.obj(root, categories, **options)
    else:
        root = _check_root(root)
        table = _check_plugin_table(entry.obj(root, categories, **options), entry, root)
    if validate:
        validate_samples(table)
    return table
