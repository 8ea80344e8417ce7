"""The example plugin under examples/ is found through real entry-point discovery.

The fast test installs it the way pip lays out an installed distribution: a
``<name>-<version>.dist-info`` folder with ``METADATA`` and ``entry_points.txt`` (copied
from the example's ``pyproject.toml``) next to the package, on ``sys.path``. Then
``importlib.metadata`` — the same call shiftbench makes — finds the entry point. The second
test runs a real ``pip install --target`` of a copy of the example (no change to the venv,
no network).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tomllib

from shiftbench.testing import check_perturbation
from shiftbench.transforms import registry
from shiftbench.transforms.suites import suite_from_dict

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "shiftbench-hue-plugin"


@pytest.fixture
def on_path(monkeypatch):
    """Put a folder on sys.path; forget plugin state before and after."""

    def add(folder: Path) -> None:
        monkeypatch.syspath_prepend(str(folder))
        registry.refresh()

    registry.known_names()  # load the built-ins before the snapshot
    before = dict(registry._REGISTRY)
    yield add
    registry._REGISTRY.clear()
    registry._REGISTRY.update(before)
    registry.refresh()
    for mod in [m for m in sys.modules if m.startswith("shiftbench_hue")]:
        del sys.modules[mod]


def _fake_install(site: Path) -> None:
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    shutil.copytree(EXAMPLE / "src" / "shiftbench_hue", site / "shiftbench_hue")
    dist = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    lines = []
    for group, entries in project["entry-points"].items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {target}" for name, target in entries.items()]
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n")


def _check_discovered() -> None:
    assert "shiftbench_hue" not in sys.modules
    assert "hue_shift" in registry.known_names()
    assert "shiftbench_hue" not in sys.modules, "listing names must not import plugins"
    cls = registry.get_perturbation("hue_shift")
    assert cls.__module__ == "shiftbench_hue.hue"
    rows = {name: (family, origin) for name, family, origin in registry.list_perturbations()}
    assert rows["hue_shift"] == ("photometric", "plugin shiftbench-hue-plugin 0.1.0")
    check_perturbation(cls)
    # a suite mixes it with built-ins, and the mask is untouched by it
    suite = suite_from_dict(
        {"name": "with-hue", "perturbations": ["rotate", {"name": "hue_shift", "severity": 5}]}
    )
    image = np.zeros((32, 32, 3), np.uint8)
    image[..., 0] = 200
    image[..., 1] = 60
    mask = np.zeros((32, 32), np.uint8)
    out, m_out, params = suite.apply(image, mask, seed=0, image_id="a")
    assert params["hue_shift"]["degrees"] != 0
    assert not np.array_equal(out[16, 16], image[16, 16])
    assert not m_out.any()


def test_example_plugin_is_discovered_through_its_entry_point(tmp_path, on_path):
    with pytest.raises(Exception, match="unknown perturbation 'hue_shift'"):
        registry.get_perturbation("hue_shift")
    _fake_install(tmp_path)
    on_path(tmp_path)
    _check_discovered()


def test_example_plugin_pip_installs_and_is_discovered(tmp_path, on_path):
    # build from a copy: an in-tree build would leave build/ and *.egg-info in examples/
    source = tmp_path / "src"
    shutil.copytree(EXAMPLE, source)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "--no-index",
            "--target",
            str(tmp_path / "site"),
            str(source),
        ],
        check=True,
    )
    on_path(tmp_path / "site")
    _check_discovered()
