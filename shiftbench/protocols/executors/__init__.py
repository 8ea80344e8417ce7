"""Where a study's units run: in this process, a local process pool or a Ray cluster.

:mod:`.dispatch` chooses and drives an executor (units out, results back; the driver alone
writes the run), :mod:`.base` holds what every executor shares (retries, shipping images),
:mod:`.process` and :mod:`.ray` are the two distributed ones.
"""
