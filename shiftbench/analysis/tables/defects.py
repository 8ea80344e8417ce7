"""Tables per defect type: image recall at the validation threshold from the scores
(:func:`defect_table`), and pixel PRO from the anomaly maps a run saved (``--save-maps``,
:func:`defect_pro_table`).

Pixel PRO: per (category, model, seed, protocol) at the tables' severity, the normalised
AUPRO up to FPR 0.3 (:func:`shiftbench.metrics.aupro`, the official MVTec AD definition) of each defect
type is computed on the maps of that type's anomalous test images *plus every normal test
image* (the false-positive rate is a property of the normal pixels, the same for every
type). The masks of shifted images are the shifted twins' masks, replayed from
``shift_params.parquet`` (geometric shifts move them), never drawn anew.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from shiftbench.errors import ShiftbenchError
from shiftbench.results import Run, schema

__all__ = ["NORMAL_DEFECT", "defect_pro_table", "defect_table"]

#: the defect type of normal images in ``scores.parquet``
NORMAL_DEFECT = "good"


def defect_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Per (category, model, protocol, defect type): the share of test images called
    anomalous at the protocol's validation threshold (``decision``), mean over seeds.

    For a defect type this is the image recall (TPR); for the normal images
    (``defect_type == "good"`` or label 0) it is the false-positive rate. ``n`` is the number
    of test images of the type in one seed (the mean over seeds). Columns: ``category,
    model, protocol, defect_type, rate, rate_sd, n``."""
    test = scores[scores["split"] == "test"].copy()
    if "defect_type" not in test.columns:
        test["defect_type"] = np.where(test["label"] == 1, "anomalous", NORMAL_DEFECT)
    test["defect_type"] = test["defect_type"].fillna("").astype(str)
    test.loc[test["label"] == 0, "defect_type"] = NORMAL_DEFECT
    test.loc[(test["label"] == 1) & (test["defect_type"] == ""), "defect_type"] = "anomalous"
    keys = ["category", "model", "protocol", "defect_type"]
    per_seed = (
        test.groupby([*keys, "seed"], sort=True)
        .agg(rate=("decision", "mean"), n=("decision", "size"))
        .reset_index()
    )
    out = (
        per_seed.groupby(keys, sort=True)
        .agg(rate=("rate", "mean"), rate_sd=("rate", "std"), n=("n", "mean"))
        .reset_index()
    )
    order = {p: i for i, p in enumerate(schema.PROTOCOLS)}
    out["_p"] = out["protocol"].map(order).fillna(len(order))
    out["_good"] = out["defect_type"] == NORMAL_DEFECT
    out = out.sort_values(["category", "model", "_p", "_good", "defect_type"])
    return out.drop(columns=["_p", "_good"]).reset_index(drop=True)


def _masks(run: Run, cat: str, seed: int, ids: list[str], size: int, shifted: bool,
           level: float | None, cache: dict) -> np.ndarray:  # fmt: skip
    from shiftbench.analysis.stats.replay import replay_suite, replay_twin
    from shiftbench.data.io import read_image, read_mask

    sp = run.splits[(run.splits["seed"] == seed) & (run.splits["category"] == cat)]
    sp = sp.set_index("sample_id")
    out = []
    suite = None
    for sid in ids:
        key = (cat, seed, sid, shifted, level, size)
        if key not in cache:
            mp = sp.loc[sid, "mask_path"]
            mask = read_mask(None if pd.isna(mp) else mp, size=size)
            if shifted and int(sp.loc[sid, "label"]) == 1:
                suite = suite or replay_suite(run, level)
                image = read_image(sp.loc[sid, "image_path"], size=size)
                _, mask = replay_twin(run, suite, category=cat, seed=int(seed), sample_id=sid,
                                      severity=level, image=image, mask=mask)  # fmt: skip
            cache[key] = mask
        out.append(cache[key])
    return np.stack(out)


def defect_pro_table(run: Run, level: float | None) -> tuple[pd.DataFrame, list[str]]:
    """``category, model, protocol, defect_type, pro, pro_sd, n, seeds`` (mean and SD over
    the seeds with maps, listed in ``seeds``)
    for every fit with saved maps, and the reasons for what was skipped."""
    from shiftbench.metrics import aupro

    if run.splits is None:
        return pd.DataFrame(), ["per-defect PRO: the run has no splits.csv"]
    sweep = len(set(run.scores.loc[run.scores["protocol"] != "clean", "severity"].dropna())) > 1
    test = run.scores[run.scores["split"] == "test"]
    rows, skipped, cache = [], [], {}
    for (cat, model, seed), _ in test.groupby(["category", "model", "seed"], sort=True):
        names = run.map_names(cat, model, seed)
        if not names:
            continue
        sp = run.splits[(run.splits["seed"] == seed) & (run.splits["category"] == cat)]
        sp = sp.set_index("sample_id")
        for protocol in schema.PROTOCOLS:
            name = (
                protocol if protocol == "clean" or not sweep else schema.map_name(protocol, level)
            )
            if name not in names:
                continue
            ids, maps = run.maps(cat, model, seed, name)
            keep = [i for i, sid in enumerate(ids) if sid in sp.index]
            ids, maps = [ids[i] for i in keep], maps[keep]
            try:
                masks = _masks(run, cat, seed, ids, maps.shape[1], protocol != "clean", level,
                               cache)  # fmt: skip
            except ShiftbenchError as exc:
                skipped.append(f"per-defect PRO {cat} / {model} ({protocol}): {exc}")
                continue
            labels = sp.loc[ids, "label"].to_numpy()
            defects = sp.loc[ids, "defect_type"].astype(str).to_numpy()
            normal = labels == 0
            for d in sorted(set(defects[labels == 1])):
                sel = normal | ((labels == 1) & (defects == d))
                try:
                    value = aupro(maps[sel], masks[sel])
                except Exception:  # noqa: BLE001 - no region or no normal pixel: undefined
                    value = float("nan")
                rows.append({"category": cat, "model": model, "seed": seed, "protocol": protocol,
                             "defect_type": d, "pro": value,
                             "n": int(((labels == 1) & (defects == d)).sum())})  # fmt: skip
    if not rows:
        return pd.DataFrame(), skipped
    df = pd.DataFrame(rows)
    out = (
        df.groupby(["category", "model", "protocol", "defect_type"], sort=True)
        .agg(
            pro=("pro", "mean"),
            pro_sd=("pro", "std"),
            n=("n", "mean"),
            seeds=("seed", lambda x: ",".join(str(v) for v in sorted(set(x)))),
        )
        .reset_index()
    )
    return out, skipped
