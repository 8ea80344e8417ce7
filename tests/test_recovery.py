"""Gap closed and the recovery table (shiftbench.analysis.stats.recovery), against sklearn's
AUROC, statsmodels' Holm, a brute-force bootstrap and hand-worked cases; the report's
recovery table and budget figure on a fake run with adaptation strategies."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from statsmodels.stats.multitest import multipletests

from shiftbench._hashing import stable_int
from shiftbench.analysis.stats import recovery
from shiftbench.analysis.stats.bootstrap import stratified_resample_indices
from shiftbench.results import schema

CONDITIONS = [  # (protocol, adaptation, k, how far the scores separate the classes)
    ("clean", "none", 0, 3.0),
    ("shift-noadapt", "none", 0, 0.6),
    ("shift-adapt", "refit", 0, 2.4),
    ("shift-adapt", "bank-extend", 1, 1.0),
    ("shift-adapt", "bank-extend", 4, 1.8),
    ("shift-adapt", "recalibrate", 4, 0.6),  # same scores as noadapt: threshold only
    ("shift-adapt", "test-bn", 0, 1.5),
]


def _scores(categories=("a", "b"), seeds=(0, 1), n_normal=12, n_anomalous=8) -> pd.DataFrame:
    rows = []
    for cat in categories:
        for seed in seeds:
            rng = np.random.default_rng(stable_int(f"{cat}{seed}"))
            labels = np.r_[np.zeros(n_normal, int), np.ones(n_anomalous, int)]
            base = rng.normal(size=labels.size)
            noise = rng.normal(size=labels.size)
            for protocol, strategy, k, sep in CONDITIONS:
                s = base + sep * labels + (0.0 if strategy == "recalibrate" else 0.3 * noise * k)
                if strategy == "recalibrate":  # a monotone map of the noadapt scores
                    s = 3 * (base + 0.6 * labels) + 1
                for split in ("val", "test"):
                    rows += [
                        {
                            "category": cat, "model": "patchcore", "seed": seed,
                            "protocol": protocol, "severity": np.nan if protocol == "clean" else 3.0,
                            "adaptation": strategy, "k": k, "split": split,
                            "sample_id": f"{cat}/{i}", "label": int(y), "defect_type": "x",
                            "score": float(v), "threshold": 0.0, "decision": int(v >= 0),
                            "pixel_threshold": np.nan,
                        }
                        for i, (y, v) in enumerate(zip(labels, s, strict=True))
                    ]  # fmt: skip
    return pd.DataFrame(rows)


def _macro(scores: pd.DataFrame, strategy: str, k: int, protocol="shift-adapt") -> float:
    t = scores[(scores["split"] == "test") & (scores["protocol"] == protocol)]
    t = t[(t["adaptation"] == strategy) & (t["k"] == k)]
    return float(
        np.mean([roc_auc_score(g["label"], g["score"]) for _, g in t.groupby(["category", "seed"])])
    )


@pytest.fixture(scope="module")
def scores():
    return _scores()


@pytest.fixture(scope="module")
def table(scores):
    return recovery.recovery_table(scores, n_resamples=300, seed=0)


def test_point_estimates_are_sklearn_macro_aurocs_and_the_gap_formula(scores, table):
    noadapt = _macro(scores, "none", 0, "shift-noadapt")
    refit = _macro(scores, "refit", 0)
    assert refit - noadapt > recovery.MIN_GAP
    for _, r in table.iterrows():
        adapted = _macro(scores, r["adaptation"], r["k"])
        assert r["auroc"] == pytest.approx(adapted, abs=1e-12)
        assert r["noadapt"] == pytest.approx(noadapt, abs=1e-12)
        assert r["refit"] == pytest.approx(refit, abs=1e-12)
        assert r["gap_closed"] == pytest.approx((adapted - noadapt) / (refit - noadapt))
    refit_row = table[table["adaptation"] == "refit"].iloc[0]
    assert refit_row["gap_closed"] == pytest.approx(1.0)
    assert set(table["adaptation"]) == {"refit", "bank-extend", "recalibrate", "test-bn"}
    assert "clean" not in set(table["adaptation"])


def test_a_monotone_rescoring_wins_nothing_back_with_certainty(table):
    """recalibrate leaves the ranking alone: AUROC equal to noadapt in every replicate, so
    the difference's interval is [0, 0], gap closed 0 and p = 1."""
    r = table[table["adaptation"] == "recalibrate"].iloc[0]
    assert r["delta"] == 0.0 and r["delta_low"] == 0.0 and r["delta_high"] == 0.0
    assert r["gap_closed"] == 0.0
    assert r["p"] == 1.0


