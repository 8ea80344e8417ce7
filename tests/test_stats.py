"""shiftbench.analysis.stats against independent references: brute-force DeLong, pROC's
published aSAH values, sklearn (weighted metrics), scipy (binomial test, bootstrap,
Friedman), hand-worked McNemar and Holm cases, Demšar's critical-difference table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from shiftbench.analysis import stats
from shiftbench.analysis.stats.transfer import threshold_transfer

REFERENCE = Path(__file__).parent / "data" / "reference" / "asah.csv"


# ---------------------------------------------------------------------------- DeLong


def brute_force_delong(labels, score_rows):
    """O(m n) DeLong (DeLong et al. 1988): the pairwise kernel psi = 1, 1/2, 0."""
    labels = np.asarray(labels)
    aucs, v10s, v01s = [], [], []
    for s in score_rows:
        x, y = s[labels == 1], s[labels == 0]
        psi = (x[:, None] > y[None, :]).astype(float) + 0.5 * (x[:, None] == y[None, :])
        aucs.append(psi.mean())
        v10s.append(psi.mean(axis=1))
        v01s.append(psi.mean(axis=0))
    m, n = len(v10s[0]), len(v01s[0])
    k = len(score_rows)
    cov = np.empty((k, k))
    for i in range(k):
        for j in range(k):
            s10 = np.sum((v10s[i] - aucs[i]) * (v10s[j] - aucs[j])) / (m - 1)
            s01 = np.sum((v01s[i] - aucs[i]) * (v01s[j] - aucs[j])) / (n - 1)
            cov[i, j] = s10 / m + s01 / n
    return np.array(aucs), cov


@pytest.mark.parametrize("case", range(8))
def test_delong_matches_brute_force_with_ties(case):
    rng = np.random.default_rng(case)
    n = int(rng.integers(12, 120))
    labels = rng.integers(0, 2, n)
    labels[:2] = [0, 1]
    # Coarse rounding gives many ties within and across classes and between the two models.
    a = np.round(rng.normal(size=n) + labels * rng.uniform(0, 2), 1 if case % 2 else 0)
    b = np.round(0.6 * a + rng.normal(size=n) + 0.5 * labels, 1)
    res = stats.delong(labels, a, b)
    aucs, cov = brute_force_delong(labels, [a, b])
    assert res.auc_a == pytest.approx(aucs[0], abs=1e-10)
    assert res.auc_b == pytest.approx(aucs[1], abs=1e-10)
    assert res.auc_a == pytest.approx(roc_auc_score(labels, a), abs=1e-12)
    assert res.var_a == pytest.approx(cov[0, 0], abs=1e-10)
    assert res.var_b == pytest.approx(cov[1, 1], abs=1e-10)
    assert res.covariance == pytest.approx(cov[0, 1], abs=1e-10)
    z = (aucs[0] - aucs[1]) / np.sqrt(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    assert res.z == pytest.approx(z, abs=1e-8)
    assert res.p_value == pytest.approx(2 * sps.norm.sf(abs(z)), abs=1e-10)


def test_delong_identical_scores_is_no_difference():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(20), np.ones(15)].astype(int)
    s = rng.normal(size=35) + y
    res = stats.delong(y, s, s)
    assert res.z == 0.0 and res.p_value == 1.0


def test_delong_matches_proc_published_asah_values():
    df = pd.read_csv(REFERENCE)
    y = (df["outcome"] == "Poor").astype(int).to_numpy()
    assert y.sum() == 41 and (1 - y).sum() == 72
    expected = [  # pROC test suite, README next to the CSV
        (
            "wfns",
            "s100b",
            0.823678861788618,
            0.731368563685637,
            2.20898359144091,
            0.0271757822291882,
        ),
        (
            "wfns",
            "ndka",
            0.823678861788618,
            0.611957994579946,
            2.79777591868904,
            0.00514557970691098,
        ),
        (
            "ndka",
            "s100b",
            0.611957994579946,
            0.731368563685637,
            -1.39077002573558,
            0.164295175223054,
        ),
    ]
    for a, b, auc_a, auc_b, z, p in expected:
        res = stats.delong(y, df[a], df[b])
        assert res.auc_a == pytest.approx(auc_a, abs=1e-12)
        assert res.auc_b == pytest.approx(auc_b, abs=1e-12)
        assert res.z == pytest.approx(z, abs=1e-10)
        assert res.p_value == pytest.approx(p, abs=1e-12)
    variances = {
        "wfns": 0.00146991470882363,
        "ndka": 0.0031908105493913,
        "s100b": 0.00266868245717244,
    }
    for name, var in variances.items():
        assert stats.delong(y, df[name], df["wfns"]).var_a == pytest.approx(var, abs=1e-14)
    auc, low, high = stats.delong_ci(y, df["ndka"], alpha=0.05)
    assert (low, high) == (
        pytest.approx(0.501244999271703, abs=1e-10),
        pytest.approx(0.722670989888189, abs=1e-10),
    )
    assert auc == pytest.approx(0.611957994579946, abs=1e-12)


# ---------------------------------------------------------------------------- metrics


@pytest.mark.parametrize("seed", range(4))
def test_weighted_metrics_equal_sklearn_sample_weight(seed):
    """A bootstrap resample is integer weights; sklearn's sample_weight is the reference."""
    rng = np.random.default_rng(seed)
    n = 60
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    s = np.round(rng.normal(size=n) + y, 1)  # ties
    d = (s > 0.4).astype(int)
    idx = stats.stratified_resample_indices(y, 5, rng)
    w = stats.resample_weights(idx, n)
    assert (w.sum(axis=1) == n).all()
    assert (w[:, y == 1].sum(axis=1) == y.sum()).all()  # stratified: class sizes kept
    got_auc = stats.auroc.weighted(y, s, w)
    got_ap = stats.average_precision.weighted(y, s, w)
    got_f1 = stats.f1_decisions.weighted(y, d, w)
    for b in range(5):
        assert got_auc[b] == pytest.approx(roc_auc_score(y, s, sample_weight=w[b]), abs=1e-12)
        assert got_ap[b] == pytest.approx(
            average_precision_score(y, s, sample_weight=w[b]), abs=1e-12
        )
        assert got_f1[b] == pytest.approx(f1_score(y, d, sample_weight=w[b]), abs=1e-12)
    assert stats.average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)


