"""The command line: one vocabulary generated from StudyConfig, defaults in --help, one-line
errors naming the flag, --version, cache reports, progress that suits the output."""

from __future__ import annotations

import io
import pickle
import re

import numpy as np
import pandas as pd
import pytest
import typer
from _cli import run_main as _main

from shiftbench.cli.main import app
from shiftbench.cli.options import default_text, flag_of
from shiftbench.errors import ShiftbenchError, about
from shiftbench.protocols.config import (
    StudyConfig,
    config_differences,
    load_config,
    study_fields,
)

DEMO_HASH = "18d910686d"


def _command(name):
    return typer.main.get_command(app).commands[name]


# -- one source of truth ---------------------------------------------------------------


def test_the_demo_study_keeps_its_hash():
    assert StudyConfig().hash == DEMO_HASH
    assert load_config().hash == DEMO_HASH
    assert load_config().to_dict() == StudyConfig().to_dict()
    assert load_config().image_size == 128 and load_config().crop is None
    assert "crop" not in StudyConfig().hash_payload()  # unset new options leave hashes alone
    assert StudyConfig(crop=96).hash != DEMO_HASH


def test_image_size_defaults_to_128_for_synthetic_and_256_for_real_data(tmp_path):
    assert load_config(None, {"dataset": "mvtec"}).image_size == 256
    assert load_config(None, {"dataset": "visa", "image_size": 64}).image_size == 64
    assert StudyConfig(dataset="btad").image_size == 256
    study = tmp_path / "s.yaml"
    study.write_text("dataset: mvtec\n")
    assert load_config(study).image_size == 256
    assert load_config(study, {"image_size": "128"}).image_size == 128


def test_every_field_has_help_and_a_flag_and_run_offers_them_all():
    run = _command("run")
    options = {p.name: p for p in run.params}
    for name, f in study_fields().items():
        assert f.metadata["help"] and f.metadata["flag"].startswith("--"), name
        assert name in options, name
        assert options[name].opts[0] == flag_of(name)
        assert options[name].default is None  # not given: the file or the default applies
        assert options[name].show_default == default_text(name)
    assert default_text("severity") == "3" and default_text("seeds") == "0"
    assert default_text("models") == "patchcore"


def test_help_shows_each_default(monkeypatch):
    from typer.testing import CliRunner

    monkeypatch.setenv("COLUMNS", "300")
    out = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "300"}).output
    flat = re.sub(r"-\s+", "-", " ".join(out.split()))  # (click may break after a hyphen)
    for name in study_fields():
        assert flag_of(name) in flat, name
        shown = default_text(name)  # rich wraps a text default in parentheses, click not
        assert f"[default: ({shown})]" in flat or f"[default: {shown}]" in flat, name
    assert "128 for synthetic, 256 otherwise" in flat


def test_splits_shift_and_run_share_one_vocabulary():
    shared = {"dataset", "root", "categories", "seeds"}
    for name in ("splits", "shift", "run"):
        opts = {p.name: p.opts for p in _command(name).params}
        for option in shared:
            assert opts[option] == [flag_of(option)], (name, option)
    for name in ("shift", "run"):
        opts = {p.name: p.opts for p in _command(name).params}
        assert opts["suite"] == ["--suite"] and opts["severity"] == ["--severity"]


def test_splits_with_the_shared_options(tiny_synthetic, tmp_path, capsys):
    out = tmp_path / "splits.csv"
    argv = ["splits", "--dataset", "mvtec", "--root", str(tiny_synthetic)]
    code, stdout, err = _main(
        [*argv, "--categories", "brick", "--seeds", "0,1", "--out", str(out)], capsys
    )
    assert code == 0, err
    assert "seed 0" in stdout and "seed 1" in stdout
    table = pd.read_csv(out)
    assert set(table["seed"]) == {0, 1} and set(table["category"]) == {"brick"}
    code, _, err = _main([*argv, "--category", "brick"], capsys)  # the old spelling is gone
    assert code == 2 and "--categories" in err and len(err.splitlines()) == 1


