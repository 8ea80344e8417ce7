"""Every robustness number of a report, defined once (formulas: ``docs/robustness.md``).

The input is the tidy ``metrics.parquet`` of a run (or of several runs combined): one value
per (category, model, seed, protocol, severity[, shift]). :func:`curve_frame` turns it
into *severity curves*: per model, shift, category and seed, the metric at severity 0
(= the ``clean`` protocol, the same value for every shift) and at every shifted level.
Runs that evaluate each suite member alone carry a :data:`schema.SHIFT_COLUMN` column
(the perturbation's name); in ordinary runs the column is absent and the whole suite is
one shift, named by ``manifest["suite"]["name"]``.

Notation, per model (``m`` is the metric averaged over categories and seeds):

* ``m0`` = clean value; ``m[f, s]`` = value under shift ``f`` at level ``s`` (levels
  ``s_1 < ... < s_K``; ``s_0 = 0`` is clean).
* mean shifted ``mS = mean_{f,s} m[f,s]``; drop ``D = m0 - mS``; relative robustness
  ``RR = mS / m0``.
* AUSC (normalised area under the severity curve) ``= mean_f  (1/s_K) * trapezoid(m[f, .]
  over s_0..s_K)``, with ``m[f, s_0] = m0``: the mean height of the curve, in metric units;
  a model that loses nothing has ``AUSC = m0``.
* worst level: ``min_{f,s} m[f,s]`` and where it is.
* corruption error (Hendrycks & Dietterich 2019, ImageNet-C) with error ``E = 1 - AUROC``:
  ``CE_f = sum_s E[f,s] / sum_s E_base[f,s]``, ``mCE = mean_f CE_f``; relative
  ``rCE_f = sum_s (E[f,s] - E0) / sum_s (E_base[f,s] - E_base0)``, ``relative mCE =
  mean_f rCE_f``; ``base`` is the baseline model (``--baseline``). Both in %, the baseline
  scores 100. Undefined (NaN) where the baseline's denominator is not positive.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from shiftbench.analysis import stats
from shiftbench.results import schema

__all__ = [
    "MIN_CD_BLOCKS",
    "Ranking",
    "ausc",
    "corruption_errors",
    "curve_frame",
    "heatmap_frame",
    "mean_curves",
    "ranking",
    "robustness_summary",
    "severity_bands",
]

#: a critical-difference diagram is drawn only with at least this many complete blocks:
#: Friedman's chi-square approximation (and the Nemenyi CD built on it) is unreliable with
#: fewer (Demsar 2006, JMLR 7:1, sec. 3.2.2: "N > 10")
MIN_CD_BLOCKS = 10
#: the protocol whose curves the robustness numbers describe by default
DEFAULT_PROTOCOL = "shift-noadapt"
_KEYS = ["model", "shift", "category", "seed"]


def default_shift(manifest: dict | None) -> str:
    """The name of the one shift of an ordinary run: the suite's name."""
    suite = (manifest or {}).get("suite") or {}
    return str(suite.get("name") or (manifest or {}).get("config", {}).get("suite") or "shift")


def curve_frame(
    metrics: pd.DataFrame,
    metric: str = "image_auroc",
    protocol: str = DEFAULT_PROTOCOL,
    shift_name: str = "shift",
) -> pd.DataFrame:
    """Severity curves in long form: ``model, shift, category, seed, severity, value``;
    severity 0 is the ``clean`` value (repeated for every shift). Per-category rows only
    (the stored ``mean`` category is left out; averages are taken here). Shifted rows
    without a severity (a single-level run written without one) count as level 1. A real
    target's rows (``shift`` ``target:<name>``) are left out: they have no severity, and
    :mod:`~shiftbench.analysis.stats.syn2real` compares them with the synthetic shifts."""
    m = metrics[(metrics["metric"] == metric) & (metrics["category"] != schema.MEAN_CATEGORY)]
    m = m.copy()
    if schema.SHIFT_COLUMN in m.columns:
        m["shift"] = m[schema.SHIFT_COLUMN].astype(object)
        m.loc[m["shift"].isna() | (m["shift"] == ""), "shift"] = np.nan
    else:
        m["shift"] = pd.Series(shift_name, index=m.index, dtype=object).where(
            m["protocol"] != "clean"
        )
    shifted = m[(m["protocol"] == protocol) & ~m["shift"].map(schema.is_target_shift)].copy()
    shifted["severity"] = shifted["severity"].astype(float).fillna(1.0)
    shifted["shift"] = shifted["shift"].fillna(shift_name)
    shifts = sorted(shifted["shift"].unique())
    clean = m[m["protocol"] == "clean"]
    # clean rows: one value per (model, category, seed); copies per shift (or per level) are equal
    clean_vals = clean.groupby(["model", "category", "seed"], as_index=False)["value"].mean()
    clean_rows = pd.concat(
        [clean_vals.assign(shift=f, severity=0.0) for f in shifts] or [clean_vals.iloc[:0]],
        ignore_index=True,
    )
    shifted = shifted.groupby([*_KEYS, "severity"], as_index=False)["value"].mean()
    out = pd.concat([clean_rows, shifted], ignore_index=True)
    if out.empty:
        return pd.DataFrame(columns=[*_KEYS, "severity", "value"])
    return (
        out[[*_KEYS, "severity", "value"]].sort_values([*_KEYS, "severity"]).reset_index(drop=True)
    )


