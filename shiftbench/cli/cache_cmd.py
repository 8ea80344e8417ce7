"""``shiftbench cache info|clear``: the cache of decoded images and shifted twins."""

from __future__ import annotations

import typer

cache_app = typer.Typer(
    help="The cache of decoded images and shifted twins ($SHIFTBENCH_CACHE/arrays).",
    short_help="The cache of decoded images and shifted twins.",
    no_args_is_help=True,
    rich_markup_mode=None,  # plain help, as the root app (shiftbench.cli.main)
)


@cache_app.command("info", short_help="Where the cache is, its size and budget.")
def info() -> None:
    """Where the cache is, its entries, size on disk (and once loaded: the compression
    ratio) and budget ($SHIFTBENCH_CACHE_GB)."""
    from shiftbench.data.cache import cache_info

    i = cache_info()
    typer.echo(
        f"{i['path']}: {i['entries']} entries, {i['size_mb']:.1f} MiB of {i['budget_mb']:.0f} MiB "
        f"({i['raw_mb']:.1f} MiB uncompressed, ratio {i['ratio']:.2f}x)"
    )


@cache_app.command("clear")
def clear() -> None:
    """Delete every cached array (the synthetic dataset stays)."""
    from shiftbench.data.cache import clear_cache_report

    r = clear_cache_report()
    typer.echo(f"removed {r['entries']} entries from {r['path']}, freed {r['freed_mb']:.1f} MiB")


def register(app: typer.Typer) -> None:
    app.add_typer(cache_app, name="cache")