def test_vectorised_metrics_are_the_shiftbench_metrics_on_every_resample():
    """One definition per concept: calling a VectorisedMetric is the shiftbench.metrics
    function, and each weighted resample equals that function on the repeated images."""
    from shiftbench.metrics import image_auprc, image_auroc, threshold_metrics

    rng = np.random.default_rng(11)
    n = 50
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    s = np.round(rng.normal(size=n) + y, 1)
    d = (s > 0.3).astype(int)
    assert stats.auroc(y, s) == image_auroc(y, s)
    assert stats.average_precision(y, s) == image_auprc(y, s)
    assert stats.f1_decisions(y, d) == threshold_metrics(y, d, 0.5)["f1"]
    idx = stats.stratified_resample_indices(y, 6, rng)
    w = stats.resample_weights(idx, n)
    for metric, point in [
        (stats.auroc, image_auroc),
        (stats.average_precision, image_auprc),
        (stats.f1_decisions, lambda a, b: threshold_metrics(a, b, 0.5)["f1"]),
    ]:
        values = d if metric is stats.f1_decisions else s
        got = metric.weighted(y, values, w)
        want = [point(y[row], values[row]) for row in idx]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_undefined_f1_is_nan_not_zero_and_the_bootstrap_skips_it():
    """F1 without anomalous images is undefined: NaN (as in metrics.parquet), not the 0.0
    the analysis code used to return, so it cannot be averaged in as a zero."""
    from sklearn.exceptions import UndefinedMetricWarning

    y = np.zeros(8, dtype=int)
    d = np.array([0, 0, 1, 0, 0, 0, 0, 0])
    assert np.isnan(stats.f1_decisions(y, d))
    assert np.isnan(stats.f1_decisions(y, np.zeros(8))).all()
    assert np.isnan(stats.f1_decisions.weighted(y, d, np.ones((3, 8)))).all()
    ci = stats.bootstrap_ci(stats.f1_decisions, y, d, n_resamples=50, seed=0)
    assert np.isnan([ci.estimate, ci.low, ci.high, ci.se]).all()
    assert np.isnan(ci.replicates).all()
    # AUROC with one class: NaN with a warning, the same in analysis and metrics
    with pytest.warns(UndefinedMetricWarning):
        assert np.isnan(stats.auroc(y, np.arange(8.0)))
    # A weighted resample that lost a class is NaN, and intervals use the finite ones only.
    y2 = np.array([0, 0, 0, 1, 1])
    s2 = np.array([0.1, 0.4, 0.3, 0.8, 0.2])
    w = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [2, 1, 0, 1, 1.0]])
    got = stats.auroc.weighted(y2, s2, w)
    assert np.isnan(got[1]) and np.isfinite(got[[0, 2]]).all()
    assert stats.percentile_interval(got, 0.5) == stats.percentile_interval(got[[0, 2]], 0.5)
    assert stats._finite_sd(got) == pytest.approx(np.std(got[[0, 2]], ddof=1))
    assert np.isnan(stats.bootstrap_p_value(np.full(4, np.nan)))


