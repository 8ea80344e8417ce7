"""``shiftbench list``: the static tables of built-ins (shiftbench._catalogue) say what the
registries say, listing imports no heavy library, and columns fit their content."""

from __future__ import annotations

import subprocess
import sys

from shiftbench import _catalogue
from shiftbench.cli.list_cmd import perturbation_groups, table_lines


def test_the_model_table_is_the_registry():
    from shiftbench.models.registry import MODELS

    MODELS.load_builtins()
    builtin = [(e.name, e.description) for e in MODELS.entries.values() if e.origin == "builtin"]
    # the registry's order follows import order (an earlier test may have imported an
    # adapter first); the table's order is what `list models` shows
    assert sorted(_catalogue.BUILTIN_MODELS) == sorted(builtin)


def test_the_perturbation_table_is_the_registry():
    from shiftbench.transforms.registry import PERTURBATIONS

    PERTURBATIONS.load_builtins()
    builtin = sorted(
        (e.name, e.obj.family, getattr(e.obj, "catalogue", None) or e.obj.family)
        for e in PERTURBATIONS.entries.values()
        if e.origin == "builtin"
    )
    assert sorted(_catalogue.BUILTIN_PERTURBATIONS) == sorted(builtin)


def test_the_suite_rows_are_the_shipped_suites():
    from shiftbench.transforms.suites import list_suites

    assert _catalogue.suite_rows() == list_suites()


def test_with_a_plugin_the_registry_lists_the_same_built_ins(monkeypatch):
    fast = perturbation_groups()
    monkeypatch.setattr(_catalogue, "perturbation_plugins", lambda: True)
    assert perturbation_groups() == fast


def test_listing_imports_no_heavy_library():
    code = (
        "import sys\n"
        "from shiftbench.cli.main import main\n"
        "for what in ('models', 'perturbations', 'suites'):\n"
        "    try:\n"
        "        main(['list', what])\n"
        "    except SystemExit as exc:\n"
        "        assert not exc.code, exc.code\n"
        "heavy = ('torch', 'anomalib', 'albumentations', 'cv2', 'timm', 'numpy', 'matplotlib')\n"
        "print('HEAVY', sorted(m for m in heavy if m in sys.modules))\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "HEAVY []" in p.stdout
    assert "anomalib-draem" in p.stdout and "cc_zoom_blur" in p.stdout
    assert "common-corruptions-extra" in p.stdout


def test_columns_fit_the_longest_name_and_the_terminal():
    rows = [("common-corruptions-extra", "The 4 held-out ImageNet-C corruptions " * 3), ("a", "b")]
    lines = table_lines(rows, width=60)
    assert lines[0].startswith("common-corruptions-extra  The 4")
    start = len("common-corruptions-extra  ")
    assert all(len(line) <= 60 for line in lines)
    assert lines[-1] == "a" + " " * (start - 1) + "b"
    wrapped = lines[1:-1]
    assert wrapped and all(line[:start].isspace() and line[start] != " " for line in wrapped)
    text = " ".join(line[start:].strip() for line in lines[:-1])
    assert text == " ".join(rows[0][1].split())  # nothing lost in the wrapping
