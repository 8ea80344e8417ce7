"""Synthetic-to-real statistics: rank correlations of AUROC drops against scipy, the
category bootstrap against a hand-worked case, the few-points warning against Kendall's
exact null distribution."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kendalltau, spearmanr

from shiftbench.analysis.stats import syn2real as s2r
from shiftbench.results import schema


def _metrics(rng: np.random.Generator, n_categories=6, models=("patchcore", "ae"), seeds=(0, 1)):
    """A tidy metrics table: clean, two synthetic shifts and a real target, with the
    stored ``mean`` category (which must be left out) and random AUROCs."""
    rows = []
    cats = [f"cat{i}" for i in range(n_categories)]
    conditions = [
        ("clean", np.nan, None),
        ("shift-noadapt", 3.0, "cc_fog"),
        ("shift-noadapt", 3.0, "cc_snow"),
        ("shift-noadapt", np.nan, "target:lamp2"),
        ("shift-adapt", np.nan, "target:lamp2"),  # not a drop: must be ignored
    ]
    for cat in [*cats, schema.MEAN_CATEGORY]:
        for model in models:
            for seed in seeds:
                for protocol, severity, shift in conditions:
                    for metric in ("image_auroc", "image_f1"):
                        value = rng.uniform(0.5, 1.0)
                        rows.append((cat, model, seed, protocol, severity, shift, metric, value))
    cols = ["category", "model", "seed", "protocol", "severity", "shift", "metric", "value"]
    return pd.DataFrame(rows, columns=cols)


def _drop(m: pd.DataFrame, model: str, cat: str, shift: str | None) -> float:
    """clean minus shift-noadapt image AUROC, each the mean over seeds, by hand."""
    a = m[(m["metric"] == "image_auroc") & (m["model"] == model) & (m["category"] == cat)]
    clean = a[a["protocol"] == "clean"]["value"].mean()
    shifted = a[(a["protocol"] == "shift-noadapt") & (a["shift"] == shift)]["value"].mean()
    return clean - shifted


def test_table_matches_scipy_on_the_same_drops():
    m = _metrics(np.random.default_rng(3))
    table, points = s2r.syn2real_table(m, n_resamples=200, seed=1)
    assert list(table["shift"]) == ["cc_fog", "cc_snow"]
    assert set(table["target"]) == {"target:lamp2"}
    models, cats = ("ae", "patchcore"), [f"cat{i}" for i in range(6)]
    for row in table.itertuples():
        syn = [_drop(m, mo, c, row.shift) for c in cats for mo in models]
        real = [_drop(m, mo, c, "target:lamp2") for c in cats for mo in models]
        assert row.n_points == 12 and row.n_categories == 6 and row.n_models == 2
        assert row.kendall_tau == pytest.approx(kendalltau(syn, real).statistic, abs=1e-12)
        assert row.spearman_rho == pytest.approx(spearmanr(syn, real).statistic, abs=1e-12)
        diff = np.abs(np.array(syn) - np.array(real))
        assert row.mean_abs_diff == pytest.approx(diff.mean(), abs=1e-12)
        assert row.mean_synthetic_drop == pytest.approx(np.mean(syn), abs=1e-12)
        assert row.mean_real_drop == pytest.approx(np.mean(real), abs=1e-12)
        assert row.kendall_lo <= row.kendall_tau <= row.kendall_hi
        assert -1 <= row.spearman_lo <= row.spearman_hi <= 1
        p = points[points["shift"] == row.shift]
        assert len(p) == 12 and set(p["category"]) == set(cats)  # the stored mean left out


def test_no_table_without_a_real_target_or_a_shift_column():
    m = _metrics(np.random.default_rng(0))
    table, points = s2r.syn2real_table(m[m["shift"] != "target:lamp2"], n_resamples=100)
    assert table.empty and points.empty
    table, _ = s2r.syn2real_table(m.drop(columns="shift"), n_resamples=100)
    assert table.empty


def test_category_bootstrap_hand_worked():
    """Three categories, one point each: A=(1, 1), B=(2, 3), C=(3, 2).
    Draw (A, B, C): pairs AB, AC concordant, BC discordant: tau = (2 - 1) / 3 = 1/3;
    Spearman: rank differences (0, 1, 1): rho = 1 - 6 * 2 / (3 * 8) = 1/2.
    Draw (A, A, B): the AA pair is tied in both, AB twice concordant: tau-b =
    2 / sqrt(2 * 2) = 1; ranks (1.5, 1.5, 3) on both sides: rho = 1.
    Draw (B, C, C): BC twice discordant, CC tied: tau-b = -2 / sqrt(2 * 2) = -1, rho = -1.
    Draw (A, A, A): constant drops: NaN."""
    x, y, cats = [1.0, 2.0, 3.0], [1.0, 3.0, 2.0], ["A", "B", "C"]
    draws = np.array([[0, 1, 2], [0, 0, 1], [1, 2, 2], [0, 0, 0]])
    reps = s2r.category_bootstrap(x, y, cats, indices=draws)
    np.testing.assert_allclose(reps[:3, 0], [1 / 3, 1.0, -1.0], atol=1e-12)
    np.testing.assert_allclose(reps[:3, 1], [0.5, 1.0, -1.0], atol=1e-12)
    assert np.isnan(reps[3]).all()


def test_category_bootstrap_keeps_every_point_of_a_drawn_category():
    """Two points per category; drawing category 'b' twice takes both its points twice."""
    x = [0.1, 0.4, 0.2, 0.9, 0.5, 0.3]
    y = [0.2, 0.1, 0.3, 0.8, 0.6, 0.2]
    cats = ["a", "a", "b", "b", "c", "c"]
    reps = s2r.category_bootstrap(x, y, cats, indices=np.array([[1, 1, 2]]))
    rows = [2, 3, 2, 3, 4, 5]
    xs, ys = np.take(x, rows), np.take(y, rows)
    assert reps[0, 0] == pytest.approx(kendalltau(xs, ys).statistic, abs=1e-12)
    assert reps[0, 1] == pytest.approx(spearmanr(xs, ys).statistic, abs=1e-12)


def test_category_bootstrap_is_seeded():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=12), rng.normal(size=12)
    cats = np.repeat(["a", "b", "c", "d"], 3)
    drawn = s2r.category_bootstrap(x, y, cats, n_resamples=40, seed=11)
    want = np.random.default_rng(11).integers(0, 4, (40, 4))
    np.testing.assert_array_equal(drawn, s2r.category_bootstrap(x, y, cats, indices=want))
    other = s2r.category_bootstrap(x, y, cats, n_resamples=40, seed=12)
    assert not np.array_equal(np.nan_to_num(drawn), np.nan_to_num(other))


def test_null_sd_is_kendalls_exact_null_spread():
    """The spread of tau over all 5! equally likely rankings (no association)."""
    n = 5
    taus = [kendalltau(range(n), p).statistic for p in itertools.permutations(range(n))]
    assert s2r.null_sd(n) == pytest.approx(np.std(taus), abs=1e-12)
    assert s2r.null_sd(10) == pytest.approx(math.sqrt(50 / 810))


def test_few_points_warning_states_the_numbers():
    assert s2r.few_points_warning(s2r.MIN_POINTS, s2r.MIN_CATEGORIES) is None
    text = s2r.few_points_warning(4, 2)
    assert "only 4 model" in text and "fewer than 10" in text and "only 2 categories" in text
    assert "$\\pm$0.96" in text  # 1.96 * sqrt(2 * 13 / (9 * 4 * 3))
    assert "$\\pm$1.00" in s2r.few_points_warning(2, 2)  # 1.96 at n = 2: capped at 1
    assert "$\\pm$0.52" in s2r.few_points_warning(9, 5)
    assert "fewer than 5" not in s2r.few_points_warning(9, 5)
