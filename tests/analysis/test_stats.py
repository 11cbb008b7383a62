"""sysa_core.analysis.stats at small n: the exact permutation p against a brute-force enumeration
(and 1/12 for perfectly ranked data at n = 4), Holm's adjustment against a hand computation,
the coverage of the interval on synthetic bivariate normal data at n = 8 and n = 20, what the
data could detect, the partial (pooled) Spearman, and the sentence that claims only what survives
the correction."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from sysa_core.analysis import stats


def _bivariate(n: int, r: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x = rng.standard_normal(n)
    y = r * x + np.sqrt(1 - r * r) * rng.standard_normal(n)
    return x, y


def spearman_of_normal(r: float) -> float:
    """Population Spearman correlation of a bivariate normal with Pearson r: (6/pi) asin(r/2)."""
    return 6.0 / np.pi * np.arcsin(r / 2.0)


def _brute_force_p(x, y) -> float:
    """Two-sided p of Spearman's rho from every permutation of y, independently of the package:
    Pearson's r of the ranks for each of the n! orders."""
    rx, ry = st.rankdata(x), st.rankdata(y)
    perms = np.array(list(itertools.permutations(range(len(y)))))
    rp = ry[perms]
    rxc, rpc = rx - rx.mean(), rp - rp.mean(axis=1, keepdims=True)
    null = (rpc @ rxc) / np.sqrt((rxc @ rxc) * (rpc ** 2).sum(axis=1))
    rho = st.spearmanr(x, y).statistic
    return float(np.mean(np.abs(null) >= abs(rho) - 1e-12))


def test_perfectly_ranked_data_at_n_4_give_one_twelfth():
    rho, p = stats.spearman([1, 2, 3, 4], [10, 20, 30, 40])
    assert rho == pytest.approx(1.0) and p == pytest.approx(1 / 12, abs=1e-12)
    assert stats.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx((-1.0, 1 / 12))
    assert stats.critical_rho(4) is None and stats.detectable_rho(4) is None  # no n = 4 result reaches 0.05


@pytest.mark.parametrize("n", [3, 4, 5, 6, 7])
def test_exact_p_matches_a_brute_force_enumeration(n):
    rng = np.random.default_rng(n)
    for _ in range(3):
        x, y = rng.standard_normal(n), rng.standard_normal(n)
        assert stats.exact(n)
        assert stats.spearman(x, y)[1] == pytest.approx(_brute_force_p(x, y), abs=1e-12)
    ties = [1.0, 2.0, 2.0, 3.0, 4.0, 5.0, 6.0][:n]
    y = rng.standard_normal(n)
    if np.ptp(ties) > 0:
        assert stats.spearman(ties, y)[1] == pytest.approx(_brute_force_p(ties, y), abs=1e-12)


def test_monte_carlo_p_beyond_the_exact_range_is_seeded_and_close_to_the_t_approximation():
    x, y = _bivariate(20, 0.5, np.random.default_rng(3))
    assert not stats.exact(20)
    rho, p = stats.spearman(x, y, seed=1)
    assert (rho, p) == stats.spearman(x, y, seed=1)
    assert rho == pytest.approx(st.spearmanr(x, y).statistic)
    assert p == pytest.approx(st.spearmanr(x, y).pvalue, abs=0.01)


def test_missing_pairs_are_dropped_and_degenerate_data_give_nan():
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0, np.nan, 7.0])
    y = np.array([2.0, 1.0, 4.0, 3.0, 6.0, 0.0, None], dtype=object)
    assert stats.spearman(x, y) == stats.spearman([1, 2, 3, 4, 5], [2, 1, 4, 3, 6])
    assert all(np.isnan(stats.spearman([1, 2], [3, 4])))  # too few pairs
    assert all(np.isnan(stats.spearman([1, 1, 1, 1], [1, 2, 3, 4])))  # a constant


def test_holm_matches_a_hand_computation():
    p = [0.01, 0.04, 0.03, 0.005, np.nan]
    # sorted: 0.005 (x4) = 0.02, 0.01 (x3) = 0.03, 0.03 (x2) = 0.06, 0.04 (x1) = 0.04 -> monotone 0.06
    np.testing.assert_allclose(stats.holm(p), [0.03, 0.06, 0.06, 0.02, np.nan])
    assert stats.holm([0.5, 0.9])[1] == 1.0  # capped at 1


@pytest.mark.parametrize("n", [8, 20])
@pytest.mark.parametrize("r", [0.0, 0.6])
def test_the_interval_covers_the_true_correlation_at_the_nominal_rate(n, r):
    """500 seeded synthetic datasets: the 95 % interval covers the population Spearman correlation
    within 3 points of 95 % at n = 8 and n = 20."""
    rng = np.random.default_rng(100 * n + int(10 * r))
    truth = spearman_of_normal(r)
    hits = 0
    for _ in range(500):
        x, y = _bivariate(n, r, rng)
        lo, hi = stats.interval(st.spearmanr(x, y).statistic, n)
        hits += lo <= truth <= hi
    assert abs(hits / 500 - 0.95) <= 0.03, hits / 500


