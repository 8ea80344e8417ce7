"""The tables: protocol comparisons with intervals and tests (:mod:`.comparison`), metric
columns (:mod:`.metrics`), per-defect rows (:mod:`.defects`), and their rendering to
LaTeX, Markdown and HTML (:mod:`.grid`, :mod:`.render`). Imports only :mod:`..stats`."""
