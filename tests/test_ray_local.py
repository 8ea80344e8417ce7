"""A local Ray instance started for ``--executor ray`` keeps token authentication on without
Ray's warning on every run; joining a cluster leaves RAY_AUTH_MODE alone."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

_START = (
    "import os\n"
    "from shiftbench.protocols.executors.ray import RayExecutor\n"
    "ex = RayExecutor(None, 1.0, 0.0, 1)\n"
    "print('MODE', os.environ.get('RAY_AUTH_MODE'), 'SLOTS', ex.slots)\n"
    "ex.close()\n"
)


@pytest.mark.slow  # starts a Ray instance: ~20-50 s
def test_a_local_ray_instance_starts_without_the_token_warning(tmp_path):
    pytest.importorskip("ray", reason="ray is not installed: pip install 'shiftbench[ray]'")
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_ADDRESS")}
    env["HOME"] = str(tmp_path)  # Ray keeps its token in ~/.ray/auth_token
    p = subprocess.run(
        [sys.executable, "-c", _START], capture_output=True, text=True, timeout=300, env=env
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert "MODE token SLOTS" in p.stdout
    assert "Token authentication" not in p.stderr, p.stderr
    assert (tmp_path / ".ray" / "auth_token").is_file()  # authentication is on


@pytest.mark.parametrize(
    ("local", "address", "user_mode", "expected"),
    [
        (True, None, None, "token"),  # our own instance: authentication on, no warning
        (False, None, None, None),  # joining --ray-address: the cluster decides
        (True, "10.0.0.1:6379", None, None),  # RAY_ADDRESS: ray.init joins that cluster
        (True, None, "disabled", "disabled"),  # the user's choice stays
    ],
)
def test_the_auth_mode_is_set_only_for_a_local_instance(
    local, address, user_mode, expected, monkeypatch
):
    from shiftbench.errors import ShiftbenchError
    from shiftbench.protocols.executors import ray as executor_ray

    for name, value in (("RAY_AUTH_MODE", user_mode), ("RAY_ADDRESS", address)):
        monkeypatch.setenv(name, "placeholder")  # recorded, so restored after the test
        if value is None:
            monkeypatch.delenv(name)
        else:
            monkeypatch.setenv(name, value)
    monkeypatch.delitem(sys.modules, "ray", raising=False)  # not imported yet
    real = __import__

    def no_ray(name, *args, **kwargs):  # stop at the import: no Ray is started
        if name == "ray":
            raise ImportError("stopped here")
        return real(name, *args, **kwargs)

    monkeypatch.setattr("builtins.__import__", no_ray)
    with pytest.raises(ShiftbenchError, match="Ray is not installed"):
        executor_ray.import_ray(local=local)
    assert os.environ.get("RAY_AUTH_MODE") == expected
