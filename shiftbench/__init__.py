"""shiftbench: robustness and domain-shift studies of industrial visual anomaly detection.

Data flows one way: ``data`` (datasets, splits, synthetic) -> ``transforms`` (shifted twins)
-> ``models`` (fit, score) -> ``protocols`` (the runner) -> ``metrics`` -> ``analysis``
(statistics, tables, figures) -> ``results`` (the run directory).
"""

import os as _os

# albumentations phones home at import; we never want that (offline sites, CI).
_os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