def test_no_interval_where_its_coverage_does_not_hold():
    assert all(np.isnan(stats.interval(0.9, stats.MIN_N_INTERVAL - 1)))
    lo, hi = stats.interval(0.9, stats.MIN_N_INTERVAL)
    assert -1 <= lo < 0.9 < hi <= 1


def test_what_the_data_could_detect():
    # the critical |rho| at n = 20 is about 0.44 (STYLE), the exact one at n = 5 is 1 (p = 2/120)
    assert stats.critical_rho(20) == pytest.approx(0.447, abs=0.005)
    assert stats.critical_rho(5) == pytest.approx(1.0)
    assert stats.detectable_rho(20) == pytest.approx(0.60, abs=0.01)
    assert stats.seeds_needed(0.5) == 31  # 3 + 1.06 ((1.960 + 0.842) / atanh 0.5)^2 = 30.6
    assert stats.seeds_needed(0.5, alpha=0.05 / 10) > stats.seeds_needed(0.5)
    ps = stats.power_summary(20, 10)
    assert ps["seeds_for_0.5_holm"] == stats.seeds_needed(0.5, alpha=0.005)


def test_partial_spearman_removes_the_ensemble_offset():
    """Two ensembles whose precision differs by a constant offset and whose measure differs too:
    pooled, rho is large from the offset alone; with the ensemble as covariate it is the
    within-ensemble relationship (none here), with a permutation p from within-ensemble pairings."""
    rng = np.random.default_rng(4)
    x = np.r_[rng.standard_normal(5), rng.standard_normal(5) + 10]
    y = np.r_[rng.standard_normal(5), rng.standard_normal(5) + 10]
    g = ["a"] * 5 + ["b"] * 5
    assert stats.spearman(x, y)[0] > 0.5
    rho, p, n = stats.partial_spearman(x, y, g)
    assert n == 10 and abs(rho) < stats.spearman(x, y)[0] and p > 0.05
    # a within-ensemble relationship is found
    y2 = np.r_[x[:5] * 2, x[5:] * 2] + 1e-3 * rng.standard_normal(10)
    rho2, p2, _ = stats.partial_spearman(x, y2, g)
    assert rho2 == pytest.approx(1.0) and p2 <= 2 / (120 * 120) + 1e-12


def test_a_sampled_partial_spearman_p_is_never_zero():
    """Beyond N_RESAMPLES orderings the p comes from a sample of them: a perfect relationship that no
    sampled ordering matches still gets p = 1 / (B + 1), the smallest valid one, not 0."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal(20)
    g = ["a"] * 10 + ["b"] * 10  # (10!)^2 orderings: sampled
    rho, p, n = stats.partial_spearman(x, 2 * x, g)
    assert rho == pytest.approx(1.0) and p == pytest.approx(1 / (stats.N_RESAMPLES + 1))






def test_correlation_matrix():
    df = pd.DataFrame({"a": [1, 2, 3, 4, 5], "b": [5, 4, 3, 2, 1], "c": [1, 3, 2, 5, 4]})
    m = stats.correlation_matrix(df, ["a", "b", "c"])
    assert m.loc["a", "b"] == pytest.approx(-1.0) and m.loc["a", "a"] == 1.0




@pytest.mark.parametrize("n_x, n_y", [(4, 4), (5, 3), (6, 6)])
def test_mann_whitney_p_is_scipys_exact_p_without_ties(n_x, n_y):
    """The independent reference: scipy.stats.mannwhitneyu(method="exact") (valid without ties)."""
    from scipy.stats import mannwhitneyu

    rng = np.random.default_rng(n_x * 10 + n_y)
    for shift in (0.0, 1.0, 3.0):
        x, y = rng.standard_normal(n_x) + shift, rng.standard_normal(n_y)
        r = stats.mann_whitney(x, y)
        ref = mannwhitneyu(x, y, alternative="two-sided", method="exact")
        assert r["exact"] and r["U"] == ref.statistic
        assert r["p"] == pytest.approx(ref.pvalue, rel=1e-9)
        assert r["prob_greater"] == pytest.approx(ref.statistic / (n_x * n_y))


def test_mann_whitney_at_4_and_4_reaches_2_over_70_at_best():
    r = stats.mann_whitney([5, 6, 7, 8], [1, 2, 3, 4])
    assert r["p"] == pytest.approx(2 / 70) and r["prob_greater"] == 1.0
    t = stats.compare_groups(pd.DataFrame({"m": [5, 6, 7, 8], "k": [1, 2, 3, 4]}),
                             pd.DataFrame({"m": [1, 2, 3, 4], "k": [5, 6, 7, 8]}), ["m", "k"])
    assert t["p_holm"].tolist() == pytest.approx([4 / 70, 4 / 70]) and not t["significant"].any()
