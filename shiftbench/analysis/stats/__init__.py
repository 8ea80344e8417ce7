"""The numbers: statistical tests, the bootstrap, robustness summaries, threshold transfer,
and the replay of a run's shifted twins that per-defect tables and figures need.

The lowest floor of ``analysis``: it imports nothing from ``tables``, ``figures`` or
``report``. ``from shiftbench.analysis import stats`` is the public statistics API: every
name of :mod:`.tests` (which re-exports the bootstrap's) is available as ``stats.<name>``.
"""

from shiftbench.analysis.stats.tests import *  # noqa: F403 - the public statistics API
from shiftbench.analysis.stats.tests import __all__, _finite_sd  # noqa: F401
