"""Shared fixtures: a tiny synthetic dataset and an isolated cache."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Keep generated data (synthetic cache, weights) out of the user's home."""
    old = os.environ.get("SHIFTBENCH_CACHE")
    os.environ["SHIFTBENCH_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("SHIFTBENCH_CACHE", None)
    else:
        os.environ["SHIFTBENCH_CACHE"] = old


@pytest.fixture(scope="session")
def tiny_synthetic(tmp_path_factory):
    """A small synthetic MVTec-layout dataset: 64 px, 4 categories, few images."""
    from shiftbench.data.synthetic import make_synthetic

    root = tmp_path_factory.mktemp("synthetic")
    return make_synthetic(root, seed=0, size=64, n_train=10, n_test_good=5, n_per_defect=3)
