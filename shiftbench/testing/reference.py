"""The ImageNet-C reference, ``imagecorruptions`` 1.1.2, made importable today: the one
shim the corruption tests and benchmarks share."""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from typing import Any

import numpy as np

__all__ = ["load_imagecorruptions"]


def load_imagecorruptions() -> Any | None:
    """``imagecorruptions`` made importable on numpy 2 / scikit-image >= 0.19 / no
    setuptools: a ``pkg_resources`` stand-in while importing, ``np.float_`` for numpy 2,
    and ``multichannel=True`` turned into ``channel_axis=-1`` (applied once per process).
    None when it is not installed (``pip install --no-deps imagecorruptions==1.1.2``)."""
    if importlib.util.find_spec("imagecorruptions") is None:
        return None
    added = False
    if importlib.util.find_spec("pkg_resources") is None:
        stub = types.ModuleType("pkg_resources")
        stub.resource_filename = lambda pkg, name: os.path.join(
            os.path.dirname(importlib.util.find_spec(pkg).origin), name
        )
        sys.modules["pkg_resources"] = stub
        added = True
    try:
        import imagecorruptions
        from imagecorruptions import corruptions as ref
    finally:
        if added:
            sys.modules.pop("pkg_resources", None)

    class _Numpy:
        def __getattr__(self, name):
            return np.float64 if name == "float_" else getattr(np, name)

    ref.np = _Numpy()
    if not getattr(ref, "_shiftbench_shim", False):
        gaussian = ref.gaussian

        def compatible_gaussian(x, sigma=1, multichannel=None, **kw):
            if multichannel:
                kw["channel_axis"] = -1
            return gaussian(x, sigma=sigma, **kw)

        ref.gaussian = compatible_gaussian
        ref._shiftbench_shim = True
    return imagecorruptions
