"""The figures: curves and bars (:mod:`.curves`), heat maps and rank diagrams
(:mod:`.grids`), qualitative grids (:mod:`.qualitative`), one style and palette
(:mod:`.style`, :mod:`.palette`). Imports matplotlib: import these modules only when
drawing. Uses :mod:`..stats` and :mod:`..tables`, never :mod:`..report`."""
