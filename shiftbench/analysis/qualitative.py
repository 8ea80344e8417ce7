"""The pictures of the qualitative grids: images, the shifted twins the run scored, masks
and anomaly maps of a few test images of one fit.

The twins are never drawn anew: their per-image parameters, stored by the runner in
``shift_params.parquet``, are replayed with the suite (``Suite.apply_params``), and the
suite loaded now must hash as the manifest recorded, so a moved suite file or an edited
plugin cannot silently show other twins than the ones scored.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd

from shiftbench.errors import ShiftbenchError
from shiftbench.results import Run, schema

__all__ = ["N_ROWS", "qualitative_rows", "replay_suite", "replay_twin"]

N_ROWS = 4  # images per grid


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


def _maps_choice(run: Run, cat: str, model: str, seed: int, level: float | None):
    """(maps name, protocol) for the grid of one fit: the shifted twins without
    adaptation if saved, else the clean maps, else the first maps saved; or None."""
    names = run.map_names(cat, model, seed)
    shifted = "shift-noadapt"
    if shifted not in names and level is not None:
        shifted = schema.map_name("shift-noadapt", level)  # a sweep: one file per level
    has_suite = bool(run.manifest.get("config", {}).get("suite") or run.manifest.get("suite"))
    if shifted in names and has_suite:
        return shifted, "shift-noadapt"
    if "clean" in names:
        return "clean", "clean"
    return (names[0], re.sub(r"-sev\d+$", "", names[0])) if names else None


def qualitative_rows(
    run: Run, scores: pd.DataFrame, level: float | None, category: str, model: str, seed: int
) -> tuple[list[dict], str] | None:
    """Rows for the qualitative grid of one (category, model, seed), or None; ``scores``
    are the tables' scores at severity ``level``. Shifted images are the run's twins,
    replayed (:func:`replay_twin`); a suite that changed since is a ShiftbenchError."""
    from shiftbench.data.io import read_image, read_mask

    choice = _maps_choice(run, category, model, seed, level)
    if run.splits is None or choice is None:
        return None
    name, protocol = choice
    suite = replay_suite(run, level) if protocol != "clean" else None
    ids, maps = run.maps(category, model, seed, name)
    sc = scores
    rows_sc = sc[
        (sc["category"] == category)
        & (sc["model"] == model)
        & (sc["seed"] == seed)
        & (sc["protocol"] == protocol)
        & (sc["split"] == "test")
    ].set_index("sample_id")
    sp = run.splits[run.splits["seed"] == seed].set_index("sample_id")
    # Anomalous images first (the interesting ones), then normals; deterministic order.
    order = sorted(
        range(len(ids)),
        key=lambda i: (-int(sp["label"].get(ids[i], 0)) if ids[i] in sp.index else 1, ids[i]),
    )
    rows = []
    for i in order[:N_ROWS]:
        sid, heat = ids[i], maps[i]
        if sid not in sp.index:
            continue
        size = heat.shape[0]
        image = read_image(sp.loc[sid, "image_path"], size=size)
        mp = sp.loc[sid, "mask_path"]
        mask = read_mask(None if pd.isna(mp) else mp, size=size)
        shifted = None
        if suite is not None:
            shifted, mask = replay_twin(
                run,
                suite,
                category=category,
                seed=int(seed),
                sample_id=sid,
                severity=level,
                image=image,
                mask=mask,
            )
        pthr = (
            rows_sc["pixel_threshold"].get(sid, np.nan) if "pixel_threshold" in rows_sc else np.nan
        )
        pred = heat >= pthr if np.isfinite(pthr) else None
        score = rows_sc["score"].get(sid, np.nan)
        rows.append(
            {
                "image": image,
                "shifted": shifted,
                "mask": mask,
                "heatmap": heat,
                "pred": pred,
                "title": f"{sid.split('/')[-2] if '/' in sid else sid}\nscore {score:.3g}",
            }
        )
    return (rows, protocol) if rows else None
