"""The built-in dataset layouts, one module each; every loader returns the same sample
table (:data:`~shiftbench.data.loaders._common.COLUMNS`, contract in
:mod:`shiftbench.data.datasets`, which registers :data:`BUILTIN_LOADERS` under their
names). docs/datasets.md lists each layout, its official counts and its licence."""

from shiftbench.data.loaders.btad import load_btad
from shiftbench.data.loaders.folder import load_folder
from shiftbench.data.loaders.ksdd2 import load_ksdd2
from shiftbench.data.loaders.loco import load_loco
from shiftbench.data.loaders.mpdd import load_mpdd
from shiftbench.data.loaders.mtd import load_mtd
from shiftbench.data.loaders.mvtec import load_mvtec
from shiftbench.data.loaders.mvtec2 import load_mvtec2
from shiftbench.data.loaders.realiad import load_realiad
from shiftbench.data.loaders.visa import load_visa

#: name -> loader, in the order ``--dataset`` lists them
BUILTIN_LOADERS = {
    "mvtec": load_mvtec,
    "mvtec2": load_mvtec2,
    "btad": load_btad,
    "visa": load_visa,
    "folder": load_folder,
    "loco": load_loco,
    "mpdd": load_mpdd,
    "ksdd2": load_ksdd2,
    "realiad": load_realiad,
    "mtd": load_mtd,
}

__all__ = ["BUILTIN_LOADERS"]
