"""The pictures of the qualitative grids: images, the shifted twins the run scored, masks
and anomaly maps of a few test images of one fit.

The twins are never drawn anew: their per-image parameters, stored by the runner in
``shift_params.parquet``, are replayed with the suite (``Suite.apply_params``), and the
suite loaded now must hash as the manifest recorded, so a moved suite file or an edited
plugin cannot silently show other twins than the ones scored.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from shiftbench.analysis.stats.replay import replay_suite, replay_twin
from shiftbench.results import Run, schema

__all__ = ["colour_scale", "qualitative_rows", "replay_suite", "replay_twin", "select_samples"]


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


#: at most this many defect types get a row each (alphabetically); then the extremes
MAX_DEFECT_ROWS = 5


def select_samples(
    rows: pd.DataFrame, max_defect_rows: int = MAX_DEFECT_ROWS
) -> list[tuple[str, str]]:
    """Which test images a qualitative grid shows, by rule (not the first files):

    1. per defect type (alphabetically, at most ``max_defect_rows``): its highest-scored
       image -- what the model finds best;
    2. the lowest-scored anomalous image -- the hardest miss;
    3. the highest-scored normal image -- the worst false alarm;
    4. the lowest-scored normal image -- the most normal.

    ``rows``: ``sample_id, label, defect_type, score`` of the protocol shown. Returns
    ``(sample_id, reason)`` in that order, each image once; ties go to the smaller id."""
    r = rows.dropna(subset=["score"]).sort_values("sample_id")
    anom, norm = r[r["label"] == 1], r[r["label"] == 0]
    picks: list[tuple[str, str]] = []

    def add(frame: pd.DataFrame, highest: bool, reason: str) -> None:
        if frame.empty:
            return
        frame = frame.sort_values(["score", "sample_id"], ascending=[not highest, True])
        for sid in frame["sample_id"]:
            if sid not in {p for p, _ in picks}:
                picks.append((sid, reason))
                return

    for defect in sorted(anom["defect_type"].astype(str).unique())[:max_defect_rows]:
        add(anom[anom["defect_type"].astype(str) == defect], True, f"{defect}: highest")
    add(anom, False, "anomalous: lowest")
    add(norm, True, "normal: highest")
    add(norm, False, "normal: lowest")
    return picks


def colour_scale(maps: np.ndarray, pixel_threshold: float) -> tuple[float, float]:
    """The colour scale of one fit's anomaly maps, fixed by the validation-calibrated pixel
    threshold: from ``lo`` (0 for non-negative maps, else their minimum) to ``lo + 2 (t - lo)``,
    so the threshold sits at mid-scale in every row (clean and shifted alike). Without a
    threshold, ``lo`` to the 99.5th percentile of the maps."""
    m = np.asarray(maps, dtype=np.float64)
    lo = 0.0 if np.nanmin(m) >= 0 else float(np.nanmin(m))
    if np.isfinite(pixel_threshold) and pixel_threshold > lo:
        return lo, lo + 2 * (float(pixel_threshold) - lo)
    return lo, float(np.nanpercentile(m, 99.5))


def qualitative_rows(
    run: Run, scores: pd.DataFrame, level: float | None, category: str, model: str, seed: int
) -> tuple[list[dict], str, dict] | None:
    """Rows for the qualitative grid of one (category, model, seed), or None; ``scores``
    are the tables' scores at severity ``level``. Images are chosen by
    :func:`select_samples`; shifted images are the run's twins, replayed
    (:func:`replay_twin`); a suite that changed since is a ShiftbenchError. Returns
    ``(rows, protocol, scale)`` with ``scale`` = ``{"vmin", "vmax", "threshold"}``
    (:func:`colour_scale`)."""
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
    ]
    sp = run.splits[(run.splits["seed"] == seed) & (run.splits["category"] == category)]
    sp = sp.set_index("sample_id")
    pos = {sid: i for i, sid in enumerate(ids)}
    cand = rows_sc[rows_sc["sample_id"].isin(pos) & rows_sc["sample_id"].isin(sp.index)]
    if "defect_type" not in cand.columns:
        cand = cand.assign(defect_type=np.where(cand["label"] == 1, "anomalous", "good"))
    pthr = (
        float(rows_sc["pixel_threshold"].iloc[0])
        if "pixel_threshold" in rows_sc and len(rows_sc)
        else float("nan")
    )
    vmin, vmax = colour_scale(maps, pthr)
    by_id = cand.set_index("sample_id")
    rows = []
    for sid, reason in select_samples(cand[["sample_id", "label", "defect_type", "score"]]):
        heat = maps[pos[sid]]
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
        pred = heat >= pthr if np.isfinite(pthr) else None
        score = float(by_id.loc[sid, "score"])
        rows.append(
            {
                "image": image,
                "shifted": shifted,
                "mask": mask,
                "heatmap": heat,
                "pred": pred,
                "sample_id": sid,
                "reason": reason,
                "title": f"{reason.replace(': ', chr(10))}\nscore {score:.3g}",
            }
        )
    scale = {"vmin": vmin, "vmax": vmax, "threshold": pthr if np.isfinite(pthr) else None}
    return (rows, protocol, scale) if rows else None
