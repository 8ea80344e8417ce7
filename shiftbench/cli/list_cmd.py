"""``shiftbench list perturbations|suites|models|adaptations``."""

from __future__ import annotations

import typer

list_app = typer.Typer(
    help="List what is available: perturbations, suites, models, adaptations.", no_args_is_help=True
)


#: Order of the groups in ``shiftbench list perturbations`` (others follow, sorted).
GROUP_ORDER = (
    "geometric",
    "photometric",
    "illumination",
    "sensor",
    "other",
    "corruption",
    "acquisition",
)


def perturbation_groups() -> list[tuple[str, list[tuple[str, str, str]]]]:
    """``[(group, [(name, family, origin), ...]), ...]``: the catalogue grouped by the
    class attribute ``catalogue`` (``corruption``, ``acquisition``) or else by family.
    ``family`` stays the engine's (mask moves only for ``geometric``)."""
    from shiftbench.transforms import registry

    groups: dict[str, list[tuple[str, str, str]]] = {}
    for name, family, origin in registry.list_perturbations():
        group = family
        if family != "?":
            group = getattr(registry.get_perturbation(name), "catalogue", None) or family
        groups.setdefault(group, []).append((name, family, origin))
    rank = {g: i for i, g in enumerate(GROUP_ORDER)}
    order = sorted(groups, key=lambda g: (rank.get(g, len(rank)), g))
    return [(g, groups[g]) for g in order]


@list_app.command("perturbations")
def list_perturbations() -> None:
    """Built-in and plugin perturbations, grouped by family (the ImageNet-C corruptions and
    the acquisition shifts as their own groups); each row gives name, family, origin."""
    for i, (group, rows) in enumerate(perturbation_groups()):
        if i:
            typer.echo("")
        typer.echo(f"{group} ({len(rows)})")
        for name, family, origin in rows:
            typer.echo(f"  {name:26s} {family:14s} {origin}")


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


@list_app.command("adaptations")
def list_adaptations() -> None:
    """Adaptation strategies (--adapt): the target data each reads, whether it is
    transductive, whether it changes the backbone, which models it adapts."""
    from shiftbench.adaptation import list_adaptations as records

    typer.echo(f"{'name':14s} {'target data':16s} {'transductive':13s} {'backbone':9s} models")
    for r in records():
        if "target_data" not in r:
            typer.echo(f"{r['name']:14s} {r['description']}")
            continue
        typer.echo(
            f"{r['name']:14s} {r['target_data']:16s} {'yes' if r['transductive'] else 'no':13s} "
            f"{'changed' if r['changes_backbone'] else 'kept':9s} {r['models']}"
        )
        typer.echo(f"{'':14s} {r['description']}")


def register(app: typer.Typer) -> None:
    app.add_typer(list_app, name="list")
