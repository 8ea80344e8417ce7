"""How the CLI ends when something goes wrong: an unexpected exception in one line (the
traceback with SHIFTBENCH_DEBUG=1), Ctrl-C in a run with what finished and how to resume,
did-you-mean for suite names and study-file keys."""

from __future__ import annotations

import pytest
from _cli import run_main as _main

from shiftbench.cli.main import main


def _broken_cache_info():
    raise RuntimeError("disk on fire\nsecond line of detail")


def test_an_unexpected_error_is_one_line_and_exits_non_zero(monkeypatch, capsys):
    import shiftbench.data.cache as cache

    monkeypatch.delenv("SHIFTBENCH_DEBUG", raising=False)
    monkeypatch.setattr(cache, "cache_info", _broken_cache_info)
    code, out, err = _main(["cache", "info"], capsys)
    assert code == 1
    assert err.strip().splitlines() == [
        "error: RuntimeError: disk on fire (unexpected; run with SHIFTBENCH_DEBUG=1 for the "
        "traceback)"
    ]
    assert "Traceback" not in err and "AttributeError" not in err


def test_shiftbench_debug_shows_the_traceback(monkeypatch, capsys):
    import shiftbench.data.cache as cache

    monkeypatch.setenv("SHIFTBENCH_DEBUG", "1")
    monkeypatch.setattr(cache, "cache_info", _broken_cache_info)
    with pytest.raises(RuntimeError, match="disk on fire"):
        main(["cache", "info"])


def test_usage_errors_and_help_use_public_typer_names(capsys):
    code, _, err = _main(["run", "--no-such-option"], capsys)
    assert code == 2 and err.startswith("error: No such option: --no-such-option")
    assert len(err.strip().splitlines()) == 1
    code, out, err = _main(["list"], capsys)  # a group without a command: its help
    assert code in (0, 2) and "perturbations" in out + err and "error" not in err
    import shiftbench.cli.main as cli_main

    assert "typer._click" not in open(cli_main.__file__).read()


# -- Ctrl-C in a run ---------------------------------------------------------------------


def _tiny_run(root) -> list[str]:
    """A two-fit study on the tiny synthetic data (random weights, 64 px, clean only)."""
    return [
        "run",
        "--dataset",
        "mvtec",
        "--root",
        str(root),
        "--categories",
        "brick,washer",
        "--weights",
        "random",
        "--image-size",
        "64",
        "--protocol",
        "clean",
        "--model-option",
        "patchcore.coreset_ratio=0.1",
        "--no-progress",
    ]


def test_ctrl_c_says_what_finished_and_how_to_resume(tiny_synthetic, tmp_path, monkeypatch, capsys):
    import shlex

    from shiftbench.protocols.runner import StudyRunner

    monkeypatch.chdir(tmp_path)  # the run goes to results/<name>
    original = StudyRunner._run_unit
    calls = []

    def interrupted_second_fit(self, run, unit, data):
        calls.append(unit.key)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, run, unit, data)

    with monkeypatch.context() as mp:
        mp.setattr(StudyRunner, "_run_unit", interrupted_second_fit)
        code, out, err = _main(_tiny_run(tiny_synthetic), capsys)
    assert code == 130
    lines = err.strip().splitlines()
    runs = list((tmp_path / "results").iterdir())
    assert len(runs) == 1
    path = runs[0].relative_to(tmp_path)
    assert lines[0] == f"interrupted: 1 of 2 fits finished and kept in {path}"
    assert lines[1].startswith("continue with: shiftbench run --dataset mvtec")
    resume = shlex.split(lines[1][len("continue with: ") :])
    assert resume[-3:] == ["--out", str(path), "--resume"]
    # the command it gives continues the run: only the missing fit runs
    code, out, err = _main(resume[1:], capsys)
    assert code == 0, err
    assert f"resuming {path}: 1 of 2 fits already done" in out
    assert "results: " in out and len(list((tmp_path / "results").iterdir())) == 1


# -- did you mean ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suite", "shown", "meant"),
    [("each:adshfit", "adshfit", "adshift"), ("mvtec-shfit", "mvtec-shfit", "mvtec-shift")],
)
def test_a_misspelt_suite_gets_a_suggestion(suite, shown, meant, tmp_path, capsys):
    code, _, err = _main(["run", "--suite", suite, "--dry-run", "--out", str(tmp_path)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith(f"error: --suite: unknown suite '{shown}'; did you mean '{meant}'")


def test_a_misspelt_study_file_key_gets_a_suggestion(tmp_path, capsys):
    study = tmp_path / "study.yaml"
    study.write_text("image_szie: 128\n")
    code, _, err = _main(["run", "--config", str(study), "--dry-run"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith(f"error: {study}: unknown option 'image_szie'; did you mean 'image_size'")
    study.write_text("seed: 1\n")
    code, _, err = _main(["run", "--config", str(study), "--dry-run"], capsys)
    assert "unknown option 'seed'; did you mean 'seeds'?" in err


def test_a_misspelt_override_gets_a_suggestion():
    from shiftbench.errors import ShiftbenchError
    from shiftbench.protocols.config import load_config

    with pytest.raises(ShiftbenchError, match="modles: unknown option; did you mean 'models'"):
        load_config(None, {"modles": "patchcore"})


def test_ctrl_c_before_the_run_folder_says_nothing_was_written(tmp_path, monkeypatch, capsys):
    from shiftbench.protocols.runner import StudyRunner

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(StudyRunner, "__init__", interrupted)
    code, _, err = _main(["run", "--out", str(tmp_path / "run")], capsys)
    assert code == 130
    assert err.strip() == "interrupted before the run folder was made; nothing was written"
    assert not (tmp_path / "run").exists()
