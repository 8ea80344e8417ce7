"""The shiftbench web app (``shiftbench app RUN_DIR...``): see :mod:`shiftbench.app.server`."""