def test_bca_ignores_undefined_jackknife_values():
    rng = np.random.default_rng(0)
    reps = rng.normal(0.8, 0.05, 500)
    jack = rng.normal(0.8, 0.01, 30)
    with_nan = np.r_[jack, np.nan, np.nan]
    assert stats.bca_interval(reps, 0.8, with_nan, 0.05) == stats.bca_interval(
        reps, 0.8, jack, 0.05
    )
    low, high = stats.bca_interval(reps, 0.8, np.full(5, np.nan), 0.05)
    assert low < 0.8 < high


# ---------------------------------------------------------------------------- bootstrap


def test_bootstrap_vectorised_equals_generic_path():
    """Same seed -> same resamples: the vectorised AUROC must give the generic loop's
    replicates exactly (the generic path calls sklearn once per resample)."""
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 80)
    s = np.round(rng.normal(size=80) + y, 1)
    other = s + rng.normal(scale=0.5, size=80)
    fast = stats.bootstrap_ci(stats.auroc, y, s, n_resamples=200, seed=3, paired_with=other)
    slow = stats.bootstrap_ci(
        lambda a, b: roc_auc_score(a, b), y, s, n_resamples=200, seed=3, paired_with=other
    )
    np.testing.assert_allclose(fast.replicates, slow.replicates, atol=1e-12)
    np.testing.assert_allclose(fast.difference.replicates, slow.difference.replicates, atol=1e-12)
    np.testing.assert_allclose(
        fast.difference.replicates, fast.replicates - fast.other.replicates, atol=1e-15
    )
    assert fast.estimate == pytest.approx(roc_auc_score(y, s))
    assert fast.difference.estimate == pytest.approx(roc_auc_score(y, s) - roc_auc_score(y, other))
    # sklearn's function is recognised and runs vectorised with identical results
    direct = stats.bootstrap_ci(roc_auc_score, y, s, n_resamples=200, seed=3)
    np.testing.assert_allclose(direct.replicates, fast.replicates, atol=0)
    bca_fast = stats.bootstrap_ci(stats.auroc, y, s, n_resamples=200, seed=3, method="bca")
    bca_slow = stats.bootstrap_ci(
        lambda a, b: roc_auc_score(a, b), y, s, n_resamples=200, seed=3, method="bca"
    )
    assert (bca_fast.low, bca_fast.high) == (
        pytest.approx(bca_slow.low),
        pytest.approx(bca_slow.high),
    )


