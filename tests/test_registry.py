"""The shared registry (``shiftbench._registry``) and the three registries built on it.

Plugins are faked the way pip lays out an installed distribution (as in
``test_plugin_example.py``): a module and a ``<name>-<version>.dist-info`` folder with
``METADATA`` and ``entry_points.txt`` on ``sys.path``, found by the same
``importlib.metadata`` call shiftbench makes.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from shiftbench._registry import (
    DuplicateNameError,
    PluginError,
    Registry,
    UnknownNameError,
    suggest,
)
from shiftbench.data import dataset_kinds, load_dataset, register_dataset
from shiftbench.data import datasets as datasets_mod
from shiftbench.data.io import write_image
from shiftbench.errors import ShiftbenchError
from shiftbench.models import create_model, list_models, register_model
from shiftbench.models import registry as models_reg
from shiftbench.transforms import registry as pert_reg

# ----------------------------------------------------------------------------- fixtures


@pytest.fixture
def fake_dist(tmp_path, monkeypatch):
    """``install(dist, version, {group: {name: target}}, {module: source})`` on sys.path."""
    modules: list[str] = []

    def install(dist, version, entry_points, sources):
        site = tmp_path / f"site-{dist}"
        site.mkdir()
        for module, source in sources.items():
            (site / f"{module}.py").write_text(textwrap.dedent(source))
            modules.append(module)
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        lines = []
        for group, entries in entry_points.items():
            lines.append(f"[{group}]")
            lines += [f"{name} = {target}" for name, target in entries.items()]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        monkeypatch.syspath_prepend(str(site))
        for reg in registries:
            reg.refresh()

    registries = (pert_reg.PERTURBATIONS, models_reg.MODELS, datasets_mod.DATASETS)
    for reg in registries:
        reg.load_builtins()
    before = [dict(reg.entries) for reg in registries]
    yield install
    for reg, entries in zip(registries, before, strict=True):
        reg.entries.clear()
        reg.entries.update(entries)
        reg.refresh()
    for module in modules:
        sys.modules.pop(module, None)


# ----------------------------------------------------------------------------- Registry


def test_duplicate_name_names_both_origins():
    reg = Registry("widget")
    reg.register("w", len)
    reg.register("w", len)  # the same object again: a no-op
    with pytest.raises(DuplicateNameError) as err:
        reg.register("w", max)
    msg = str(err.value)
    assert "widget name 'w' is taken by builtins.len" in msg and "builtins.max" in msg
    assert isinstance(err.value, ShiftbenchError) and isinstance(err.value, ValueError)


def test_unknown_name_suggests_close_names():
    reg = Registry("model", "x.models")
    for name in ("anomalib-padim", "anomalib-patchcore", "patchcore", "ae"):
        reg.register(name, object())
    with pytest.raises(UnknownNameError) as err:
        reg.get("padim")
    msg = str(err.value)
    assert msg.startswith("unknown model 'padim'; did you mean 'anomalib-padim'? known: ae, ")
    assert "'x.models' entry-point group" in msg and "\n" not in msg
    assert isinstance(err.value, LookupError)
    assert suggest("patchcor", reg.names())[:2] == ["patchcore", "anomalib-patchcore"]
    assert suggest("zzz", reg.names()) == []


def test_entries_remember_their_origin():
    reg = Registry("widget")
    entry = reg.register("w", test_entries_remember_their_origin, description="d")
    assert entry.origin == f"registered in {__name__}" and not entry.is_plugin
    builtin = pert_reg.PERTURBATIONS.entry("rotate")
    assert builtin.origin == "builtin" and builtin.distribution == "shiftbench"


def test_entry_points_are_imported_lazily_and_remember_their_distribution(fake_dist):
    fake_dist(
        "acme-widgets",
        "1.2",
        {"acme.widgets": {"spanner": "acme_spanner:Spanner", "hammer": "acme_hammer:Hammer"}},
        {"acme_spanner": "class Spanner:\n    pass\n", "acme_hammer": "class Hammer:\n    pass\n"},
    )
    reg = Registry("widget", "acme.widgets")
    assert reg.names() == ["hammer", "spanner"]
    assert "acme_spanner" not in sys.modules and "acme_hammer" not in sys.modules
    cls = reg.get("spanner")
    assert cls.__name__ == "Spanner" and "acme_hammer" not in sys.modules
    entry = reg.entry("spanner")
    assert entry.origin == "plugin acme-widgets 1.2"
    assert (entry.distribution, entry.version) == ("acme-widgets", "1.2")
    assert entry.entry_point == "acme_spanner:Spanner" and entry.is_plugin
    with pytest.raises(UnknownNameError, match="did you mean 'spanner'"):
        reg.get("spaner")


def test_broken_and_clashing_plugins_are_named(fake_dist):
    fake_dist(
        "acme-a", "1", {"acme.w": {"w": "acme_a:W", "bad": "acme_bad:X"}}, {"acme_a": "W = 1\n"}
    )
    fake_dist("acme-b", "2", {"acme.w": {"w": "acme_b:W"}}, {"acme_b": "W = 2\n"})
    reg = Registry("widget", "acme.w")
    with pytest.raises(DuplicateNameError, match="'w' is declared by plugin acme-"):
        reg.get("w")
    with pytest.raises(PluginError, match=r"widget 'bad' from plugin acme-a 1: cannot import"):
        reg.get("bad")
    everything = reg.load_all()
    assert isinstance(everything["bad"], PluginError)


# ----------------------------------------------------------------------------- perturbations


def test_perturbation_plugin_with_a_bad_family_is_named(fake_dist):
    fake_dist(
        "pert-plugin",
        "0.3",
        {"shiftbench.perturbations": {"odd": "pert_odd:Odd"}},
        {
            "pert_odd": """
                from shiftbench.transforms import Perturbation
                class Odd(Perturbation):
                    name = "odd"
                    family = "weather"
                    def sample_params(self, rng, shape):
                        return {}
                    def apply(self, image):
                        return image.copy()
            """
        },
    )
    assert "odd" in pert_reg.known_names()
    with pytest.raises(ShiftbenchError, match=r"plugin pert-plugin 0.3: .*family 'weather'"):
        pert_reg.get_perturbation("odd")
    rows = {name: (family, origin) for name, family, origin in pert_reg.list_perturbations()}
    assert rows["odd"][0] == "?" and rows["odd"][1].startswith("broken: ")


def test_unknown_perturbation_suggests():
    with pytest.raises(
        ShiftbenchError, match="unknown perturbation 'gausian_noise'; did you mean 'gaussian_noise'"
    ):
        pert_reg.get_perturbation("gausian_noise")


# ----------------------------------------------------------------------------- models


def test_unknown_model_suggests_the_anomalib_name():
    with pytest.raises(
        ShiftbenchError, match="unknown model 'padim'; did you mean 'anomalib-padim'"
    ):
        create_model("padim")


def test_model_name_clash_names_both_origins():
    with pytest.raises(DuplicateNameError) as err:

        @register_model("patchcore", "another PatchCore")
        def factory(**params):  # pragma: no cover - never called
            raise AssertionError

    msg = str(err.value)
    assert (
        "model name 'patchcore' is taken by shiftbench.models.patchcore.PatchCore (builtin)" in msg
    )
    assert "factory" in msg and f"registered in {__name__}" in msg


def test_model_plugin_is_listed_lazily_then_described(fake_dist):
    fake_dist(
        "lab-models",
        "2.0",
        {"shiftbench.models": {"lab-pc": "lab_pc:LabPatchCore"}},
        {
            "lab_pc": '''
                from shiftbench.models.patchcore import PatchCore
                class LabPatchCore(PatchCore):
                    """PatchCore with lab defaults."""
            '''
        },
    )
    listed = dict(list_models())
    assert listed["lab-pc"] == "plugin lab_pc:LabPatchCore" and "lab_pc" not in sys.modules
    model = create_model("lab-pc", weights="random", image_size=32)
    assert type(model).__name__ == "LabPatchCore" and model.name == "lab-pc"
    assert dict(list_models())["lab-pc"] == "PatchCore with lab defaults. (plugin from lab-models)"


# ----------------------------------------------------------------------------- datasets

LINECAM = """
    from pathlib import Path

    import pandas as pd
    
    def load_linecam(root, categories=None, *, lane="lane0"):
        # <root>/<lane>/ok/*.png normal, <root>/<lane>/nok/*.png anomalous, masks in nok_mask/
        rows = []
        for image in sorted((root / lane / "ok").glob("*.png")):
            rows.append(dict(sample_id=f"{lane}/unsplit/good/{image.stem}",
                             image_path=str(image.relative_to(root)), category=lane,
                             orig_split="unsplit", label=0, defect_type="good", mask_path=None))
        for image in sorted((root / lane / "nok").glob("*.png")):
            rows.append(dict(sample_id=f"{lane}/test/scratch/{image.stem}",
                             image_path=str(image), category=lane, orig_split="test", label=1,
                             defect_type="scratch",
                             mask_path=str(root / lane / "nok_mask" / image.name)))
        return pd.DataFrame(rows)

    def load_bad_columns(root, categories=None):
        return pd.DataFrame({"sample_id": ["a"], "image_path": ["a.png"]})

    def load_not_a_table(root, categories=None):
        return [{"sample_id": "a"}]
