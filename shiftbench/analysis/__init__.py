"""Statistics, tables, figures and the report, one floor each, imported one way:
``stats`` (the numbers) <- ``tables`` <- ``figures`` <- ``report`` (which assembles them).

``from shiftbench.analysis import stats`` is the public statistics API. The plotting
modules import matplotlib; import them (and :mod:`.report`) only when drawing.
"""

from shiftbench.analysis import stats
from shiftbench.analysis.stats import transfer

__all__ = ["stats", "transfer"]
