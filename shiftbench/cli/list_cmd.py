"""``shiftbench list perturbations|suites|models|adaptations``."""

from __future__ import annotations

import typer

list_app = typer.Typer(
    help="List what is available: perturbations, suites, models, adaptations.",
    short_help="List perturbations, suites, models, adaptations.",
    no_args_is_help=True,
    rich_markup_mode=None,  # plain help, as the root app (shiftbench.cli.main)
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
    ``family`` stays the engine's (mask moves only for ``geometric``).

    The built-ins come from :mod:`shiftbench._catalogue` (no import of the perturbation
    modules, albumentations, OpenCV); only an installed perturbation plugin makes it ask the
    registry, which imports them all to learn the plugin's family."""
    from shiftbench import _catalogue

    if _catalogue.perturbation_plugins():
        from shiftbench.transforms import registry

        rows = []
        for name, family, origin in registry.list_perturbations():
            group = family
            if family != "?":
                group = getattr(registry.get_perturbation(name), "catalogue", None) or family
            rows.append((name, family, origin, group))
    else:
        rows = [(n, f, "builtin", g) for n, f, g in _catalogue.BUILTIN_PERTURBATIONS]
    groups: dict[str, list[tuple[str, str, str]]] = {}
    for name, family, origin, group in rows:
        groups.setdefault(group, []).append((name, family, origin))
    rank = {g: i for i, g in enumerate(GROUP_ORDER)}
    order = sorted(groups, key=lambda g: (rank.get(g, len(rank)), g))
    return [(g, groups[g]) for g in order]


def table_lines(
    rows: list[tuple[str, ...]], indent: str = "", width: int | None = None
) -> list[str]:
    """``rows`` as aligned columns: every column but the last as wide as its longest
    entry; the last wrapped to the terminal (``width``: its columns, ``COLUMNS`` or 80),
    continuation lines under its start. A long name never runs into the next column."""
    import shutil
    import textwrap

    if not rows:
        return []
    n = len(rows[0])
    widths = [max(len(r[i]) for r in rows) for i in range(n - 1)]
    lead = len(indent) + sum(w + 2 for w in widths)
    width = width or shutil.get_terminal_size().columns
    room = max(width - lead - 1, 30)
    lines = []
    for row in rows:
        head = indent + "".join(f"{c:{w}s}  " for c, w in zip(row, widths, strict=False))
        text = textwrap.wrap(row[-1], room, break_on_hyphens=False) or [""]
        lines.append((head + text[0]).rstrip())
        lines += [" " * lead + t for t in text[1:]]
    return lines


@list_app.command("perturbations", short_help="Perturbations, grouped by family.")
def list_perturbations() -> None:
    """Built-in and plugin perturbations, grouped by family (the ImageNet-C corruptions and
    the acquisition shifts as their own groups); each row gives name, family, origin."""
    groups = perturbation_groups()
    rows = [row for _, group_rows in groups for row in group_rows]
    lines = iter(table_lines(rows, indent="  "))
    for i, (group, group_rows) in enumerate(groups):
        if i:
            typer.echo("")
        typer.echo(f"{group} ({len(group_rows)})")
        for _ in group_rows:
            typer.echo(next(lines))


@list_app.command("suites")
def list_suites() -> None:
    """Suites shipped with shiftbench (YAML)."""
    from shiftbench._catalogue import suite_rows

    for line in table_lines(suite_rows()):
        typer.echo(line)


@list_app.command("models")
def list_models() -> None:
    """Model adapters, by registry name."""
    from shiftbench._catalogue import model_rows

    for line in table_lines(model_rows()):
        typer.echo(line)


@list_app.command("adaptations", short_help="Adaptation strategies and the data each reads.")
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