# -- errors name the flag, on one line, exit 2 ------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--severity", "abc"], "error: --severity 'abc': not an integer"),
        (["--severity", "1,,3"], "error: --severity '1,,3': empty item"),
        (["--severity", "2,7"], "error: --severity 7: levels run from 0"),
        (["--seeds", "0,,1"], "error: --seeds '0,,1': empty item"),
        (["--seeds", "x"], "error: --seeds 'x': not an integer"),
        (["--categories", "a,,b"], "error: --categories 'a,,b': empty item"),
        (
            ["--models", "padim"],
            "error: --models: unknown model 'padim'; did you mean 'anomalib-padim'?",
        ),
        (["--protocol", "sideways"], "error: --protocol sideways: unknown"),
        (["--image-size", "16"], "error: --image-size 16: too small"),
        (["--image-size", "abc"], "error: Invalid value for '--image-size'"),
        (["--crop", "300"], "error: --crop 300: larger than the image (128 px)"),
        (
            ["--model-option", "nodot=1"],
            "error: --model-option 'nodot=1': expected MODEL.KEY=VALUE",
        ),
        (["--seed", "1"], "error: No such option: --seed"),
        (["--suite", "nosuite"], "error: --suite: unknown suite 'nosuite'"),
    ],
)
def test_a_bad_option_is_one_line_naming_its_flag(args, expected, capsys, tmp_path):
    code, out, err = _main(["run", *args, "--out", str(tmp_path / "o"), "--dry-run"], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(expected), err
    assert not (tmp_path / "o").exists()


def test_dry_run_through_the_cli(tiny_synthetic, tmp_path, capsys):
    argv = ["run", "--dataset", "mvtec", "--root", str(tiny_synthetic), "--categories", "brick"]
    argv += ["--weights", "random", "--image-size", "64", "--crop", "48", "--seeds", "0,1"]
    code, out, err = _main([*argv, "--out", str(tmp_path / "o"), "--dry-run"], capsys)
    assert code == 0, err
    assert out.startswith("2 fits: 2 seed(s)") and not (tmp_path / "o").exists()


def test_library_errors_name_the_parameter_not_the_flag():
    with pytest.raises(ShiftbenchError, match=r"^severity 7: levels") as exc:
        load_config(None, {"severity": "7"})
    assert exc.value.param == "severity"
    assert exc.value.message_for(flag_of).startswith("--severity 7: levels")
    with pytest.raises(ShiftbenchError, match=r"^crop 300:"):
        load_config(None, {"crop": 300})
    with pytest.raises(ShiftbenchError, match=r"^seeds: give at least one seed"):
        load_config(None, {"seeds": ""})
    # the registry's message gets its parameter attached on the way out
    with pytest.raises(ShiftbenchError) as exc, about("models"):
        from shiftbench.models.registry import MODELS

        MODELS.entry("padim")
    assert exc.value.param == "models" and str(exc.value).startswith("models: unknown model")
    assert "anomalib-padim" in str(exc.value)
    again = pickle.loads(pickle.dumps(ShiftbenchError("crop 9: too small", param="crop")))
    assert str(again) == "crop 9: too small" and again.param == "crop"
    assert ShiftbenchError("plain").message_for(flag_of) == "plain"


def test_config_differences_name_each_changed_option():
    old = StudyConfig().to_dict()
    new = load_config(None, {"seeds": "0,1", "severity": "1,3", "workers": 4})
    assert config_differences(old, new) == ["seeds: [0] -> [0, 1]", "severity: 3 -> [1, 3]"]
    assert config_differences(old, load_config()) == []
    old.pop("crop")  # a manifest written before crop existed
    assert config_differences(old, load_config()) == []
    assert config_differences(old, load_config(None, {"crop": 100})) == ["crop: None -> 100"]


# -- --version, cache reports ----------------------------------------------------------


def test_version(capsys):
    from shiftbench import __version__

    code, out, _ = _main(["--version"], capsys)
    assert code == 0 and out.strip() == f"shiftbench {__version__}"


def test_cache_info_and_clear_report_sizes(tmp_path, monkeypatch, capsys):
    from shiftbench.data import cache, write_image

    monkeypatch.setenv("SHIFTBENCH_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    paths = []
    for i in range(4):
        paths.append(tmp_path / f"{i}.png")
        write_image(paths[-1], np.full((32, 32, 3), rng.integers(0, 256), np.uint8))
    cache.read_batch(paths, 32)
    code, out, _ = _main(["cache", "info"], capsys)
    assert code == 0 and "1 entries" in out and "uncompressed" in out and "ratio" in out
    info = cache.cache_info()
    assert info["raw_mb"] > info["size_mb"] and info["ratio"] > 5  # flat images compress well
    code, out, _ = _main(["cache", "clear"], capsys)
    assert code == 0 and "removed 1 entries" in out and "freed" in out and "MiB" in out
    assert cache.cache_info()["entries"] == 0


# -- progress ----------------------------------------------------------------------------


class _Stream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def test_progress_is_plain_lines_when_not_a_terminal():
    from shiftbench._progress import LineProgress, bar

    stream = _Stream(tty=False)
    with bar(100, "fits", "fit", file=stream) as b:
        assert isinstance(b, LineProgress)
        for _ in range(100):
            b.update(1)
        b.set_postfix_str("done")
    lines = stream.getvalue().splitlines()
    assert 9 <= len(lines) <= 11, lines  # about every 10%, plus the last
    assert lines[0].startswith("fits: 10/100 fit (10%)") and lines[-1].startswith("fits: 100/100")
    assert lines[-1].endswith(", done")
    assert "\r" not in stream.getvalue() and "\x1b" not in stream.getvalue()
    quiet = _Stream(tty=False)
    with bar(10, "x", file=quiet, disable=True) as b:
        b.update(10)
    assert quiet.getvalue() == "" and b.n == 10


def test_progress_prints_every_30_seconds_when_slow():
    from shiftbench._progress import LineProgress

    now = [0.0]
    stream = _Stream(tty=False)
    b = LineProgress(1000, "shift", "img", file=stream, clock=lambda: now[0])
    for _ in range(5):
        now[0] += 31
        b.update(1)
    b.close()
    assert len(stream.getvalue().splitlines()) == 5  # one per slow step; the last not repeated


def test_progress_is_a_tqdm_bar_on_a_terminal():
    from tqdm import tqdm

    from shiftbench._progress import bar

    with bar(3, "fits", "fit", file=_Stream(tty=True)) as b:
        b.update(3)
        assert isinstance(b, tqdm)
