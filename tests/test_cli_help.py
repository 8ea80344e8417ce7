"""``--help`` of every command keeps all of its text at any terminal width: nothing in
square brackets eaten as markup (``pip install 'shiftbench[ray]'``), no default cut
short, no command summary cut in the listing of a command group."""

from __future__ import annotations

import re

import pytest
import typer

from shiftbench.cli.main import app, main
from shiftbench.cli.options import default_text, flag_of
from shiftbench.protocols.config import study_fields

#: commands whose docstring is not ours to shorten (their summary may end in "...")
_OTHER_OWNERS = {"predict", "app"}


def _paths(command=None, prefix=()):
    """Every command path of the CLI: (), ("run",), ("list", "models"), ..."""
    command = command or typer.main.get_command(app)
    yield prefix, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _paths(sub, (*prefix, name))


def _flat(text: str) -> str:
    """Whitespace collapsed, and a word click broke after a hyphen joined again."""
    return re.sub(r"-\s+", "-", " ".join(text.split()))


def _help(path, width, monkeypatch, capsys) -> str:
    monkeypatch.setenv("COLUMNS", str(width))
    try:
        main([*path, "--help"])
    except SystemExit as exc:
        assert exc.code == 0, path
    return capsys.readouterr().out


@pytest.mark.parametrize("width", [80, 120])
def test_every_help_keeps_all_of_its_text(width, monkeypatch, capsys):
    seen = 0
    for path, command in _paths():
        out = _help(path, width, monkeypatch, capsys)
        flat = _flat(out)
        assert "…" not in out, path  # no word cut with an ellipsis
        for paragraph in (command.help or "").split("\n\n"):
            assert _flat(paragraph) in flat, (path, paragraph)
        for param in command.params:
            if getattr(param, "help", None):
                assert _flat(param.help) in flat, (path, param.name)
            shown = param.show_default if isinstance(param.show_default, str) else None
            if shown:
                assert _flat(shown) in flat, (path, param.name)
        for name, sub in getattr(command, "commands", {}).items():
            summary = sub.get_short_help_str(limit=10**6)
            if name not in _OTHER_OWNERS:  # a summary is shown whole, not cut with "..."
                assert f"{name} {_flat(summary)}" in flat, (path, name)
        seen += 1
    assert seen >= 15  # root, data, data synth, splits, shift, run, list x3, report, ...


@pytest.mark.parametrize("width", [80, 120])
def test_run_help_shows_extras_in_brackets_and_whole_defaults(width, monkeypatch, capsys):
    flat = _flat(_help(["run"], width, monkeypatch, capsys))
    assert "pip install 'shiftbench[ray]'" in flat
    for name in study_fields():
        assert flag_of(name) in flat, name
        assert f"[default: ({_flat(default_text(name))})]" in flat, name
    assert "[default: (results/<name from config>)]" in flat
    cache = _flat(_help(["cache"], width, monkeypatch, capsys))
    assert "$SHIFTBENCH_CACHE/arrays" in cache
    # a help string's own brackets stay (rich markup took "[default: ...]" for a tag)
    assert "[default: every run under results/]" in _flat(
        _help(["app"], width, monkeypatch, capsys)
    )


def test_the_app_extra_is_named_with_its_brackets(monkeypatch, capsys):
    """``shiftbench app`` without the app extra names ``pip install 'shiftbench[app]'``."""
    import builtins

    real_import = builtins.__import__

    def no_uvicorn(name, *args, **kwargs):
        if name == "uvicorn":
            raise ImportError("No module named 'uvicorn'", name="uvicorn")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_uvicorn)
    with pytest.raises(SystemExit) as exit_:
        main(["app"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "pip install 'shiftbench[app]'" in err and len(err.strip().splitlines()) == 1
