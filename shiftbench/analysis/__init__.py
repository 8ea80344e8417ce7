"""Statistics, threshold-transfer analysis, paper tables and figures, and the report.

``from shiftbench.analysis import stats`` is the public statistics API. The plotting
modules import matplotlib; import them (and :mod:`.report`) only when drawing.
"""

from shiftbench.analysis import stats, transfer

__all__ = ["stats", "transfer"]
