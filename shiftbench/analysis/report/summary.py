"""The console summary a study prints when it ends: category x model, one column per
protocol (mean over seeds), and the drops between protocols."""

from __future__ import annotations

import pandas as pd

from shiftbench.results import schema


def summary_table(metrics: pd.DataFrame, metric: str = "image_auroc") -> pd.DataFrame:
    """Category x model rows, one column per protocol (mean over seeds), plus the deltas
    of :data:`schema.DELTAS`.

    In a severity sweep each shifted protocol gets one column per level
    (``shift-noadapt@5``) and no deltas; in a per-shift study one column per shift (and
    level): ``shift-noadapt@cc_contrast``."""
    sub = metrics[metrics["metric"] == metric].copy()
    levels = sorted(sub["severity"].dropna().unique()) if "severity" in sub else []
    protocols = [c for c in schema.PROTOCOLS if c in set(sub["protocol"])]
    if schema.SHIFT_COLUMN in sub.columns:
        shift = sub[schema.SHIFT_COLUMN]
        sub["protocol"] = sub["protocol"].where(shift.isna(), sub["protocol"] + "@" + shift.astype(str))
        shifts = list(dict.fromkeys(shift.dropna()))
        protocols = [
            c for p in protocols for c in ([p] if p == "clean" else [f"{p}@{s}" for s in shifts])
        ]
    if len(levels) > 1:
        sev = sub["severity"]
        sub["protocol"] = sub["protocol"].where(
            sev.isna(), sub["protocol"] + "@" + sev.fillna(0).astype(int).astype(str)
        )
        protocols = [
            c
            for p in protocols
            for c in ([p] if p == "clean" else [f"{p}@{int(s)}" for s in levels])
        ]
    wide = sub.pivot_table(
        index=["category", "model"], columns="protocol", values="value", aggfunc="mean"
    )
    cols = [c for c in protocols if c in wide.columns]
    wide = wide[cols]
    for column, minuend, subtrahend in schema.DELTAS:
        if {minuend, subtrahend} <= set(cols):
            wide[column] = wide[minuend] - wide[subtrahend]
    wide.columns.name = None
    rows = sorted(wide.index, key=lambda k: (k[0] == schema.MEAN_CATEGORY, k))
    return wide.loc[rows]


def summary_text(metrics: pd.DataFrame, n_seeds: int) -> str:
    """The tables ``shiftbench run`` prints: image AUROC and, with masks, pixel PRO."""
    over = "mean over seeds" if n_seeds > 1 else "one seed"
    parts = []
    with pd.option_context("display.width", 160, "display.float_format", "{:.3f}".format):
        for metric in ("image_auroc", "pixel_aupro"):
            if metric in set(metrics["metric"]):
                parts.append(f"{metric} ({over})\n{summary_table(metrics, metric).to_string()}")
    return "\n\n".join(parts)