def test_intervals_equal_a_brute_force_paired_bootstrap(scores):
    """The replicates are those of an explicit loop: one stratified resample per
    (category, seed), the same for noadapt, refit and the strategy, sklearn's AUROC on each
    resampled sample, averaged over groups, then the gap ratio."""
    b = 60
    table = recovery.recovery_table(scores, n_resamples=b, seed=7)
    test = scores[scores["split"] == "test"]
    reps = {key: [] for key in [("none", 0), ("refit", 0), ("bank-extend", 4)]}
    for (cat, seed), g in test.groupby(["category", "seed"]):
        noad = g[g["protocol"] == "shift-noadapt"].set_index("sample_id")
        rng = np.random.default_rng(stable_int(f"recovery/7/{cat}/{seed}"))
        idx = stratified_resample_indices(noad["label"].to_numpy(), b, rng)
        for strategy, k in reps:
            proto = "shift-noadapt" if strategy == "none" else "shift-adapt"
            rows = g[(g["protocol"] == proto) & (g["adaptation"] == strategy) & (g["k"] == k)]
            rows = rows.set_index("sample_id").reindex(noad.index)
            y, s = rows["label"].to_numpy(), rows["score"].to_numpy()
            reps[strategy, k].append([roc_auc_score(y[i], s[i]) for i in idx])
    n, r, a = (np.mean(reps[key], axis=0) for key in reps)
    gap = np.where(r - n >= recovery.MIN_GAP, (a - n) / (r - n), np.nan)
    row = table[(table["adaptation"] == "bank-extend") & (table["k"] == 4)].iloc[0]
    lo, hi = np.percentile(a, [2.5, 97.5])
    assert (row["auroc_low"], row["auroc_high"]) == pytest.approx((lo, hi))
    g = gap[np.isfinite(gap)]
    assert (row["gap_low"], row["gap_high"]) == pytest.approx(tuple(np.percentile(g, [2.5, 97.5])))
    assert row["gap_share"] == pytest.approx(np.isfinite(gap).mean())
    d = a - n
    p = min(1.0, max(2 * min(np.mean(d <= 0), np.mean(d >= 0)), 1 / b))
    assert row["p"] == pytest.approx(p)


def test_holm_runs_over_the_strategies_of_one_condition(table):
    want = multipletests(table["p"].to_numpy(), method="holm")[1]
    assert table["p_holm"].to_numpy() == pytest.approx(want)


def test_gap_is_undefined_when_the_refit_wins_too_little():
    assert np.isnan(recovery._gap(0.8, 0.7, 0.705))
    assert np.isnan(recovery._gap(0.8, 0.7, 0.6))  # refit worse than doing nothing
    assert np.isnan(recovery._gap(0.8, 0.7, np.nan))  # no refit in the run
    assert recovery._gap(0.65, 0.7, 0.8) == pytest.approx(-0.5)  # worse than no adaptation
    assert recovery._gap(0.9, 0.7, 0.8) == pytest.approx(2.0)  # better than the refit


def test_budget_frame_bands_are_over_seeds():
    rows = []
    for seed, offset in ((0, 0.0), (1, 0.1)):
        for cat, c in (("a", 0.0), ("b", 0.2)):
            for protocol, strategy, k, v in (
                ("shift-noadapt", "none", 0, 0.6),
                ("shift-adapt", "refit", 0, 0.9),
                ("shift-adapt", "bank-extend", 1, 0.7),
                ("shift-adapt", "bank-extend", 4, 0.8),
            ):
                rows.append({"category": cat, "model": "m", "seed": seed, "protocol": protocol,
                             "severity": 3.0, "adaptation": strategy, "k": k,
                             "metric": "image_auroc", "value": v + c + offset})  # fmt: skip
    frame = recovery.budget_frame(pd.DataFrame(rows), "image_auroc")
    r = frame[(frame["adaptation"] == "bank-extend") & (frame["k"] == 4)].iloc[0]
    # per seed: mean over categories = 0.9 and 1.0
    assert (r["low"], r["value"], r["high"], r["n_seeds"]) == pytest.approx((0.9, 0.95, 1.0, 2))


