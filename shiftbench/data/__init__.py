"""Datasets, seeded splits and the embedded synthetic dataset.

Dataset layouts are a registry like perturbations and models: built-ins, :func:`register_dataset`
and plugins of the ``shiftbench.datasets`` entry-point group (contract in
:mod:`shiftbench.data.datasets`).
"""

from shiftbench.data.datasets import (
    dataset_kinds,
    load_dataset,
    register_dataset,
    validate_samples,
)
from shiftbench.data.io import read_image, read_mask, write_image
from shiftbench.data.splits import make_splits, split_counts, split_hash

__all__ = [
    "dataset_kinds",
    "load_dataset",
    "make_splits",
    "read_image",
    "read_mask",
    "register_dataset",
    "split_counts",
    "split_hash",
    "validate_samples",
    "write_image",
]
