"""The tree is ruff-clean: ``ruff check`` and ``ruff format --check`` (as ``make lint``), so
an unformatted file fails the test run, not only a later lint step."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TARGETS = ["shiftbench", "tests", "benchmarks"]


def _ruff() -> str:
    found = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if found is None:
        pytest.skip("ruff is not installed (pip install -e .[test] brings it)")
    return found


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["check", "format"])
def test_ruff(command):
    p = subprocess.run(
        [_ruff(), *command, *TARGETS], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert p.returncode == 0, f"ruff {' '.join(command)}:\n{p.stdout[-3000:]}{p.stderr[-1000:]}"