def test_paired_difference_is_narrower_than_unpaired_and_detects_a_gap():
    rng = np.random.default_rng(2)
    n = 300
    y = rng.integers(0, 2, n)
    common = rng.normal(size=n)
    a = common + 1.5 * y
    b = common + rng.normal(scale=0.3, size=n) + 0.9 * y  # same images, a worse model
    res = stats.bootstrap_ci(stats.auroc, y, a, n_resamples=1000, seed=0, paired_with=b)
    assert res.difference.low > 0  # the gap is detected
    unpaired_se = np.hypot(res.se, res.other.se)
    assert res.difference.se < 0.7 * unpaired_se  # pairing removes the shared image noise
    assert stats.bootstrap_p_value(res.difference.replicates) < 0.01


def test_bca_formula_equals_scipy_on_scipys_own_replicates():
    """Feed scipy's bootstrap distribution to our BCa: the interval must equal scipy's."""
    rng = np.random.default_rng(4)
    x = rng.exponential(size=60)  # skewed: BCa differs visibly from percentile
    res = sps.bootstrap((x,), np.var, n_resamples=3000, method="BCa", random_state=0)
    jack = np.array([np.var(np.delete(x, i)) for i in range(x.size)])
    low, high = stats.bca_interval(res.bootstrap_distribution, float(np.var(x)), jack, 0.05)
    assert low == pytest.approx(res.confidence_interval.low, rel=1e-10)
    assert high == pytest.approx(res.confidence_interval.high, rel=1e-10)
    p_low, p_high = stats.percentile_interval(res.bootstrap_distribution, 0.05)
    assert high - p_high > 0.02  # the correction is not a no-op here


def test_bca_end_to_end_close_to_scipy_on_a_single_stratum():
    """One label = one stratum: our bootstrap is then an ordinary bootstrap (different
    random draws from scipy's -> a tolerance well below the BCa/percentile gap)."""
    rng = np.random.default_rng(4)
    x = rng.exponential(size=200)
    y = np.zeros(200, dtype=int)
    ours = stats.bootstrap_ci(
        lambda _, s: float(np.mean(s)), y, x, n_resamples=4000, seed=0, method="bca"
    )
    ref = sps.bootstrap(
        (x,), np.mean, n_resamples=4000, method="BCa", random_state=0
    ).confidence_interval
    # Seed-to-seed spread of these bounds is ~0.01-0.02 (se ~0.08): a sanity check; the
    # formula itself is pinned exactly by the test above.
    assert ours.low == pytest.approx(ref.low, abs=0.03)
    assert ours.high == pytest.approx(ref.high, abs=0.03)


def _coverage(n_rep: int, n_resamples: int, method: str) -> float:
    # Binormal model: normals N(0,1), anomalies N(d,1) -> AUC = Phi(d / sqrt 2).
    d = 1.0
    true_auc = sps.norm.cdf(d / np.sqrt(2))
    rng = np.random.default_rng(123)
    hits = 0
    for r in range(n_rep):
        y = np.r_[np.zeros(60), np.ones(40)].astype(int)
        s = rng.normal(size=100) + d * y
        ci = stats.bootstrap_ci(stats.auroc, y, s, n_resamples=n_resamples, seed=r, method=method)
        hits += ci.low <= true_auc <= ci.high
    return hits / n_rep


def test_bootstrap_coverage_is_about_95_percent():
    cov = _coverage(200, 500, "percentile")
    # 200 repetitions: binomial sd ~ 1.5%; a broken interval (no stratification is fine,
    # but e.g. a 90% or 99% level by mistake) falls outside this band.
    assert 0.90 <= cov <= 0.99, cov


@pytest.mark.slow
@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_bootstrap_coverage_is_about_95_percent_large(method):
    cov = _coverage(1000, 2000, method)
    assert 0.93 <= cov <= 0.97, cov


# ---------------------------------------------------------------------------- McNemar


