"""A real target domain: the study's categories photographed under a new condition.

Every shift of a synthetic suite is made from the clean images. A quality engineer's shift
is real (the lamp was replaced, a new camera, a second line), and datasets now ship such
conditions. ``--target-root`` names a folder of them in a dataset layout (``--target-dataset``
when it differs from ``--dataset``): test images with masks, and optionally normal
training images. It becomes one more shift of the study, ``shift = target:<name>``:

* ``shift-noadapt`` scores the clean fit on the target's *test* images with the clean
  validation threshold (the same fit that serves every synthetic condition);
* ``shift-adapt`` fits on the target's normal training images and thresholds on a seeded
  validation split of the target, made by :func:`~shiftbench.data.splits.make_splits` on the
  target's own table exactly as for the source (normal train -> train/val, anomalous ->
  val/test). Without normal training images it is refused; ``shift-noadapt`` still runs,
  on every test image of the target.

The target's splits are rows of the study's split table with
:data:`~shiftbench.results.schema.DOMAIN_COLUMN` ``target:<name>`` (``source`` for the
dataset's own images); ``splits.csv`` carries that column only when a target exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from shiftbench.data import load_dataset, make_splits
from shiftbench.errors import ShiftbenchError, about
from shiftbench.results.schema import DOMAIN_COLUMN, SOURCE_DOMAIN, TARGET_PREFIX

#: a target name: it becomes part of unit keys and file names
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
#: the source splits a normal image may come from to be trained on
_TRAIN_ORIGINS = ("train", "validation", "unsplit")
#: layouts whose loader can read a target without normal training images
_TRAIN_OPTIONAL = ("mvtec", "synthetic")


@dataclass(frozen=True)
class Target:
    """A loaded target domain: its name, where it came from and its sample table (the
    study's categories only)."""

    name: str
    root: Path
    dataset: str
    table: pd.DataFrame

    @property
    def shift(self) -> str:
        """The ``shift`` value of its rows: ``target:<name>``."""
        return TARGET_PREFIX + self.name

    @property
    def has_train(self) -> bool:
        """Whether every category has normal training images (``shift-adapt`` needs them)."""
        t = self.table
        normal = t[(t["label"] == 0) & t["orig_split"].isin(_TRAIN_ORIGINS)]
        return set(normal["category"]) >= set(t["category"])


def _source_root(config) -> Path:
    if config.root is not None:
        return Path(config.root)
    from shiftbench.data.synthetic import default_synthetic_root

    return Path(default_synthetic_root())


def load_target(config, categories: list[str]) -> Target | None:
    """The study's target domain (None without ``target_root``), checked: the folder
    exists and is not the source's, its name is usable, its categories are the study's
    (a category the source lacks is named), every image has a test image and masks of
    its image's size (the loader reads every header)."""
    if config.target_root is None:
        return None
    root = Path(config.target_root).expanduser()
    if not root.is_dir():
        raise ShiftbenchError(
            f"target_root {root}: folder not found; pass the folder of the target's images",
            param="target_root",
        )
    if root.resolve() == _source_root(config).expanduser().resolve():
        raise ShiftbenchError(
            f"target_root {root}: is the source dataset's root; point it at the images "
            "captured under the new condition",
            param="target_root",
        )
    name = config.target_name or root.name
    if not _NAME.fullmatch(name):
        raise ShiftbenchError(
            f"target_name {name!r}: use letters, digits, '_', '.' and '-' only (it names "
            "files); pass --target-name",
            param="target_name",
        )
    kind = config.target_dataset or config.dataset
    options = {"train_optional": True} if kind in _TRAIN_OPTIONAL else {}
    if kind == config.dataset:  # the source's loader options (``views``) apply to it too
        options.update(getattr(config, "dataset_options", {}))
    with about("target_root"):
        table = load_dataset(kind, root, None, **options)
    found = sorted(table["category"].unique())
    extra = [c for c in found if c not in categories]
    if extra and config.categories is None:
        raise ShiftbenchError(
            f"target_root {root}: category {extra[0]!r} is not a category of the source "
            f"({', '.join(categories)}); remove it or choose categories with --categories",
            param="target_root",
        )
    missing = [c for c in categories if c not in found]
    if missing:
        raise ShiftbenchError(
            f"target_root {root}: has no category {missing[0]!r} of the study (it has "
            f"{', '.join(found)}); add it or choose categories with --categories",
            param="target_root",
        )
    table = table[table["category"].isin(categories)].reset_index(drop=True)
    for cat, group in table.groupby("category", sort=True):
        if not (group["orig_split"] == "test").any():
            raise ShiftbenchError(
                f"target_root {root}: category {cat!r} has no test images; a target needs "
                "test images (with masks for the anomalous ones)",
                param="target_root",
            )
    return Target(name, root, kind, table)


def check_adapt(target: Target, protocols) -> None:
    """A protocol that fits on the shifted domain needs the target's normal training
    images: refuse it in one line when the target has none."""
    fitting = [p.name for p in protocols if p.fit_on == "shift"]
    if fitting and not target.has_train:
        raise ShiftbenchError(
            f"target_root {target.root}: no normal training images in every category, so "
            f"{fitting[0]} cannot fit on the target; run --protocol clean,shift-noadapt "
            "or add <category>/train/good images",
            param="target_root",
        )


def target_splits(target: Target, seed: int, config) -> pd.DataFrame:
    """The target's seeded splits (a ``split`` column), with ``seed`` and the domain
    column: :func:`make_splits` on its own table with the study's fractions when it has
    normal training images; else every test image is ``test`` (the rest ``unused``)."""
    table = target.table
    if target.has_train:
        with about("target_root"):
            out = make_splits(table, seed, **config.split_options)
    else:
        out = table.assign(split=table["orig_split"].where(table["orig_split"] == "test", "unused"))
    return out.assign(seed=seed, **{DOMAIN_COLUMN: target.shift})


def with_targets(splits: pd.DataFrame, target: Target | None, seeds, config) -> pd.DataFrame:
    """The study's split table, plus the target's rows (and the domain column) when there
    is a target; unchanged otherwise (so ``splits.csv`` is as without this feature)."""
    if target is None:
        return splits
    parts = [splits.assign(**{DOMAIN_COLUMN: SOURCE_DOMAIN})]
    parts += [target_splits(target, seed, config) for seed in seeds]
    return pd.concat(parts, ignore_index=True)


def source_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of the dataset's own images (all of them without a target)."""
    if DOMAIN_COLUMN not in table.columns:
        return table
    return table[table[DOMAIN_COLUMN] == SOURCE_DOMAIN]


def domain_rows(table: pd.DataFrame, shift: str) -> pd.DataFrame:
    """The rows of one target domain (``target:<name>``)."""
    if DOMAIN_COLUMN not in table.columns:
        return table.iloc[:0]
    return table[table[DOMAIN_COLUMN] == shift]


def manifest_record(target: Target, splits: pd.DataFrame) -> dict:
    """The manifest's ``target`` (:data:`~shiftbench.results.schema.TARGET_KEYS`): what
    the target is and how many of its images each seed's splits hold, per label."""
    rows = domain_rows(splits, target.shift)
    counts: dict = {}
    for (seed, split, label), n in rows.groupby(["seed", "split", "label"]).size().items():
        counts.setdefault(str(seed), {}).setdefault(str(split), {})[str(label)] = int(n)
    return {
        "name": target.name,
        "shift": target.shift,
        "root": str(target.root),
        "dataset": target.dataset,
        "has_train": target.has_train,
        "counts": counts,
    }
