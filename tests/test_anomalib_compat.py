"""The anomalib/timm/torch internals the anomalib adapters use (one table, one check).

An anomalib upgrade that moves or changes one of them fails here, naming it, instead of
in the middle of a fit.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from shiftbench.errors import ShiftbenchError
from shiftbench.models import backbones
from shiftbench.models.anomalib import compat

ADAPTERS = Path(compat.__file__).parent


def test_every_required_internal_exists_with_its_signature():
    assert compat.compat_problems() == []
    compat.check_compat()


def test_a_missing_internal_is_named(monkeypatch):
    from anomalib.models.image.efficient_ad import torch_model

    monkeypatch.delattr(torch_model, "reduce_tensor_elems")
    with pytest.raises(ShiftbenchError) as err:
        compat.check_compat()
    msg = str(err.value)
    assert "anomalib.models.image.efficient_ad.torch_model.reduce_tensor_elems is missing" in msg
    assert "1 required name(s)" in msg and "anomalib 2." in msg


def test_a_missing_module_is_named(monkeypatch):
    monkeypatch.setattr(
        compat, "REQUIRED", [*compat.REQUIRED, ("anomalib.no_such_module", "Thing", None)]
    )
    with pytest.raises(ShiftbenchError, match=r"cannot import anomalib\.no_such_module"):
        compat.check_compat()


def test_a_changed_signature_is_named(monkeypatch):
    from anomalib.models.image.patchcore.torch_model import PatchcoreModel

    def renamed(self, ratio, embeddings=None): ...

    monkeypatch.setattr(PatchcoreModel, "subsample_embedding", renamed)
    with pytest.raises(ShiftbenchError) as err:
        compat.check_compat()
    assert "PatchcoreModel.subsample_embedding parameters changed" in str(err.value)
    assert "expected (self, sampling_ratio), found (self, ratio, embeddings)" in str(err.value)


def test_a_new_optional_parameter_is_compatible_a_new_required_one_is_not():
    def later(self, sampling_ratio, embeddings=None, *, new=1): ...

    def stricter(self, sampling_ratio, new): ...

    assert compat._signature_problem(later, ["self", "sampling_ratio"]) is None
    assert "parameters changed" in compat._signature_problem(stricter, ["self", "sampling_ratio"])


def _imports_from_libraries(path: Path) -> set[tuple[str, str]]:
    tree = ast.parse(path.read_text())
    return {
        (node.module, alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
        if node.module.split(".")[0] in ("anomalib", "timm")
        for alias in node.names
    }


def test_every_name_the_adapters_import_from_anomalib_is_in_the_table():
    listed = {(module, attribute.split(".")[0]) for module, attribute, _ in compat.REQUIRED}
    used = set().union(*(_imports_from_libraries(p) for p in ADAPTERS.glob("*.py")))
    assert used, "no anomalib imports found: the scan is broken"
    assert sorted(used - listed) == []


# --------------------------------------------------------------------- scoped environment
def test_offline_hub_is_scoped_and_restored_after_an_exception():
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    with pytest.raises(RuntimeError, match="boom"), backbones.offline_hub():
        assert constants.HF_HUB_OFFLINE is True
        assert constants.is_offline_mode()
        raise RuntimeError("boom")
    assert constants.HF_HUB_OFFLINE == before


def test_offline_hub_restores_an_offline_setting(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with backbones.offline_hub():
        pass
    assert constants.HF_HUB_OFFLINE is True
