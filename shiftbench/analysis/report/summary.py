"""The console summary a study prints when it ends: category x model, one column per
protocol (mean over seeds), and the drops between protocols; turned to one row per shift
(columns: clean and each severity) when that wide table would not fit the terminal."""

from __future__ import annotations

import shutil

import pandas as pd

from shiftbench.analysis.stats.recovery import without_adaptation
from shiftbench.results import schema

__all__ = ["summary_adaptation", "summary_long", "summary_table", "summary_text"]


def summary_adaptation(metrics: pd.DataFrame, metric: str = "image_auroc") -> pd.DataFrame | None:
    """A study with adaptation strategies: model x (strategy, k) rows, one column per shift
    (and level), the metric macro-averaged over categories and seeds; ``none`` is
    ``shift-noadapt``. None without strategies."""
    col = schema.ADAPTATION_COLUMN
    if col not in metrics.columns:
        return None
    sub = metrics[(metrics["metric"] == metric) & (metrics["protocol"] != "clean")]
    sub = sub[sub["category"] != schema.MEAN_CATEGORY].copy()
    if sub.empty:
        return None
    level = sub["severity"].map(lambda v: "" if pd.isna(v) else f"{v:g}")
    if schema.SHIFT_COLUMN in sub.columns:  # cc_noise@3
        shift = sub[schema.SHIFT_COLUMN].fillna("shift").astype(str)
        sub["where"] = shift + level.map(lambda v: f"@{v}" if v else "")
    else:  # sev 3
        sub["where"] = level.map(lambda v: f"sev {v}" if v else "shift")
    sub["strategy"] = [
        a if not k else f"{a} k={k}" for a, k in zip(sub[col], sub[schema.K_COLUMN], strict=True)
    ]
    sub["_order"] = sub[col].map(lambda a: 0 if a == "none" else 1 if a == "refit" else 2)
    wide = sub.pivot_table(
        index=["model", "_order", col, schema.K_COLUMN, "strategy"],
        columns="where",
        values="value",
        aggfunc="mean",
    )
    wide = wide.droplevel(["_order", col, schema.K_COLUMN])
    wide.columns.name = None
    return wide


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
        sub["protocol"] = sub["protocol"].where(
            shift.isna(), sub["protocol"] + "@" + shift.astype(str)
        )
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


def summary_long(metrics: pd.DataFrame, metric: str = "image_auroc") -> pd.DataFrame:
    """The same numbers with one row per (category, model, shifted protocol, shift) and
    the columns ``clean`` (the clean value, repeated) and ``sev N`` per level, plus
    ``drop`` (shifted - clean) when there is one level: a table as narrow as the number of
    levels, however many shifts. Index levels that would hold one value (one shifted
    protocol, no shift column) are left out."""
    sub = metrics[metrics["metric"] == metric]
    clean = sub[sub["protocol"] == "clean"].groupby(["category", "model"])["value"].mean()
    sh = sub[sub["protocol"] != "clean"].copy()
    if sh.empty:
        return clean.to_frame("clean")
    has_shift = schema.SHIFT_COLUMN in sh.columns and sh[schema.SHIFT_COLUMN].notna().any()
    sh["shift"] = sh[schema.SHIFT_COLUMN].fillna("") if has_shift else ""
    sh["level"] = sh["severity"].fillna(0).map(lambda v: f"sev {v:g}")
    keys = ["category", "model", "protocol", "shift"]
    wide = sh.pivot_table(index=keys, columns="level", values="value", aggfunc="mean")
    levels = sorted(wide.columns, key=lambda c: float(c.split()[1]))
    wide = wide[levels]
    wide.insert(0, "clean", [clean.get((c, m)) for c, m, _, _ in wide.index])
    if len(levels) == 1:
        wide["drop"] = wide[levels[0]] - wide["clean"]
    wide.columns.name = None
    order = {p: i for i, p in enumerate(schema.PROTOCOLS)}
    shifts = {s: i for i, s in enumerate(dict.fromkeys(sh["shift"]))}
    rows = sorted(
        wide.index,
        key=lambda k: (k[0] == schema.MEAN_CATEGORY, k[0], k[1], order.get(k[2], 9),
                       shifts[k[3]]),
    )  # fmt: skip
    wide = wide.loc[rows]
    drop = [
        k for k, n in (("protocol", sh["protocol"].nunique()), ("shift", len(shifts))) if n == 1
    ]
    return wide.droplevel(drop) if drop else wide


def _widest(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


def summary_text(metrics: pd.DataFrame, n_seeds: int, width: int | None = None) -> str:
    """The tables ``shiftbench run`` prints: image AUROC and, with masks, pixel PRO, within
    ``width`` characters (default: the terminal's width). The wide table (a column per
    protocol, shift and level) when it fits; else one row per shift and a column per
    level; and if even that is too wide, its columns wrapped in blocks."""
    width = width or shutil.get_terminal_size().columns
    over = "mean over seeds" if n_seeds > 1 else "one seed"
    parts = []
    adapted = summary_adaptation(metrics)
    metrics = without_adaptation(metrics)  # shift-adapt = refit; strategies below
    with pd.option_context("display.float_format", "{:.3f}".format):
        for metric in ("image_auroc", "pixel_aupro"):
            if metric not in set(metrics["metric"]):
                continue
            text = summary_table(metrics, metric).to_string()
            if _widest(text) > width:
                long = summary_long(metrics, metric)
                text = long.to_string()
                if _widest(text) > width:
                    text = long.to_string(line_width=width)
            parts.append(f"{metric} ({over})\n{text}")
        if adapted is not None:
            text = adapted.to_string(line_width=width)
            parts.append(
                "image_auroc under shift per adaptation strategy (mean over categories"
                f"{' and seeds' if n_seeds > 1 else ''}; none = shift-noadapt, "
                "refit = shift-adapt; shiftbench report adds gap closed)\n" + text
            )
    return "\n\n".join(parts)
