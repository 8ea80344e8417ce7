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

import inspect
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd

from shiftbench._registry import Registry
from shiftbench.data.io import image_size, path_str_or_none
from shiftbench.data.loaders import BUILTIN_LOADERS
from shiftbench.data.loaders._common import (
    COLUMNS,
    IMAGE_SUFFIXES,
    ORIG_SPLITS,
    check_root,
    find_mask,
    finish,
    list_images,
    pick_categories,
    require_mask,
    sample_row,
)
from shiftbench.data.loaders.btad import load_btad
from shiftbench.data.loaders.folder import load_folder
from shiftbench.data.loaders.mvtec import load_mvtec
from shiftbench.data.loaders.mvtec2 import load_mvtec2
from shiftbench.data.loaders.visa import load_visa
from shiftbench.errors import ShiftbenchError

__all__ = [
    "COLUMNS",
    "DATASETS",
    "ENTRY_POINT_GROUP",
    "IMAGE_SUFFIXES",
    "ORIG_SPLITS",
    "dataset_kinds",
    "load_btad",
    "load_dataset",
    "load_folder",
    "load_mvtec",
    "load_mvtec2",
    "load_visa",
    "register_dataset",
    "validate_samples",
]

ENTRY_POINT_GROUP = "shiftbench.datasets"

# the helpers' former names here (they live in shiftbench.data.loaders._common now)
_images, _row, _find_mask = list_images, sample_row, find_mask
_check_root, _pick_categories, _require_mask, _finish = (
    check_root,
    pick_categories,
    require_mask,
    finish,
)


def _check_loader(name: str, fn: object) -> None:
    if not callable(fn):
        raise TypeError(f"dataset {name!r}: {fn!r} is not a callable loader(root, categories)")


DATASETS: Registry[Callable[..., pd.DataFrame]] = Registry(
    "dataset", ENTRY_POINT_GROUP, check=_check_loader, known_label="choose one of"
)
for _name, _load in BUILTIN_LOADERS.items():  # one module per layout, in shiftbench.data.loaders
    DATASETS.register(_name, _load)


def register_dataset(
    name: str,
) -> Callable[[Callable[..., pd.DataFrame]], Callable[..., pd.DataFrame]]:
    """Decorator registering ``load(root, categories, **options) -> DataFrame`` as dataset
    ``name`` (the contract is in the module docstring). A taken name is an error."""

    def deco(fn: Callable[..., pd.DataFrame]) -> Callable[..., pd.DataFrame]:
        DATASETS.register(name, fn)
        return fn

    return deco


_loader = register_dataset  # its former private name


def dataset_kinds() -> list[str]:
    """Names accepted by :func:`load_dataset` (built-ins and plugins, without importing them)."""
    return DATASETS.names()


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


def _check_options(kind: str, load: Callable, options: dict) -> None:
    """An option the loader does not take (``--views`` for ``mvtec``) is a one-line
    error naming it, not a TypeError from deep inside."""
    try:
        params = inspect.signature(load).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    takes = [n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    for name in options:
        if name not in takes:
            raise ShiftbenchError(
                f"{name}: not an option of dataset {kind!r} (it takes "
                f"{', '.join(takes) or 'none'}); leave it out or choose another --dataset",
                param=name,
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
    ``options`` go to the loader (``views`` for ``realiad``, ``split_seed`` for ``mtd``,
    ``normal_dir`` for ``folder``...); one it does not take is a one-line error.
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
    _check_options(kind, entry.obj, options)
    if entry.origin == "builtin":
        table = entry.obj(root, categories, **options)
    else:
        root = _check_root(root)
        table = _check_plugin_table(entry.obj(root, categories, **options), entry, root)
    if validate:
        validate_samples(table)
    return table
