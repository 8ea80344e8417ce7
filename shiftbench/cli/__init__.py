"""Command-line interface (typer). Each command group lives in its own module and adds
itself to the app through ``register(app)``; modules import heavy libraries inside the
command bodies only, so ``shiftbench --help`` stays fast."""
