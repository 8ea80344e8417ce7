"""A run's shifted twins, replayed: never drawn anew, their per-image parameters (stored by
the runner in ``shift_params.parquet``) are applied again with the suite, and the suite
loaded now must hash as the manifest recorded, so a moved suite file or an edited plugin
cannot silently give other twins than the ones scored. Per-defect tables (masks of the
twins) and qualitative figures (their pixels) both read twins through here.
"""

from __future__ import annotations

import json

import numpy as np

from shiftbench.errors import ShiftbenchError
from shiftbench.results import Run, schema

__all__ = ["replay_suite", "replay_twin"]


def replay_suite(run: Run, severity: float | None):
    """The suite that shifted the run's images at ``severity``, loaded now and checked
    against the hash the run recorded: a moved suite file or an edited definition would
    draw other twins than the ones scored, so a mismatch is a ShiftbenchError."""
    from shiftbench.transforms import load_suite

    m = run.manifest
    recorded = m.get("suite") or {}
    source = m.get("config", {}).get("suite") or recorded.get("name")
    manifest = run.path / schema.MANIFEST
    if not source:
        raise ShiftbenchError(f"{manifest}: names no shift suite; the run shifted no images")
    level = None if severity is None else int(severity)
    want = recorded.get("hashes", {}).get(str(level), recorded.get("hash"))
    try:
        suite = load_suite(source, level)
    except Exception as exc:  # noqa: BLE001 - any failure means the twins cannot be replayed
        raise ShiftbenchError(
            f"{manifest}: the run's suite {source!r} (severity {level}) cannot be loaded now "
            f"({exc}); restore the suite file and plugins the run used"
        ) from None
    if want is not None and suite.hash != want:
        raise ShiftbenchError(
            f"{manifest}: suite {source!r} (severity {level}) hashes to {suite.hash} now but "
            f"the run shifted its images with {want}: its file or a plugin changed, so the "
            "twins would differ from those scored; restore the suite the run used or re-run "
            "`shiftbench run`"
        )
    return suite


def replay_twin(
    run: Run,
    suite,
    *,
    category: str,
    seed: int,
    sample_id: str,
    severity: float | None,
    image: np.ndarray,
    mask: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The shifted twin of one clean ``image`` (and ``mask``) that the run scored, made
    by replaying its stored parameters (``shift_params.parquet``) with ``suite``
    (:func:`replay_suite`)."""
    sp = run.shift_params
    file = run.path / schema.SHIFT_PARAMS
    if sp is None:
        raise ShiftbenchError(f"{file}: missing; the run recorded no shift parameters")
    hit = sp[(sp["category"] == category) & (sp["seed"] == seed) & (sp["sample_id"] == sample_id)]
    if severity is not None:
        hit = hit[hit["severity"] == severity]
    if hit.empty:
        raise ShiftbenchError(
            f"{file}: no parameters for {sample_id} (seed {seed}, severity {severity}); "
            "re-run `shiftbench run`"
        )
    row = hit.iloc[-1]
    if row["suite_hash"] != suite.hash:
        raise ShiftbenchError(
            f"{file}: {sample_id} was shifted with suite hash {row['suite_hash']}, not "
            f"{suite.hash}; restore the suite the run used or re-run `shiftbench run`"
        )
    return suite.apply_params(image, mask, json.loads(row["params"]))
