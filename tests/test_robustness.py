"""Robustness numbers (shiftbench.analysis.stats.robustness), each against a hand-worked case.

Two models on one category and seed, baseline ``B``; shift ``f`` at levels 1 and 3
(unevenly spaced, so the trapezoid is exercised) and shift ``g`` where nobody loses:

=====  =====  ========  ========  ========  ========
model  clean  f, sev1   f, sev3   g, sev1   g, sev3
=====  =====  ========  ========  ========  ========
A      0.90   0.80      0.60      0.90      0.90
B      0.80   0.70      0.40      0.80      0.80
=====  =====  ========  ========  ========  ========
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shiftbench.analysis.stats import robustness as rb
from shiftbench.results import schema

TABLE = {
    "A": {"clean": 0.9, ("f", 1): 0.8, ("f", 3): 0.6, ("g", 1): 0.9, ("g", 3): 0.9},
    "B": {"clean": 0.8, ("f", 1): 0.7, ("f", 3): 0.4, ("g", 1): 0.8, ("g", 3): 0.8},
}


def _metrics(with_shift_column: bool, shifts=("f", "g"), seeds=(0,)) -> pd.DataFrame:
    rows = []
    for seed in seeds:
        for model, vals in TABLE.items():
            bump = 0.01 * seed
            rows.append(
                ("c", model, seed, "clean", np.nan, "", "image_auroc", vals["clean"] + bump)
            )
            for (f, lev), v in ((k, v) for k, v in vals.items() if k != "clean"):
                if f in shifts:
                    rows.append(
                        ("c", model, seed, "shift-noadapt", float(lev), f, "image_auroc", v + bump)
                    )
        rows.append(("mean", "A", seed, "clean", np.nan, "", "image_auroc", 0.0))  # ignored
    cols = [*schema.METRIC_COLUMNS[:5], schema.SHIFT_COLUMN, "metric", "value"]
    df = pd.DataFrame(rows, columns=cols)
    return df if with_shift_column else df.drop(columns=schema.SHIFT_COLUMN)


def test_ausc_hand_worked():
    # (0, .9) (1, .8) (3, .6): 1 * .85 + 2 * .7 = 2.25, over 3 -> 0.75
    assert rb.ausc([0, 1, 3], [0.9, 0.8, 0.6]) == pytest.approx(0.75)
    assert rb.ausc([3, 0, 1], [0.6, 0.9, 0.8]) == pytest.approx(0.75)  # order-free
    assert rb.ausc([0, 1, 5], [0.7, 0.7, 0.7]) == pytest.approx(0.7)  # flat: the clean value
    assert np.isnan(rb.ausc([0], [0.9]))


def test_curve_frame_with_and_without_shift_column():
    c = rb.curve_frame(_metrics(True))
    assert sorted(c["shift"].unique()) == ["f", "g"]
    clean = c[c["severity"] == 0]
    assert len(clean) == 4  # 2 models x 2 shifts, the clean value repeated per shift
    assert set(c["category"]) == {"c"}  # the stored mean category is not averaged in
    ordinary = _metrics(False, shifts=("f",))
    c1 = rb.curve_frame(ordinary, shift_name="mvtec-shift")
    assert set(c1["shift"]) == {"mvtec-shift"}
    a = c1[c1["model"] == "A"].set_index("severity")["value"]
    assert a.to_dict() == pytest.approx({0.0: 0.9, 1.0: 0.8, 3.0: 0.6})


def test_summary_numbers_hand_worked():
    s = rb.robustness_summary(rb.curve_frame(_metrics(False, shifts=("f",))), baseline="B")
    s = s.set_index("model")
    a, b = s.loc["A"], s.loc["B"]
    assert a["clean"] == pytest.approx(0.9)
    assert a["mean_shifted"] == pytest.approx(0.7)  # (0.8 + 0.6) / 2
    assert a["drop"] == pytest.approx(0.2)
    assert a["relative_robustness"] == pytest.approx(0.7 / 0.9)
    assert a["ausc"] == pytest.approx(0.75)
    assert (a["worst"], a["worst_severity"]) == (pytest.approx(0.6), 3.0)
    assert b["ausc"] == pytest.approx((0.75 + 2 * 0.55) / 3)
    # CE_A = (0.2 + 0.4) / (0.3 + 0.6); rCE_A = (0.1 + 0.3) / (0.1 + 0.4)
    assert a["mce"] == pytest.approx(0.6 / 0.9)
    assert a["relative_mce"] == pytest.approx(0.8)
    assert b["mce"] == pytest.approx(1.0) and b["relative_mce"] == pytest.approx(1.0)
    assert np.isnan(a["ausc_sd"])  # one seed: no spread


def test_mce_over_shifts_and_undefined_relative_ce():
    curves = rb.curve_frame(_metrics(True))
    ce = rb.corruption_errors(rb.mean_curves(curves), "B").set_index(["model", "shift"])
    assert ce.loc[("A", "g"), "ce"] == pytest.approx(0.2 / 0.4)
    # the baseline loses nothing under g: relative CE is undefined, not infinite
    assert np.isnan(ce.loc[("A", "g"), "relative_ce"])
    s = rb.robustness_summary(curves, baseline="B").set_index("model")
    assert s.loc["A", "mce"] == pytest.approx((0.6 / 0.9 + 0.5) / 2)
    assert s.loc["A", "relative_mce"] == pytest.approx(0.8)  # the defined shift only
    assert s.loc["A", "mean_shifted"] == pytest.approx((0.8 + 0.6 + 0.9 + 0.9) / 4)
    assert (s.loc["A", "worst_shift"], s.loc["A", "worst_severity"]) == ("f", 3.0)
    with pytest.raises(ValueError, match="baseline"):
        rb.corruption_errors(rb.mean_curves(curves), "nope")


def test_seed_spread_and_heatmap():
    curves = rb.curve_frame(_metrics(False, shifts=("f",), seeds=(0, 1)))
    s = rb.robustness_summary(curves).set_index("model")
    assert s.loc["A", "clean"] == pytest.approx(0.905)
    # each seed's mean shifted value is 0.70 and 0.71
    assert s.loc["A", "mean_shifted_sd"] == pytest.approx(np.std([0.70, 0.71], ddof=1))
    assert "mce" not in s.columns  # no baseline, no mCE
    h = rb.heatmap_frame(curves).set_index(["model", "severity"])
    assert h.loc[("A", 3.0), "drop"] == pytest.approx(-0.3)
    assert h.loc[("A", 0.0), "drop"] == pytest.approx(0.0)


def test_ranking_rule_for_cd():
    rng = np.random.default_rng(0)
    rows = []
    for cat in ("a", "b", "c"):
        for seed in range(4):
            for m, base in (("x", 0.9), ("y", 0.8), ("z", 0.7)):
                rows.append((cat, m, seed, "clean", np.nan, "image_auroc", base))
                rows.append((cat, m, seed, "shift-noadapt", 3.0, "image_auroc",
                             base - 0.1 + rng.normal(0, 0.01)))  # fmt: skip
    metrics = pd.DataFrame(rows, columns=list(schema.METRIC_COLUMNS))
    r = rb.ranking(rb.curve_frame(metrics))
    assert r.n_blocks == 12 and r.draw_cd
    assert list(r.result.average_ranks.index) == ["x", "y", "z"]
    few = rb.ranking(rb.curve_frame(metrics[metrics["category"] == "a"]))
    assert few.n_blocks == 4 and not few.draw_cd and "4 blocks < 10" in few.reason
    two = rb.ranking(rb.curve_frame(metrics[metrics["model"] != "z"]))
    assert two.result is None and "3 models" in two.reason


def test_ranking_blocks_are_categories_and_seeds_not_cells():
    """A category's cells (shift x level) share its test images: they are averaged into
    one block per (category, seed), not counted as blocks. Hand-worked: in every
    category x is best on average (0.70) though it loses the (g, 1) cell."""
    from scipy.stats import friedmanchisquare

    cells = {"x": [0.9, 0.9, 0.5, 0.5], "y": [0.6, 0.6, 0.6, 0.6], "z": [0.4, 0.4, 0.7, 0.7]}
    rows = []
    for c, cat in enumerate("abcdef"):
        for m, vals in cells.items():
            rows.append((cat, m, 0, "clean", np.nan, "", "image_auroc", 0.9))
            for (f, lev), v in zip([("f", 1), ("f", 3), ("g", 1), ("g", 3)], vals, strict=True):
                bump = 0.005 * c * (m == "z")  # z's block means differ by category
                rows.append((cat, m, 0, "shift-noadapt", float(lev), f, "image_auroc", v + bump))
    cols = [*schema.METRIC_COLUMNS[:5], schema.SHIFT_COLUMN, "metric", "value"]
    curves = rb.curve_frame(pd.DataFrame(rows, columns=cols))
    r = rb.ranking(curves)
    assert r.n_blocks == 6 and r.n_seeds == 1  # not 6 x 4 cells
    assert r.blocks == "blocks = categories (6)" and "6 blocks < 10" in r.reason
    assert r.result.average_ranks.to_dict() == pytest.approx({"x": 1.0, "y": 2.0, "z": 3.0})
    means = [[np.mean(cells[m]) + 0.005 * c * (m == "z") for c in range(6)] for m in "xyz"]
    assert r.result.statistic == pytest.approx(friedmanchisquare(*means).statistic)
    one = rb.ranking(curves[curves["category"] == "a"])
    assert one.result is None and "has 1" in one.reason


def _per_shift_run(root):
    """A tiny per-shift run (a ``shift`` column in scores and metrics) through the writer."""
    from shiftbench.testing.fake_run import write_run

    rng = np.random.default_rng(0)
    units = {}
    y = np.r_[np.zeros(12, int), np.ones(10, int)]
    ids = [f"c/test/{'good' if v == 0 else 'crack'}/{i:03d}" for i, v in enumerate(y)]
    loss = {"m1": 0.3, "m2": 0.8, "m3": 1.2}
    for model, sep in (("m1", 2.0), ("m2", 1.5), ("m3", 1.0)):
        srows, mrows = [], []
        base = rng.normal(size=y.size)
        conds = [("clean", np.nan, None, base + sep * y)]
        for f, k in (("blur", 1.0), ("noise", 2.0)):
            for lev in (1.0, 3.0):
                conds.append(
                    ("shift-noadapt", lev, f, base + (sep - k * loss[model] * lev / 3) * y)
                )
        for proto, lev, f, sc in conds:
            for sid, lab, v in zip(ids, y, sc, strict=True):
                srows.append({"category": "c", "model": model, "seed": 0, "protocol": proto,
                              "severity": lev, "split": "test", "sample_id": sid, "label": lab,
                              "defect_type": "good" if lab == 0 else "crack", "score": v,
                              "threshold": 1.0, "decision": int(v >= 1.0),
                              "pixel_threshold": np.nan, schema.SHIFT_COLUMN: f})  # fmt: skip
            from sklearn.metrics import roc_auc_score

            mrows.append(("c", model, 0, proto, lev, "image_auroc", roc_auc_score(y, sc), f))
        units[f"u_{model}"] = (
            pd.DataFrame(srows),
            pd.DataFrame(mrows, columns=[*schema.METRIC_COLUMNS, schema.SHIFT_COLUMN]),
        )
    manifest = {"config": {"suite": "mvtec-shift", "severity": [1, 3]}, "seeds": [0],
                "suite": {"name": "mvtec-shift", "hash": "x", "severity": [1, 3],
                          "hashes": {}}}  # fmt: skip
    return write_run(
        root / "pershift", units, manifest=manifest, protocols=("clean", "shift-noadapt")
    )


def test_report_of_a_per_shift_run(tmp_path):
    """A run with a ``shift`` column: heat-map rows per shift, mCE per shift, tables pool the
    shifts (each twin paired with its clean original, an image's rows resampled together)."""
    from shiftbench.analysis.report.build import build_report

    run = _per_shift_run(tmp_path)
    out = build_report(run, "markdown", n_resamples=200, baseline="m3",
                       figures=("heatmap", "severity", "scores"))  # fmt: skip
    heat = pd.read_csv(run / "tables" / "heatmap_image_auroc.csv")
    assert set(heat["shift"]) == {"blur", "noise"}
    ce = pd.read_csv(run / "tables" / "corruption_error.csv").set_index(["model", "shift"])
    assert ce.loc[("m3", "blur"), "ce"] == pytest.approx(1.0)
    assert (run / "tables" / "corruption_error.md").is_file()  # several shifts: a table
    rob = pd.read_csv(run / "tables" / "robustness.csv").set_index("model")
    assert rob.loc["m1", "drop"] < rob.loc["m3", "drop"]
    auroc = pd.read_csv(run / "tables" / "image_auroc.csv").set_index(["category", "model"])
    m = pd.read_parquet(run / "metrics.parquet")
    clean = m[(m["protocol"] == "clean") & (m["model"] == "m2")]["value"].iloc[0]
    assert auroc.loc[("c", "m2"), "clean"] == pytest.approx(clean)
    sc = pd.read_parquet(run / "scores.parquet")
    twins = sc[(sc["protocol"] == "shift-noadapt") & (sc["severity"] == 3) & (sc["model"] == "m2")]
    assert set(twins["shift"]) == {"blur", "noise"}
    from sklearn.metrics import roc_auc_score

    pooled = roc_auc_score(twins["label"], twins["score"])  # both shifts' twins, one pool
    assert auroc.loc[("c", "m2"), "shift-noadapt"] == pytest.approx(pooled)
    md = (run / "tables" / "image_auroc.md").read_text()
    assert "2 shifts pooled" in md
    assert "twins under every shift" in md and "cluster-bootstrap" in md  # images, not rows
    assert "p = 2/2^1)" in md  # LaTeX's 2^{1}, as plain text
    assert (run / "figures" / "heatmap_image_auroc.png").is_file()
    assert (run / "figures" / "severity_image_auroc.png").is_file()
    assert (run / "figures" / "scores_c_m1.png").is_file()
    assert not any("robustness" in s for s in out.skipped if "ranking" not in s)
