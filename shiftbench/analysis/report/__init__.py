"""The report of a run, assembled from the floors below: :mod:`.build` (``build_report``,
the entry point), :mod:`.context` (what its steps share), :mod:`.tables`,
:mod:`.figures`, :mod:`.robustness` (which tables and figures a run gets), :mod:`.html`,
:mod:`.runs` (combining runs) and :mod:`.summary` (the console summary)."""
