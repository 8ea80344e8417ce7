"""What a run's ``manifest.json`` records besides its results: the exact command, the
config and its hash, library versions, the git commit, split and suite hashes, and the
state of the run (keys: :data:`shiftbench.results.schema.MANIFEST_KEYS`)."""

from __future__ import annotations

import functools
import importlib.metadata as md
import inspect
import platform
import shlex
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from shiftbench.data import split_hash
from shiftbench.data.cache import source_digest
from shiftbench.models.device import device_info, resolve_device
from shiftbench.results import schema

#: packages whose versions a run records (shifted pixels depend on numpy's generators and
#: OpenCV's warps, scores on torch and the model libraries)
_PACKAGES = (
    "shiftbench",
    "numpy",
    "torch",
    "torchvision",
    "timm",
    "anomalib",
    "albumentations",
    "scikit-learn",
    "scipy",
    "statsmodels",
    "pandas",
    "opencv-python-headless",
    "faiss-cpu",
)


@functools.lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """Python's and every installed package of :data:`_PACKAGES`' version."""
    out = {"python": platform.python_version()}
    for pkg in _PACKAGES:
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def shift_code(suite) -> list[str]:
    """What makes a suite's pixels besides its definition: the versions of the libraries
    whose numerics it uses and the source of the shift engine and of every member's class
    (a plugin edited without a version bump still gets fresh twins)."""
    import shiftbench.transforms as transforms

    files = [str(p) for p in Path(transforms.__file__).parent.glob("*.py")]
    files += [inspect.getfile(type(m.perturbation)) for m in suite.members]
    libs = [versions().get(k, "") for k in ("numpy", "opencv-python-headless", "albumentations")]
    return [*libs, source_digest(tuple(sorted(files)))]


def git_commit() -> str | None:
    """The commit of the shiftbench checkout, when it runs from one."""
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def study_fields(
    config, protocols, command: list[str], splits: pd.DataFrame, suites, units, device: str
) -> dict:
    """The manifest keys that describe the study (written at every start or resume);
    ``device`` is the one the runner resolved."""
    suite = None
    if suites:
        shifts = [k for _, k in suites if k is not None]
        first = next(iter(suites.values()))
        suite = {
            "name": first.name if not shifts else config.suite,
            "hash": first.hash,
            "severity": config.severity,
            "shift_at": config.shift_resolution,
            "hashes": {
                str(s) if k is None else f"{s}-{k}": st.hash for (s, k), st in suites.items()
            },
        }
        if shifts:  # a per-shift study: each member of the suite alone
            suite["each"] = True
            suite["shifts"] = list(dict.fromkeys(shifts))
    return {
        "config": config.to_dict(),
        "config_hash": config.hash,
        "device": device_info(resolve_device(device)),
        "command": shlex.join(command),
        "seeds": config.seeds,
        "protocols": [p.__dict__ for p in protocols],
        "versions": dict(versions()),
        "git_commit": git_commit(),
        "split_hashes": {str(s): split_hash(splits[splits["seed"] == s]) for s in config.seeds},
        "suite": suite,
        "units": [u.key for u in units],
        "status": schema.STATUS_RUNNING,
    }


#: manifest key: {model: {option: value}}, the options of :func:`pinned_model_options`
PINNED_OPTIONS = "model_options_resolved"


def pinned_model_options(config, build, manifest: dict | None) -> dict[str, dict]:
    """Per model of the study, the options whose library defaults have changed (the
    model class's ``legacy_defaults``) as every fit of this run uses them.

    A new run (``manifest`` None) takes them from a model ``build(name)`` makes here, with
    ``auto`` choices resolved (``resolved_params()``, where the model has it), so all its
    fits, on any worker, run the same. A resumed run takes them from its manifest; an
    option the manifest does not record (a run started before that default changed) gets
    the value the run started with: the study's own option if it set one, else the
    legacy default. So a resumed study keeps its numbers."""
    from shiftbench.models.registry import model_class

    recorded = (manifest or {}).get(PINNED_OPTIONS) or {}
    out = {}
    for name in config.models:
        legacy = getattr(model_class(name), "legacy_defaults", None) or {}
        if not legacy:
            continue
        if manifest is None:
            model = build(name)
            params = (getattr(model, "resolved_params", None) or model.get_params)()
            out[name] = {k: params[k] for k in legacy}
        else:
            given = {**legacy, **config.model_options.get(name, {})}
            out[name] = {k: recorded.get(name, {}).get(k, given[k]) for k in legacy}
    return out
