"""``shiftbench list perturbations|suites|models``."""

from __future__ import annotations

import typer

list_app = typer.Typer(
    help="List what is available: perturbations, suites, models.", no_args_is_help=True
)


@list_app.command("perturbations")
def list_perturbations() -> None:
    """Built-in and plugin perturbations, with their family."""
    from shiftbench.transforms import registry

    for name, family, origin in registry.list_perturbations():
        typer.echo(f"{name:24s} {family:14s} {origin}")


@list_app.command("suites")
def list_suites() -> None:
    """Suites shipped with shiftbench (YAML)."""
    from shiftbench.transforms import suites

    for name, description in suites.list_suites():
        typer.echo(f"{name:20s} {description}")


@list_app.command("models")
def list_models() -> None:
    """Model adapters, by registry name."""
    from shiftbench.models import registry

    for name, description in registry.list_models():
        typer.echo(f"{name:22s} {description}")


def register(app: typer.Typer) -> None:
    app.add_typer(list_app, name="list")