def mean_curves(curves: pd.DataFrame, by: tuple[str, ...] = ()) -> pd.DataFrame:
    """Mean over categories and seeds (or keep ``by``, e.g. ``("seed",)``) per model,
    shift and severity."""
    keys = ["model", "shift", *by, "severity"]
    return curves.groupby(keys, as_index=False)["value"].mean()


def ausc(severities, values) -> float:
    """Normalised area under a severity curve: the trapezoid area of ``values`` over
    ``severities`` (which must include 0, the clean point), divided by the largest
    severity -- the curve's mean height. NaN with fewer than two points."""
    s = np.asarray(severities, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    order = np.argsort(s)
    s, v = s[order], v[order]
    if s.size < 2 or s[-1] <= s[0] or not np.isfinite(v).all():
        return float("nan")
    return float(np.sum(np.diff(s) * (v[1:] + v[:-1]) / 2) / (s[-1] - s[0]))


def _summary_one(mc: pd.DataFrame) -> dict:
    """The summary numbers of one model from its mean curves (shift, severity, value)."""
    clean = mc[mc["severity"] == 0]["value"]
    m0 = float(clean.mean()) if len(clean) else float("nan")
    sh = mc[mc["severity"] > 0]
    if sh.empty:
        nan = float("nan")
        return {"clean": m0, "mean_shifted": nan, "drop": nan, "relative_robustness": nan,
                "ausc": nan, "worst": nan, "worst_shift": "", "worst_severity": nan}  # fmt: skip
    ms = float(sh["value"].mean())
    per_shift = [
        ausc(g["severity"], g["value"]) for _, g in mc.groupby("shift") if (g["severity"] > 0).any()
    ]
    w = sh.loc[sh["value"].idxmin()]
    return {
        "clean": m0,
        "mean_shifted": ms,
        "drop": m0 - ms,
        "relative_robustness": ms / m0 if m0 else float("nan"),
        "ausc": float(np.mean(per_shift)) if per_shift else float("nan"),
        "worst": float(w["value"]),
        "worst_shift": str(w["shift"]),
        "worst_severity": float(w["severity"]),
    }


def corruption_errors(mc: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Per (model, shift): ``ce`` and ``relative_ce`` (fractions; 1.0 = the baseline's),
    from mean curves (:func:`mean_curves`) of AUROC; error ``E = 1 - AUROC``."""
    if baseline not in set(mc["model"]):
        raise ValueError(
            f"baseline model {baseline!r} is not in the run ({sorted(set(mc['model']))})"
        )
    err = mc.assign(error=1.0 - mc["value"])
    rows = []
    base = err[err["model"] == baseline]
    for (model, shift), g in err.groupby(["model", "shift"]):
        b = base[base["shift"] == shift]
        e_s, e_0 = g[g["severity"] > 0], g[g["severity"] == 0]["error"].mean()
        b_s, b_0 = b[b["severity"] > 0], b[b["severity"] == 0]["error"].mean()
        levels = sorted(set(e_s["severity"]) & set(b_s["severity"]))
        e_s = e_s.set_index("severity").loc[levels, "error"]
        b_s = b_s.set_index("severity").loc[levels, "error"]
        den, rden = float(b_s.sum()), float((b_s - b_0).sum())
        rows.append(
            {
                "model": model,
                "shift": shift,
                "ce": float(e_s.sum()) / den if den > 0 else float("nan"),
                "relative_ce": float((e_s - e_0).sum()) / rden if rden > 0 else float("nan"),
            }
        )
    return pd.DataFrame(rows, columns=["model", "shift", "ce", "relative_ce"])


def robustness_summary(curves: pd.DataFrame, baseline: str | None = None) -> pd.DataFrame:
    """One row per model: ``clean, mean_shifted, drop, relative_robustness, ausc, worst,
    worst_shift, worst_severity`` (and ``mce, relative_mce`` with a ``baseline``), from
    the curves averaged over categories and seeds; each numeric column also as
    ``<col>_sd``, the standard deviation of the same number computed seed by seed (NaN with
    one seed)."""
    mc = mean_curves(curves)
    by_seed = mean_curves(curves, by=("seed",))
    seeds = sorted(by_seed["seed"].unique())
    rows = []
    for model in sorted(mc["model"].unique()):
        row = {"model": model, **_summary_one(mc[mc["model"] == model])}
        per_seed = [
            _summary_one(by_seed[(by_seed["model"] == model) & (by_seed["seed"] == s)])
            for s in seeds
        ]
        for k, v in list(row.items()):
            if isinstance(v, float) and k != "worst_severity":
                vals = np.array([p[k] for p in per_seed], dtype=float)
                row[f"{k}_sd"] = (
                    float(np.std(vals, ddof=1)) if np.isfinite(vals).sum() > 1 else np.nan
                )
        rows.append(row)
    out = pd.DataFrame(rows)
    if baseline is not None and len(out):
        ce = corruption_errors(mc, baseline)
        agg = ce.groupby("model")[["ce", "relative_ce"]].mean()
        out["mce"] = out["model"].map(agg["ce"])
        out["relative_mce"] = out["model"].map(agg["relative_ce"])
        sd_m, sd_r = {}, {}
        for model in out["model"]:
            vals = []
            for s in seeds:
                cs = corruption_errors(by_seed[by_seed["seed"] == s], baseline)
                cs = cs[cs["model"] == model]
                vals.append((cs["ce"].mean(), cs["relative_ce"].mean()))
            v = np.array(vals, dtype=float)
            sd_m[model] = np.std(v[:, 0], ddof=1) if np.isfinite(v[:, 0]).sum() > 1 else np.nan
            sd_r[model] = np.std(v[:, 1], ddof=1) if np.isfinite(v[:, 1]).sum() > 1 else np.nan
        out["mce_sd"] = out["model"].map(sd_m)
        out["relative_mce_sd"] = out["model"].map(sd_r)
    return out


def heatmap_frame(curves: pd.DataFrame) -> pd.DataFrame:
    """Per (model, shift, severity): the mean over categories and seeds (``value``) and
    the drop from clean (``drop`` = value - clean value, <= 0 for a loss)."""
    mc = mean_curves(curves)
    clean = mc[mc["severity"] == 0].groupby("model")["value"].mean()
    return mc.assign(drop=mc["value"] - mc["model"].map(clean))


@dataclass
class Ranking:
    """Friedman / Nemenyi over blocks (category, seed) of the shifted protocol, each
    block's value the mean over shifts and levels; ``result`` None when it cannot be
    computed (``reason`` says why); ``draw_cd`` False below :data:`MIN_CD_BLOCKS` blocks.
    ``n_seeds``: seeds per category (above 1, blocks of one category share its images)."""

    result: stats.FriedmanNemenyiResult | None
    n_blocks: int
    n_models: int
    reason: str = ""
    n_seeds: int = 1

    @property
    def draw_cd(self) -> bool:
        return self.result is not None and self.n_blocks >= MIN_CD_BLOCKS

    @property
    def blocks(self) -> str:
        """What a block is, for captions: with several seeds the blocks are not fully
        independent, and this says so."""
        if self.n_seeds <= 1:
            return f"blocks = categories ({self.n_blocks})"
        return (
            f"blocks = category x seed ({self.n_blocks}); the seeds of one category share "
            "its images, so these blocks are not independent"
        )


def ranking(curves: pd.DataFrame, alpha: float = 0.05) -> Ranking:
    """Rank models across shifts: Friedman test and Nemenyi critical difference
    (:func:`shiftbench.analysis.stats.friedman_nemenyi`) with one block per (category,
    seed), its value the mean over every shift and level > 0.

    Not one block per (shift, severity, category, seed): the cells of one category are
    the same test images shifted differently, so they are not independent blocks and
    would inflate N (and shrink the critical difference) with every shift and level."""
    sh = curves[curves["severity"] > 0]
    wide = (
        sh.pivot_table(
            index=["category", "seed", "shift", "severity"], columns="model", values="value"
        )
        .dropna()  # only cells every model has, so each block averages the same cells
        .groupby(level=["category", "seed"])
        .mean()
    )
    k, n = wide.shape[1], wide.shape[0]
    n_seeds = int(wide.groupby(level="category").size().max()) if n else 0
    if k < 3:
        return Ranking(None, n, k, f"needs at least 3 models, the run has {k}", n_seeds)
    if n < 2:
        return Ranking(None, n, k, f"needs at least 2 complete blocks, has {n}", n_seeds)
    res = stats.friedman_nemenyi(wide, alpha=alpha)
    reason = (
        ""
        if n >= MIN_CD_BLOCKS
        else f"{n} blocks < {MIN_CD_BLOCKS} (a block: category x seed): too few for the "
        "Friedman chi-square approximation"
    )
    return Ranking(res, n, k, reason, n_seeds)


def severity_bands(
    scores: pd.DataFrame,
    *,
    protocol: str,
    metric: stats.VectorisedMetric = stats.auroc,
    n_resamples: int = 500,
    alpha: float = 0.05,
    seed: int = 0,
    by_category: bool = False,
    pool_shifts: bool = False,
) -> pd.DataFrame:
    """Severity curve of ``metric`` with a bootstrap band, from per-image test scores.

    Per (category, seed) the test images are resampled (stratified by label, the same
    resamples at every level: paired, as in the tables); a point is the mean over categories
    and seeds (or seeds only with ``by_category``) and its band the percentile interval of
    the index-wise mean of the replicates. Severity 0 is the ``clean`` protocol. With
    ``pool_shifts`` the shifts of a per-shift run are averaged too (shift ``"all"``).
    Returns ``model, shift, [category,] severity, value, low, high``."""
    from shiftbench._hashing import stable_int

    test = scores[scores["split"] == "test"]
    has_shift = schema.SHIFT_COLUMN in test.columns
    rows_clean = test[test["protocol"] == "clean"].drop_duplicates(
        ["category", "model", "seed", "sample_id"]
    )
    shifted = test[test["protocol"] == protocol].copy()
    shifted["severity"] = shifted["severity"].astype(float).fillna(1.0)
    shifted["_shift"] = shifted[schema.SHIFT_COLUMN].astype(str) if has_shift else "shift"
    acc: dict[tuple, list[tuple[float, np.ndarray]]] = {}
    for (cat, model, s), g in rows_clean.groupby(["category", "model", "seed"]):
        g = g.sort_values("sample_id")
        y = g["label"].to_numpy().astype(np.int64)
        rng = np.random.default_rng(stable_int(f"bands|{seed}|{cat}|{s}", 8, "little"))
        idx = stats.stratified_resample_indices(y, n_resamples, rng)
        w = stats.resample_weights(idx, y.size)
        ids = g["sample_id"].to_numpy()
        v = g["score"].to_numpy(np.float64)
        point = metric(y, v)
        reps = metric.weighted(y, v, w)
        shifts = ["all"] if pool_shifts else (sorted(shifted["_shift"].unique()) or ["shift"])
        for f in shifts:
            key = (model, f, cat if by_category else None, 0.0)
            acc.setdefault(key, []).append((point, reps))
        sub = shifted[
            (shifted["category"] == cat) & (shifted["model"] == model) & (shifted["seed"] == s)
        ]
        for (f, lev), h in sub.groupby(["_shift", "severity"]):
            h = h.set_index("sample_id").reindex(ids)
            if h["score"].isna().any():
                continue
            hv = h["score"].to_numpy(np.float64)
            key = (model, "all" if pool_shifts else f, cat if by_category else None, float(lev))
            acc.setdefault(key, []).append((metric(y, hv), metric.weighted(y, hv, w)))
    out = []
    for (model, f, cat, lev), items in acc.items():
        point = float(np.mean([p for p, _ in items]))
        rep = np.mean([r for _, r in items], axis=0)
        low, high = stats.percentile_interval(rep, alpha)
        out.append({"model": model, "shift": f, "category": cat, "severity": lev,
                    "value": point, "low": low, "high": high})  # fmt: skip
    df = pd.DataFrame(out)
    if not by_category and len(df):
        df = df.drop(columns="category")
    return (
        df.sort_values(
            [c for c in ("model", "shift", "category", "severity") if c in df]
        ).reset_index(drop=True)
        if len(df)
        else df
    )
