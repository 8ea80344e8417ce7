"""The built-in dataset layouts, one module each; every loader returns the same sample
table (:data:`~shiftbench.data.loaders._common.COLUMNS`, contract in
:mod:`shiftbench.data.datasets`, which registers :data:`BUILTIN_LOADERS` under their
names). docs/datasets.md lists each layout, its official counts and its licence."""

from shiftbench.data.loaders.btad import load_btad
from shiftbench.data.loaders.folder import load_folder
from shiftbench.data.loaders.mvtec import load_mvtec
from shiftbench.data.loaders.mvtec2 import load_mvtec2
from shiftbench.data.loaders.visa import load_visa

#: name -> loader, in the order ``--dataset`` lists them
BUILTIN_LOADERS = {
    "mvtec": load_mvtec,
    "mvtec2": load_mvtec2,
    "btad": load_btad,
    "visa": load_visa,
    "folder": load_folder,
}

__all__ = ["BUILTIN_LOADERS"]
