"""How much of the loss under shift an adaptation wins back: *gap closed*, with intervals.

A study with adaptation strategies (``--adapt``) evaluates, on the same shifted test images
(Test-shift) and per (category, seed): the clean fit without adaptation (``shift-noadapt``),
the full refit on Train-shift (``shift-adapt`` with ``refit``, the upper bound) and every
cheaper (strategy, k). Per model, shift and severity, with ``m`` the metric macro-averaged
over categories and seeds:

* ``gap closed = (m_adapted - m_noadapt) / (m_refit - m_noadapt)``: 0 = nothing won back,
  1 = as good as a refit, above 1 = better than the refit, below 0 = worse than no
  adaptation at all.
* Undefined (NaN) where the refit wins less than :data:`MIN_GAP` over no adaptation: the
  ratio of two small differences is noise (the refit is then no better than doing nothing,
  and the adapted AUROC itself is the number to read).

Intervals come from one stratified bootstrap per (category, seed): the test images are
resampled within each label, and the *same* resample serves ``shift-noadapt``, ``refit``
and every strategy (they score the same images), so the replicates of the macro metrics
and of the gap are paired. The percentile interval of gap closed uses the replicates
whose refit gap stays at least :data:`MIN_GAP` (their share is reported). The test against
``shift-noadapt`` is the paired bootstrap's two-sided p-value of ``m_adapted -
m_noadapt`` (:func:`~shiftbench.analysis.stats.bootstrap.bootstrap_p_value`), Holm-corrected
over the strategies and budgets of one model, shift and severity.
Formulas and edge cases: ``docs/robustness.md``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from shiftbench._hashing import stable_int
from shiftbench.analysis.stats.bootstrap import (
    auroc,
    bootstrap_p_value,
    percentile_interval,
    resample_weights,
    stratified_resample_indices,
)
from shiftbench.analysis.stats.tests import holm
from shiftbench.results import schema

__all__ = [
    "MIN_GAP",
    "adaptation_rows",
    "budget_frame",
    "has_adaptation",
    "recovery_table",
    "without_adaptation",
]

#: below this gain of the refit over no adaptation (in metric units: one AUROC point),
#: gap closed is undefined
MIN_GAP = 0.01
NOADAPT = "shift-noadapt"
REFIT = "refit"
_COND = ["model", "shift", "severity"]


def has_adaptation(table: pd.DataFrame | None) -> bool:
    """Whether a scores or metrics table has the adaptation axis (``adaptation``, ``k``)."""
    return table is not None and schema.ADAPTATION_COLUMN in table.columns


def without_adaptation(table: pd.DataFrame | None) -> pd.DataFrame | None:
    """A scores or metrics table without the adaptation axis, as the protocol tables and
    the console summary read it: ``clean``, ``shift-noadapt`` and the ``refit`` rows of
    ``shift-adapt`` (``refit`` is today's ``shift-adapt``). Tables without the axis (or
    None) are returned as they are."""
    col = schema.ADAPTATION_COLUMN
    if table is None or col not in table.columns:
        return table
    keep = (table["protocol"] != "shift-adapt") | (table[col] == "refit")
    return table[keep].drop(columns=[col, schema.K_COLUMN]).reset_index(drop=True)


def _keyed(table: pd.DataFrame, shift_name: str) -> pd.DataFrame:
    """Rows with a ``shift`` (the suite's name when the run has no shift column), a
    numeric severity (NaN -> 0) and the adaptation columns, per-category rows only."""
    t = table[table["category"] != schema.MEAN_CATEGORY].copy()
    if schema.SHIFT_COLUMN in t.columns:
        t["shift"] = (
            t[schema.SHIFT_COLUMN].astype(object).where(t[schema.SHIFT_COLUMN].notna(), shift_name)
        )
    else:
        t["shift"] = shift_name
    t["severity"] = t["severity"].astype(float).fillna(0.0)
    t["adaptation"] = t[schema.ADAPTATION_COLUMN].astype(str)
    t["k"] = t[schema.K_COLUMN].astype(int)
    return t


def adaptation_rows(table: pd.DataFrame, shift_name: str = "shift") -> pd.DataFrame:
    """The rows of the shifted test set, named by what produced them: ``adaptation`` is
    ``none`` for ``shift-noadapt`` and the strategy for ``shift-adapt`` (``clean`` rows
    are dropped). Works on scores (``split == "test"`` kept) and metrics alike."""
    t = _keyed(table, shift_name)
    t = t[t["protocol"].isin([NOADAPT, "shift-adapt"])]
    if "split" in t.columns:
        t = t[t["split"] == "test"]
    t.loc[t["protocol"] == NOADAPT, "adaptation"] = "none"
    t.loc[t["protocol"] == NOADAPT, "k"] = 0
    return t


def _replicates(group: pd.DataFrame, order: pd.Index, idx: np.ndarray) -> dict:
    """(estimate, replicates) of AUROC for every (adaptation, k) of one (category, seed)
    group, all on the same resample ``idx`` of its test images (in the order ``order``)."""
    out = {}
    for (strategy, k), rows in group.groupby(["adaptation", "k"], sort=False):
        rows = rows.drop_duplicates("sample_id").set_index("sample_id").reindex(order)
        labels = rows["label"].to_numpy()
        s = rows["score"].to_numpy(np.float64)
        if np.isnan(s).any():  # a strategy that did not score every image: not pairable
            continue
        w = resample_weights(idx, labels.size)
        out[strategy, int(k)] = (auroc(labels, s), auroc.weighted(labels, s, w))
    return out


def recovery_table(
    scores: pd.DataFrame,
    metrics: pd.DataFrame | None = None,
    *,
    shift_name: str = "shift",
    n_resamples: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per (model, shift, severity, adaptation, k) of a run with adaptation.

    Columns: ``auroc`` (macro image AUROC of the adapted fit) with ``auroc_low/high``,
    ``noadapt`` and ``refit`` (the same for ``shift-noadapt`` and the refit), ``delta``
    (``auroc - noadapt``) with its interval, ``gap_closed`` with ``gap_low/high`` and
    ``gap_share`` (the share of replicates in which the refit gap is defined), ``p`` and
    ``p_holm`` (paired bootstrap against ``shift-noadapt``), and from ``metrics`` when
    given: ``pro`` / ``pro_gap_closed`` (pixel PRO, point estimates) and the cost columns
    ``adapt_seconds`` and ``target_images`` (means over categories and seeds).
    """
    rows = adaptation_rows(scores, shift_name)
    if rows.empty:
        return pd.DataFrame()
    out = []
    for (model, shift, sev), cond in rows.groupby(_COND, sort=True):
        reps: dict[tuple[str, int], list] = {}
        ests: dict[tuple[str, int], list] = {}
        for (cat, data_seed), group in cond.groupby(["category", "seed"], sort=True):
            first = group[group["adaptation"] == "none"]
            if first.empty:
                continue
            labels = first.drop_duplicates("sample_id").set_index("sample_id")["label"]
            rng = np.random.default_rng(stable_int(f"recovery/{seed}/{cat}/{data_seed}"))
            idx = stratified_resample_indices(labels.to_numpy(), n_resamples, rng)
            for key, (est, rep) in _replicates(group, labels.index, idx).items():
                ests.setdefault(key, []).append(est)
                reps.setdefault(key, []).append(rep)
        n_groups = len(ests.get(("none", 0), []))
        macro = {
            key: (float(np.mean(ests[key])), np.mean(np.stack(reps[key]), axis=0))
            for key in ests
            if len(ests[key]) == n_groups  # every category and seed, or not comparable
        }
        if ("none", 0) not in macro:
            continue
        n_est, n_rep = macro["none", 0]
        r_est, r_rep = macro.get((REFIT, 0), (np.nan, np.full(n_resamples, np.nan)))
        for (strategy, k), (a_est, a_rep) in macro.items():
            if strategy == "none":
                continue
            gap = _gap(a_est, n_est, r_est)
            with np.errstate(invalid="ignore", divide="ignore"):
                den = r_rep - n_rep
                g_rep = np.where(den >= MIN_GAP, (a_rep - n_rep) / den, np.nan)
            out.append(
                {
                    "model": model, "shift": shift, "severity": sev,
                    "adaptation": strategy, "k": k, "n_groups": n_groups,
                    "auroc": a_est, **_ci("auroc", a_rep, alpha),
                    "noadapt": n_est, "refit": r_est,
                    "delta": a_est - n_est, **_ci("delta", a_rep - n_rep, alpha),
                    "gap_closed": gap, **_ci("gap", g_rep, alpha),
                    "gap_share": float(np.isfinite(g_rep).mean()),
                    "p": bootstrap_p_value(a_rep - n_rep),
                }
            )  # fmt: skip
    table = pd.DataFrame(out)
    if table.empty:
        return table
    table["p_holm"] = np.nan
    for _, fam in table.groupby(_COND):
        ok = fam["p"].notna()
        if ok.any():
            table.loc[fam.index[ok], "p_holm"] = holm(fam.loc[ok, "p"].to_numpy())[1]
    if metrics is not None:
        table = _with_metrics(table, metrics, shift_name)
    return table.sort_values([*_COND, "adaptation", "k"], ignore_index=True)


def _gap(adapted: float, noadapt: float, refit: float) -> float:
    """Gap closed, NaN where the refit wins less than :data:`MIN_GAP`."""
    if not np.isfinite(refit) or refit - noadapt < MIN_GAP:
        return float("nan")
    return float((adapted - noadapt) / (refit - noadapt))


def _ci(name: str, replicates: np.ndarray, alpha: float) -> dict:
    low, high = percentile_interval(replicates, alpha)
    return {f"{name}_low": low, f"{name}_high": high}


def _with_metrics(table: pd.DataFrame, metrics: pd.DataFrame, shift_name: str) -> pd.DataFrame:
    """PRO and its gap closed, and the cost columns, from ``metrics.parquet``."""
    m = adaptation_rows(metrics, shift_name)
    wide = (
        m.groupby([*_COND, "adaptation", "k", "metric"])["value"].mean().unstack("metric")
    )  # mean over categories and seeds
    wanted = ["pixel_aupro", *schema.ADAPT_METRICS]
    wide = wide.reindex(columns=[c for c in wanted if c in wide.columns]).reset_index()
    if "pixel_aupro" in wide.columns:
        none = wide[wide["adaptation"] == "none"].set_index(_COND)["pixel_aupro"]
        refit = wide[wide["adaptation"] == REFIT].set_index(_COND)["pixel_aupro"]
        key = pd.MultiIndex.from_frame(wide[_COND])
        n = none.reindex(key).to_numpy()
        r = refit.reindex(key).to_numpy()
        wide["pro_gap_closed"] = [
            _gap(a, b, c) for a, b, c in zip(wide["pixel_aupro"], n, r, strict=True)
        ]
        wide = wide.rename(columns={"pixel_aupro": "pro"})
    return table.merge(wide, on=[*_COND, "adaptation", "k"], how="left")


def budget_frame(
    metrics: pd.DataFrame, metric: str, shift_name: str = "shift", *, by_shift: bool = False
) -> pd.DataFrame:
    """What the budget figure draws: per (model, adaptation, k) the metric averaged over
    categories, shifts and severities for each seed, then its mean, minimum and maximum
    over seeds (``value``, ``low``, ``high``; ``n_seeds``). ``adaptation == "none"`` is
    ``shift-noadapt``. ``by_shift``: per (model, shift at a level) instead, in a
    ``panel`` column (``cc_gaussian_noise@3``)."""
    m = adaptation_rows(metrics, shift_name)
    m = m[m["metric"] == metric].copy()
    keys = ["model", "adaptation", "k"]
    if by_shift:  # one panel per model and shift (at each level)
        m["panel"] = [
            f"{s}@{v:g}" if v else str(s) for s, v in zip(m["shift"], m["severity"], strict=True)
        ]
        keys.insert(1, "panel")
    if m.empty:
        return pd.DataFrame(columns=[*keys, "value", "low", "high", "n_seeds"])
    per_seed = m.groupby([*keys, "seed"])["value"].mean()
    g = per_seed.groupby(keys)
    return pd.DataFrame(
        {"value": g.mean(), "low": g.min(), "high": g.max(), "n_seeds": g.size()}
    ).reset_index()