def _decisions(n_both, n_only_a, n_only_b, n_neither):
    """Decision vectors with the given correctness table; labels alternate 0/1."""
    n = n_both + n_only_a + n_only_b + n_neither
    labels = np.arange(n) % 2
    ok_a = np.r_[np.ones(n_both + n_only_a), np.zeros(n_only_b + n_neither)].astype(bool)
    ok_b = np.r_[
        np.ones(n_both), np.zeros(n_only_a), np.ones(n_only_b), np.zeros(n_neither)
    ].astype(bool)
    return np.where(ok_a, labels, 1 - labels), np.where(ok_b, labels, 1 - labels), labels


def test_mcnemar_exact_equals_binomial_test():
    da, db, y = _decisions(30, 3, 9, 5)
    res = stats.mcnemar(da, db, y)
    assert (res.b, res.c) == (3, 9) and res.exact
    assert res.table.tolist() == [[30, 3], [9, 5]]
    assert res.p_value == pytest.approx(sps.binomtest(3, 12, 0.5).pvalue, abs=1e-12)
    # hand-worked: 2 * P(X <= 3), X ~ Bin(12, 1/2) = 2 * (1 + 12 + 66 + 220) / 4096
    assert res.p_value == pytest.approx(2 * 299 / 4096, abs=1e-12)


def test_mcnemar_chi_square_with_continuity_correction_for_many_discordant():
    da, db, y = _decisions(50, 40, 20, 10)
    res = stats.mcnemar(da, db, y)
    assert not res.exact
    chi2 = (abs(40 - 20) - 1) ** 2 / 60  # hand-worked: 361 / 60
    assert res.statistic == pytest.approx(chi2)
    assert res.p_value == pytest.approx(sps.chi2.sf(chi2, 1))


def test_mcnemar_no_discordant_pairs():
    da, db, y = _decisions(10, 0, 0, 4)
    assert stats.mcnemar(da, db, y).p_value == 1.0


# ---------------------------------------------------------------------------- rank tests, Holm


def test_holm_hand_worked():
    reject, adj = stats.holm([0.01, 0.04, 0.03, 0.2, np.nan], alpha=0.05)
    # sorted 0.01*4=0.04; 0.03*3=0.09; 0.04*2=0.08 -> monotone 0.09; 0.2*1=0.2
    np.testing.assert_allclose(adj[:4], [0.04, 0.09, 0.09, 0.2])
    assert np.isnan(adj[4])
    assert reject.tolist() == [True, False, False, False, False]


@pytest.mark.parametrize(
    "k,q", [(2, 1.960), (3, 2.343), (4, 2.569), (5, 2.728), (6, 2.850), (10, 3.164)]
)
def test_critical_difference_matches_demsar_table(k, q):
    n = 14
    assert stats.critical_difference(k, n, 0.05) == pytest.approx(
        q * np.sqrt(k * (k + 1) / (6 * n)), abs=2e-3
    )


def test_friedman_nemenyi_against_hand_formula():
    rng = np.random.default_rng(5)
    data = pd.DataFrame(
        rng.normal(size=(12, 4)) + np.array([0.0, 0.3, 0.9, 1.2]), columns=list("abcd")
    )
    res = stats.friedman_nemenyi(data)
    k, n = 4, 12
    ranks = (-data).rank(axis=1).mean()
    chi2 = (
        12 * n / (k * (k + 1)) * (np.sum(ranks**2) - k * (k + 1) ** 2 / 4)
    )  # Demšar eq. 3, no ties
    assert res.statistic == pytest.approx(chi2)
    assert res.p_value == pytest.approx(sps.chi2.sf(chi2, k - 1))
    assert res.average_ranks.index[0] == "d"  # highest values -> rank 1
    assert res.average_ranks["d"] == pytest.approx(ranks["d"])
    assert res.critical_difference == pytest.approx(stats.critical_difference(4, 12))
    p = res.nemenyi_p
    assert np.allclose(p.to_numpy(), p.to_numpy().T)
    # Nemenyi: |R_i - R_j| / sqrt(k(k+1)/(6N)) ~ studentized range / sqrt 2
    z = abs(ranks["a"] - ranks["d"]) / np.sqrt(k * (k + 1) / (6 * n))
    assert p.loc["a", "d"] == pytest.approx(
        sps.studentized_range.sf(z * np.sqrt(2), k, np.inf), abs=1e-4
    )
    with pytest.raises(ValueError, match="at least 3"):
        stats.friedman_nemenyi(data[["a", "b"]])


