"""Datasets, seeded splits and the embedded synthetic dataset."""

from shiftbench.data.datasets import dataset_kinds, load_dataset, validate_samples
from shiftbench.data.io import read_image, read_mask, write_image
from shiftbench.data.splits import make_splits, split_counts, split_hash

__all__ = [
    "dataset_kinds",
    "load_dataset",
    "make_splits",
    "read_image",
    "read_mask",
    "split_counts",
    "split_hash",
    "validate_samples",
    "write_image",
]