"""


def _linecam_root(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for folder, n in (("ok", 4), ("nok", 2)):
        for i in range(n):
            write_image(
                root / "lane0" / folder / f"{i:03d}.png",
                rng.integers(0, 255, (16, 24, 3), dtype=np.uint8),
            )
    for i in range(2):
        m = np.zeros((16, 24), np.uint8)
        m[4:8, 4:8] = 255
        write_image(root / "lane0" / "nok_mask" / f"{i:03d}.png", m)
    return root


def test_dataset_plugin_through_an_entry_point(fake_dist, tmp_path):
    fake_dist(
        "lab-linecam",
        "0.1",
        {
            "shiftbench.datasets": {
                "linecam": "lab_linecam:load_linecam",
                "linecam-bad": "lab_linecam:load_bad_columns",
                "linecam-list": "lab_linecam:load_not_a_table",
            }
        },
        {"lab_linecam": LINECAM},
    )
    assert "linecam" in dataset_kinds() and "lab_linecam" not in sys.modules
    root = _linecam_root(tmp_path / "data")
    table = load_dataset("linecam", root)
    assert list(table.columns) == datasets_mod.COLUMNS
    assert len(table) == 6 and set(table["label"]) == {0, 1}
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in table["image_path"])
    assert table["mask_path"].notna().sum() == 2
    entry = datasets_mod.DATASETS.entry("linecam")
    assert entry.origin == "plugin lab-linecam 0.1" and entry.distribution == "lab-linecam"
    # options pass through; a wrong lane means no images, named like a built-in's error
    with pytest.raises(ShiftbenchError, match="no images found"):
        load_dataset("linecam", root, lane="lane9")
    with pytest.raises(
        ShiftbenchError, match=r"dataset 'linecam-bad' \(plugin lab-linecam 0.1\): columns"
    ):
        load_dataset("linecam-bad", root)
    with pytest.raises(ShiftbenchError, match="returned list, not a pandas DataFrame"):
        load_dataset("linecam-list", root)
    with pytest.raises(ShiftbenchError, match="unknown dataset 'linecan'; did you mean 'linecam'"):
        load_dataset("linecan", root)


def test_register_dataset_in_process_and_clashes(tmp_path):
    root = _linecam_root(tmp_path / "data")
    namespace: dict = {}
    exec(textwrap.dedent(LINECAM), namespace)
    try:
        register_dataset("linecam-inproc")(namespace["load_linecam"])
        assert len(load_dataset("linecam-inproc", root, validate=False)) == 6
        with pytest.raises(DuplicateNameError, match="dataset name 'mvtec' is taken"):
            register_dataset("mvtec")(namespace["load_linecam"])
    finally:
        datasets_mod.DATASETS.entries.pop("linecam-inproc", None)
    assert "synthetic" not in dataset_kinds() and "mvtec" in dataset_kinds()


def test_unknown_dataset_keeps_its_wording():
    with pytest.raises(
        ShiftbenchError, match="unknown dataset 'kitti'; choose one of: btad, folder"
    ):
        load_dataset("kitti", "/tmp")
    with pytest.raises(ShiftbenchError, match="did you mean 'synthetic'"):
        load_dataset("synthetc")


def test_registry_tables_are_exposed_for_snapshots():
    assert pert_reg._REGISTRY is pert_reg.PERTURBATIONS.entries
    assert models_reg._REGISTRY is models_reg.MODELS.entries