def _fake_run(tmp_path, scores: pd.DataFrame):
    from shiftbench.testing.fake_run import write_run

    metric_rows = []
    for key, g in scores[scores["split"] == "test"].groupby(
        ["category", "model", "seed", "protocol", "severity", "adaptation", "k"], dropna=False
    ):
        values = {
            "image_auroc": roc_auc_score(g["label"], g["score"]),
            "image_f1": 0.5,
            "pixel_aupro": 0.7 + 0.01 * key[6],
            "adapt_seconds": 0.1 * key[6],
            "target_images": float(key[6]),
        }
        metric_rows += [(*key, m, v) for m, v in values.items()]
    cols = [
        "category",
        "model",
        "seed",
        "protocol",
        "severity",
        "adaptation",
        "k",
        "metric",
        "value",
    ]
    metrics = pd.DataFrame(metric_rows, columns=cols)
    units = {}
    for (cat, seed), g in scores.groupby(["category", "seed"]):
        m = metrics[(metrics["category"] == cat) & (metrics["seed"] == seed)]
        units[f"{cat}__patchcore__seed{seed}__clean"] = (g.reset_index(drop=True), m)
    manifest = {"adaptation": {"test-bn": {"transductive": True, "target_data": "unlabelled-test"},
                               "bank-extend": {"transductive": False, "target_data": "normal-k"}}}  # fmt: skip
    return write_run(tmp_path / "run", units, manifest=manifest)


def test_report_of_a_run_with_adaptation(tmp_path, scores):
    from shiftbench.analysis.report.build import build_report

    run_dir = _fake_run(tmp_path, scores)
    rep = build_report(run_dir, n_resamples=200, figures=["budget", "degradation"])
    tables = run_dir / schema.TABLES
    rec = pd.read_csv(tables / "recovery.csv")
    assert set(rec["adaptation"]) == {"refit", "bank-extend", "recalibrate", "test-bn"}
    assert rec.loc[rec["adaptation"] == "test-bn", "transductive"].all()
    assert not rec.loc[rec["adaptation"] != "test-bn", "transductive"].any()
    tex = (tables / "recovery.tex").read_text()
    assert "test-bn (transd.)" in tex and "transductive" in tex
    md = (tables / "recovery.md").read_text()
    assert "bank-extend, k=4" in md
    # the protocol tables see one shift-adapt row per image: the refit
    auroc = pd.read_csv(tables / "image_auroc.csv")
    adapt = scores[(scores["adaptation"] == "refit") & (scores["split"] == "test")]
    want = np.mean(
        [roc_auc_score(g["label"], g["score"]) for _, g in adapt.groupby(["category", "seed"])]
    )
    col = next(c for c in auroc.columns if c.startswith("shift-adapt") and "low" not in c
               and "high" not in c and "sd" not in c)  # fmt: skip
    got = auroc.loc[auroc["category"] == schema.MEAN_CATEGORY, col].iloc[0]
    assert got == pytest.approx(want, abs=1e-9)
    pngs = {p.name for p in rep.figures}
    assert {"budget_image_auroc.png", "budget_image_f1.png"} <= pngs


def test_console_summary_of_an_adaptation_study(tmp_path, scores):
    """The run's summary keeps shift-adapt = refit in the protocol table and lists every
    strategy and k with its macro AUROC (hand-computed from the same metrics)."""
    from shiftbench.analysis.report.summary import summary_adaptation, summary_text
    from shiftbench.results import load_run

    run = load_run(_fake_run(tmp_path, scores))
    table = summary_adaptation(run.metrics)
    m = run.metrics[(run.metrics["metric"] == "image_auroc")
                    & (run.metrics["category"] != schema.MEAN_CATEGORY)]  # fmt: skip
    pick = m[(m["adaptation"] == "bank-extend") & (m["k"] == 4)]
    assert table.loc[("patchcore", "bank-extend k=4"), "sev 3"] == pytest.approx(
        pick["value"].mean()
    )
    assert list(table.index.get_level_values("strategy"))[:2] == ["none", "refit"]
    text = summary_text(run.metrics, 2, width=100)
    refit = m[(m["protocol"] == "shift-adapt") & (m["adaptation"] == "refit")]
    assert f"{refit['value'].mean():.3f}" in text.split("per adaptation strategy")[0]
    assert "bank-extend k=4" in text