def test_wilcoxon_wraps_scipy_and_handles_no_difference():
    a = np.array([0.91, 0.85, 0.77, 0.95, 0.88, 0.69, 0.93, 0.8])
    b = a - np.array([0.05, 0.02, 0.08, 0.01, 0.04, 0.06, 0.03, 0.07])
    res = stats.wilcoxon(a, b)
    # all 8 differences positive: exact two-sided p = 2 / 2^8
    assert res.p_value == pytest.approx(2 / 256)
    assert res.n == 8 and res.median_difference == pytest.approx(0.045)
    assert stats.wilcoxon(a, a).p_value == 1.0


# ---------------------------------------------------------------------------- threshold transfer


def test_threshold_transfer_hand_worked():
    y = np.array([0, 0, 0, 0, 1, 1])
    clean = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.9])
    shift = clean + np.array([0.5, 0.5, 0.1, 0.1, 0.0, 0.0])
    r = threshold_transfer(y, clean, shift, threshold=0.5)
    assert (r.fpr_clean, r.tpr_clean) == (0.25, 1.0)
    assert (r.fpr_shift, r.tpr_shift) == (0.75, 1.0)  # 0.6, 0.7, 0.7 >= 0.5 among normals
    assert r.f1_shift == pytest.approx(f1_score(y, shift >= 0.5))
    assert r.median_shift == pytest.approx(np.median(shift[:4]) - np.median(clean[:4]))
    ks = sps.ks_2samp(clean[:4], shift[:4])
    assert (r.ks_statistic, r.ks_p) == (pytest.approx(ks.statistic), pytest.approx(ks.pvalue))
    assert r.degenerate == ""
    everything = threshold_transfer(y, clean, shift + 10, threshold=0.5)
    assert everything.degenerate == "all-anomalous"
    p = 2 / 6
    assert (
        everything.f1_shift
        == pytest.approx(2 * p / (1 + p))
        == pytest.approx(everything.f1_all_anomalous)
    )
    assert threshold_transfer(y, clean, shift - 10, threshold=0.5).degenerate == "all-normal"


def test_threshold_transfer_undefined_rates_are_nan_and_averaged_out():
    """Without anomalous images F1 and TPR are undefined: NaN (shiftbench.metrics), where the
    old local F1 said 0.0; a pandas mean over seeds then averages only the defined ones."""
    y = np.zeros(4, dtype=int)
    clean = np.array([0.1, 0.2, 0.3, 0.6])
    r = threshold_transfer(y, clean, clean + 0.5, threshold=0.5)
    assert np.isnan(r.f1_clean) and np.isnan(r.f1_shift) and np.isnan(r.tpr_shift)
    assert (r.fpr_clean, r.fpr_shift) == (0.25, 1.0)
    assert r.degenerate == "all-anomalous"
    y2 = np.array([0, 0, 1, 1])
    ok = threshold_transfer(y2, clean, clean, threshold=0.25)
    assert ok.f1_clean == pytest.approx(f1_score(y2, clean >= 0.25))
    seeds = pd.DataFrame([{"f1_shift": r.f1_shift}, {"f1_shift": ok.f1_shift}])
    assert seeds["f1_shift"].mean() == pytest.approx(ok.f1_shift)  # not (0 + f1) / 2
    none = threshold_transfer(np.array([1, 0]), np.array([0.1, 0.9]), np.array([0.1, 0.9]), 0.5)
    assert (none.fpr_clean, none.tpr_clean, none.f1_clean) == (1.0, 0.0, 0.0)
