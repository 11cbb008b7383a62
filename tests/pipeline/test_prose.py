"""sysa_core.pipeline.prose: the report's sentences follow the data (the answer to the original
question, the statistics' summary, the overlaps, the Lyapunov exponents) and claim only what holds."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import population_table as _ensemble

from sysa_core.analysis import alignment, population, stats
from sysa_core.pipeline import prose


def _answer(main, control):
    t, power = population.statistics(main)
    return prose.answer(main, control, t, power, None, population.compare_ensembles(main, control))
def test_the_answer_follows_the_data():
    main = _ensemble(8, 1.0, 0.85)
    inherited = _answer(main, _ensemble(8, 0.02, 0.03))[1:]  # after the line on who does the task
    assert "inherited from its initialisation, not learned" in inherited[0] and "0.85" in inherited[0]
    assert "exact Mann–Whitney p = 0.00016" in inherited[0]  # 2 / C(16, 8): every main seed above every control one
    learned = _answer(main, _ensemble(8, 0.02, 0.6))[1:]
    assert "part of the cosine is learned" in learned[0] and learned[0] != inherited[0]
    small = _answer(_ensemble(3, 1.0, 0.85), _ensemble(3, 0.02, 0.03))[1:]
    assert "cannot establish the difference at 3 and 3 seeds" in small[0] and "more seeds are needed" in small[0]
    assert "In-range precision: median" in inherited[1]
    assert "cannot be told without the control ensemble" in _answer(main, None)[1]
    assert "All 8 main networks' memory is a transient" in inherited[3] and "control: 8 of 8" in inherited[3]
    mixed = main.copy()
    mixed.loc[:3, "memory_mechanism"] = "attractor"
    assert "memory differs by the mechanism rule" in _answer(mixed, None)[3]
    assert "no relation of any measure to precision is detected" in inherited[2]
    strong = main.copy()
    strong["plateau_state_speed_per_s"] = 1 + 1e3 * strong["precision_trained_range"]  # rho = 1 at n = 8
    said = _answer(strong, None)[2]
    assert said.startswith("At n = 8, after Holm's correction") and "relative state speed" in said
    assert "31 seeds for one test" in inherited[4]
    # what the tests could detect, for one test and for the first claim under Holm (8 measures here)
    power = population.statistics(main)[1]
    assert (f"one test reaches p < 0.05 only from |rho| ≈ {prose._up(power['critical_rho'])} on" in inherited[4]
            and f"the first claim needs p < 0.05/{power['tests']}" in inherited[4])
    assert "every control network's cosine moved by at most" in inherited[0]
    control = _ensemble(8, 0.02, 0.03)
    most = float((control["weight_correlation"] - control["weight_correlation_init"]).abs().max())
    said = float(inherited[0].split("moved by at most ")[1].split(":")[0])
    assert most <= said <= most * 1.1  # a bound, never below the value


def test_a_bound_is_rounded_up_at_its_significant_digits():
    assert prose.ceil_sig(0.04546) == pytest.approx(0.046) and prose.ceil_sig(0.045) == pytest.approx(0.045)
    assert prose.ceil_sig(123.1, 2) == pytest.approx(130) and prose.ceil_sig(-0.04546) == pytest.approx(-0.046)
    assert prose.ceil_sig(0.0) == 0.0 and f"{prose.ceil_sig(2.0e-7):.1e}" == "2.0e-07"


def test_the_answer_reads_out_the_closest_relationship_the_memory_span_and_the_one_G():
    main = _ensemble(4, 1.0, 0.85)
    main["weight_correlation"] = [0.9, 0.8, 0.7, 0.6]
    main["precision_trained_range"] = [1e-4, 2e-4, 3e-4, 4e-4]  # rho = -1: the larger cosine, the smaller error
    main["sweep_trained_window_ms"] = 600.0
    main["sweep_horizon_ms"] = 3000.0
    main["sweep_hold_ms_in_range_min"] = [620.0, 650.0, 700.0, 640.0]
    lines = _answer(main, None)
    rel = next(line for line in lines if "no relationship" in line or "cannot be detected" in line)
    assert "The closest rank relationship is I–w cosine (rho = -1.00, p = 0.083" in rel
    assert "larger values with more precise networks (a lower error), which at this n is not evidence" in rel
    mech = next(line for line in lines if "mechanism rule" in line)
    assert ("from the cost onset, within a 10 % band of the target until it first leaves it (0 s: outside it at the "
            "cost onset, though it may enter it later): the shortest-lived in-range plateau of each main network holds for 0.62 to 0.7 s, against a trained window of 0.6 s") in mech
    assert "sweep's end" not in mech and "median over all" not in mech
    main["sweep_hold_ms_median"] = [900.0, 1200.0, 800.0, 1000.0]
    mech = next(line for line in _answer(main, None) if "mechanism rule" in line)
    assert "0.62 to 0.7 s, and the median over all the sweep's pulses for 0.8 to 1.2 s, against" in mech
    main["sweep_hold_ms_in_range_min"] = [3000.0, 650.0, 700.0, 640.0]
    mech = next(line for line in _answer(main, None) if "mechanism rule" in line)
    assert "0.64 to 3 s" in mech and "still on target at the sweep's end (3 s) counts as leaving there" in mech
    assert "answer holds for this G" in lines[-1] and "model.G_per_seed=true" in lines[-1]
    own = main.assign(network_key=[f"k{i}" for i in range(4)], network_G=[f"G{i}" for i in range(4)])
    assert "answer holds for this G" not in _answer(own, None)[-1]
def test_the_overlaps_are_read_out_per_kind_of_pair():
    labels = ["main 1", "main 2", "main 3", "control 1", "control 2"]
    m = np.full((5, 5), 0.1)
    m[:3, :3] = [[1, 0.2, 0.3], [0.2, 1, 0.4], [0.3, 0.4, 1]]
    m[3, 4] = m[4, 3] = 0.05
    np.fill_diagonal(m, 1.0)
    said = prose.overlap_summary(pd.DataFrame(m, index=labels, columns=labels), 3, 200)
    assert said.startswith("Overlap of the leading 3 memory PCs")
    assert "main–main 0.3 (0.2–0.4), 3 pairs; control–control 0.05, 1 pair; main–control 0.1, 6 pairs" in said
    assert "k/N = 0.015" in said

def test_the_table_and_its_sentence_claim_only_what_survives_holm():
    rng = np.random.default_rng(5)
    n = 20
    x = rng.standard_normal(n)
    df = pd.DataFrame({"precision": x, "strong": x + 0.05 * rng.standard_normal(n), "noise": rng.standard_normal(n)})
    t = stats.against(df, ["strong", "noise"])
    assert list(t.columns) == ["measure", "target", "n", "rho", "p", "exact", "ci_low", "ci_high", "p_holm",
                               "significant"]
    assert t.set_index("measure").loc["strong", "significant"] and not t.set_index("measure").loc["noise", "significant"]
    np.testing.assert_allclose(t["p_holm"], stats.holm(t["p"]))
    sentence = prose.summary_sentence(t, {"strong": "the strong measure"})
    assert "the strong measure" in sentence and "noise" not in sentence.split(";")[0]
def test_the_sentence_claims_nothing_at_n_4_whatever_the_data():
    rng = np.random.default_rng(6)
    for _ in range(20):
        x = rng.standard_normal(4)
        df = pd.DataFrame({"precision": x, "a": x, "b": -x, "c": rng.standard_normal(4)})
        t = stats.against(df, ["a", "b", "c"])
        assert not t["significant"].any()
        sentence = prose.summary_sentence(t)
        assert sentence.startswith("At n = 4, no relationship with precision can be detected"), sentence
        assert "1/12" in sentence and "descriptive" in sentence
    perfect = stats.against(pd.DataFrame({"precision": [1, 2, 3, 4], "a": [1, 2, 3, 4]}), ["a"])
    assert perfect.loc[0, "p"] == pytest.approx(1 / 12) and not perfect.loc[0, "significant"]
    assert np.isnan(perfect.loc[0, "ci_low"])  # no interval at n = 4
def test_a_tied_smallest_p_is_not_given_to_one_measure():
    x = np.arange(8.0)
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"precision": x, "a": rng.permutation(8), "b": rng.permutation(8)})
    df["c"] = df["a"]  # a and c tie
    t = stats.against(df, ["a", "c"])
    sentence = prose.summary_sentence(t, {"a": "AAA", "c": "CCC"})
    assert "AAA" not in sentence and "CCC" not in sentence and "every adjusted p is" in sentence
def test_the_lyapunov_phrase_reads_the_sign_only_beyond_the_interval():
    assert prose.lyapunov_phrase(0.5, 0.2, 5).startswith("not distinguishable from zero")  # t(4) = 2.78
    assert prose.lyapunov_phrase(-1.0, 0.2, 5).startswith("negative")
    assert prose.lyapunov_phrase(1.0, 0.2, 5).startswith("positive (± 0.56 /s")


def test_the_lyapunov_interval_is_widened_by_how_far_other_starting_vectors_land():
    """An exponent beyond its blocks' interval (0.6 against ± 0.49) is not read as signed when a second
    starting vector's value lies 0.544 /s from it."""
    from scipy.stats import t

    assert prose.lyapunov_phrase(0.6, 0.176, 5).startswith("positive (± 0.49 /s")
    assert prose.lyapunov_phrase(0.6, 0.176, 5, 0.544).startswith("not distinguishable from zero (± 1.03 /s")
    assert prose.lyapunov_halfwidth(0.176, 5, 0.544) == pytest.approx(float(t.ppf(0.975, 4)) * 0.176 + 0.544)
    assert "widened by the 0.54 /s by which other starting tangent vectors' values differ from it at most" in prose.lyapunov_phrase(
        0.6, 0.176, 5, 0.544)


def test_the_blocks_are_said_against_the_lag_after_which_the_log_growth_decorrelates():
    """Blocks longer than the lag: how many times (rounded down); not longer: that the interval may be
    too narrow. Without both lengths the phrase names the blocks only."""
    assert prose.blocks_phrase(3, 2500 / 3, 250) == ("3 blocks of 833 ms, at least 3.3× the 250 ms after which the log growth "
                                                     "per step first decorrelates")
    assert "5 blocks of 4000 ms, at least 22× the 180 ms" in prose.blocks_phrase(5, 4000, 180)
    assert "at least 1.0× the 830 ms" in prose.blocks_phrase(3, 833.3, 830)  # rounded down, not up to 1.1
    assert prose.blocks_phrase(3, 833.3, 900) == ("3 blocks of 833 ms, not longer than the 900 ms after which the log "
                                                  "growth per step first decorrelates")
    # blocks under twice the lag: correlated neighbours, said after the widening
    assert prose.blocks_caveat(2500 / 3, 250) == "" and prose.blocks_caveat(800, 400) == ""
    assert "may be too narrow" in prose.blocks_caveat(799, 400) and "may be too narrow" in prose.blocks_caveat(833, 900)
    wide = prose.lyapunov_phrase(1.0, 0.1, 3, 0.3, 2500 / 3, 250)
    assert "a 95 % interval from 3 blocks of 833 ms, at least 3.3× the 250 ms" in wide and "too narrow" not in wide
    near = prose.lyapunov_phrase(1.0, 0.1, 3, 0.3, 2500 / 3, 524)
    assert ("(± 0.73 /s, a 95 % interval from 3 blocks of 833 ms, at least 1.5× the 524 ms after which the log growth "
            "per step first decorrelates, widened by the 0.3 /s by which other starting tangent vectors' values differ "
            "from it at most; blocks "
            "shorter than 2× that lag are correlated neighbours, so the interval may be too narrow)") in near
    assert "a 95 % interval from 3 blocks of the window" in prose.lyapunov_phrase(1.0, 0.1, 3, None, 2500 / 3, None)


def test_the_spontaneous_phrase_gives_the_exponent_its_interval_and_its_blocks():
    m = dict(network_lyapunov_spontaneous_per_s=0.516, network_lyapunov_spontaneous_halfwidth_per_s=0.254,
             network_lyapunov_spontaneous_blocks=5, network_lyapunov_spontaneous_window_ms=20000.0,
             network_lyapunov_spontaneous_transient_ms=20000.0, network_lyapunov_spontaneous_vectors=4,
             network_lyapunov_spontaneous_spread_per_s=0.0099, network_lyapunov_spontaneous_decorrelation_ms=310.0,
             network_regime="chaos")
    assert prose.spontaneous_phrase(m) == (
        "chaotic: largest Lyapunov exponent 0.52 ± 0.25 /s (95 % interval from 5 blocks of 4000 ms, at least 12× the 310 ms "
        "after which the log growth per step first decorrelates, of a 20 s window after a 20 s transient, widened "
        "by the spread over 4 starting tangent vectors, 0.01 /s)")
    m.update(network_lyapunov_spontaneous_decorrelation_ms=4500.0, network_regime="fixed point")
    assert prose.spontaneous_phrase(m).startswith("at rest at a fixed point; largest Lyapunov exponent 0.52 ± 0.25 /s "
                                                  "(95 % interval from 5 blocks of 4000 ms, not longer than the 4500 ms")
    m.update(network_regime="limit cycle", network_regime_period_ms=3791.35)
    assert prose.spontaneous_phrase(m).startswith("a limit cycle (period 3.79 s: the state comes back within 1 % of its "
                                                  "trajectory's spread after one period, from each of 5 reference "
                                                  "times); largest Lyapunov exponent 0.52")


def test_the_memory_exponents_are_counted_beyond_their_intervals_and_their_sign_tested_across_networks():
    """20 networks, 40 in-range exponents (50 and 150 ms; 300 ms is out of range and not counted), each
    interval t(2) * se + spread computed here; the sign across networks from their in-range means in an
    exact two-sided sign test (scipy's binomial test here), said of G's flow where they share G."""
    from scipy.stats import binomtest, t

    from sysa_core import config

    cfg = config.resolve("paper")
    rng = np.random.default_rng(3)
    n = 20
    se = rng.uniform(0.1, 0.3, size=(n, 3))
    spread = rng.uniform(0.0, 0.4, size=(n, 3))
    half = float(t.ppf(0.975, 2)) * se + spread
    lam = 0.5 * half * rng.uniform(0.2, 1, size=(n, 3))  # inside, and positive
    lam[:, 2] = 10.0  # the 300 ms trial: beyond, but out of range
    lam[0, 0] = 1.01 * half[0, 0]
    lam[1, 1] = -1.01 * half[1, 1]
    df = pd.DataFrame({"seed": range(1, n + 1), "lyapunov_blocks": 3, "network_G": "g"})
    for j, d in enumerate((50, 150, 300)):
        df[f"lyapunov_{d}ms"], df[f"lyapunov_se_{d}ms"], df[f"lyapunov_spread_{d}ms"] = lam[:, j], se[:, j], spread[:, j]
    df["lyapunov_in_range_per_s"] = lam[:, :2].mean(axis=1)
    df["lyapunov_in_range_halfwidth_per_s"] = half[:, :2].mean(axis=1)
    df.loc[2, "lyapunov_in_range_per_s"] = -1.01 * df.loc[2, "lyapunov_in_range_halfwidth_per_s"]  # beyond its own
    pos = int((df["lyapunov_in_range_per_s"] > 0).sum())
    text = prose.memory_exponents_summary(df, cfg)
    assert ("Averaged over its in-range trials (its interval the mean of its trials' half-widths, at least 95 % "
            "whatever their correlation), a network's exponent has an interval that excludes 0 in 1 of the 20 networks.") in text
    assert "may be too narrow" not in text  # no lags in the table: nothing said of them
    lags = df.assign(lyapunov_lag_50ms=400.0, lyapunov_lag_150ms=np.where(np.arange(n) < 3, 300.0, 500.0))
    assert ", and 17 of the 40 may be too narrow: their blocks are shorter than 2× the lag" in (
        prose.memory_exponents_summary(lags, cfg))  # 833 ms blocks: 400 and 500 ms lags, not 300
    assert "In this run 2 of the 40 in-range memory exponents have 95 % intervals that exclude 0 (1 positive, 1 negative)" in text
    assert f"half-widths {prose.span(half[:, :2].ravel(), '#.2g', ' to ')} /s" in text
    assert [prose.sig2_span(v) for v in ([0.4, 2.6], [0.27, 2.27], [0.3, 12.3], [0.5, 0.5])] == [
        "0.40 to 2.6", "0.27 to 2.3", "0.30 to 12", "0.50"]
    wide = df.assign(lyapunov_se_150ms=np.where(np.arange(n) == 3, 5.0, df["lyapunov_se_150ms"]))
    assert f"to {float(t.ppf(0.975, 2)) * 5.0 + spread[3, 1]:.0f} /s)" in prose.memory_exponents_summary(wide, cfg)  # 23, not 23.
    assert f"up to {prose.ceil_sig(spread[:, :2].max()):.2g} /s" in text
    p = binomtest(pos, n, 0.5).pvalue
    assert f"the in-range mean is positive in {pos} of the 20 networks" in text and f"sign test p = {p:.2g}" in text
    assert "a property of G's flow along the memory trajectories that training on it gives" in text and "2.5 s window" in text
    assert "the test says nothing of other draws of G" in text
    mixed = df.assign(lyapunov_in_range_per_s=np.where(np.arange(n) % 2, 0.3, -0.3), network_G=[f"g{i}" for i in range(n)])
    other = prose.memory_exponents_summary(mixed, cfg)
    assert "no sign dominates: the in-range mean is positive in 10 and negative in 10 of the 20 networks" in other
    assert "G's flow" not in other
    assert prose.memory_exponents_summary(df[["seed", "lyapunov_blocks"]], cfg) == ""
    df.loc[0, "lyapunov_50ms"] = df.loc[1, "lyapunov_150ms"] = 0.0
    df["lyapunov_in_range_per_s"] = 0.0
    none = prose.memory_exponents_summary(df, cfg)
    assert " In this run none of the 40 in-range memory exponents has a 95 % interval that excludes 0; " in none
    assert "none of the 20 networks' exponents has an interval that excludes 0: one by one, no network's sign" in none


def test_two_digits_keep_their_trailing_zeros():
    assert [prose.digits2(x) for x in (0.701, 0.996, 0.0123, 1.034, 12.5)] == ["0.70", "1.0", "0.012", "1.03", "12.50"]


def test_the_lyapunov_phrase_takes_students_t_with_one_degree_of_freedom_fewer_than_blocks():
    from scipy.stats import t

    for blocks in (2, 3, 5, 8, 20):
        half = float(t.ppf(0.975, blocks - 1)) * 0.2
        said = f"{half:.2f}" if half >= 1 else f"{half:#.2g}"  # two decimals from 1 on
        assert f"± {said} /s" in prose.lyapunov_phrase(10.0, 0.2, blocks), blocks


def test_the_readout_alignment_is_said_against_chance_with_its_counts():
    main = _ensemble(4, 1.0, 0.85).assign(output_topk90_fraction=[1e-4, 2e-4, 5e-4, 1e-3],
                                           output_topk90_null_mean=[0.01] * 4, output_topk90_null_pct=[0.0, 0.3, 1.2, 9.0],
                                           output_topk90_k=[4, 5, 5, 6])
    text = prose.readout_alignment(main, None)
    assert "3 of the 4 networks lie at or below the 5th percentile" in text
    assert not text.startswith("The readout avoids")  # not every network: no general claim
    assert "0.01 to 0.1 times" in text and "4 to 6 memory PCs" in text
    assert "no separate finding" in text and "w'Cw is the output's variance within the window" in text
    every = main.assign(output_topk90_null_pct=[0.0, 0.3, 1.2, 4.0])
    assert prose.readout_alignment(every, None).startswith("The readout avoids")
    assert "all 4 networks lie at or below the 5th percentile" in prose.readout_alignment(every, None)
    none_above = prose.readout_alignment(main.assign(output_topk90_null_pct=[0.0] * 4), None)
    assert "all 4 networks lie below every one of the random vectors" in none_above and "5th" not in none_above
    assert prose.readout_alignment(_ensemble(4, 1.0, 0.85), None) == ""  # without the measures, nothing
    assert "cosine" not in text  # without the coding cosines or the configuration, nothing of them


def test_the_coding_summary_counts_the_networks_aligned_beyond_chance_after_bonferroni():
    """Each network's exact p (the share of random directions at least as far from orthogonal,
    computed here from the density of a random direction's cosine) is compared with 0.05 / n; the
    untrained cosines stand beside the trained ones, and the fitted pulses are named."""
    from scipy import integrate, special

    from sysa_core import config

    cfg = config.resolve("paper")
    n = cfg.model.hidden_size
    density = lambda c: (1 - c * c) ** ((n - 3) / 2) / special.beta(0.5, (n - 1) / 2)  # noqa: E731
    cos = [0.2, 0.25, 0.15, 0.1]  # p = 6.4e-6, 1.4e-8, 7.6e-4, 0.025: the last above 0.05 / 4
    p = [2 * integrate.quad(density, c, 1)[0] for c in cos]
    assert sum(pi < 0.05 / 4 for pi in p) == 3
    main = _ensemble(4, 1.0, 0.85).assign(output_topk90_fraction=[1e-4] * 4, output_topk90_null_mean=[0.01] * 4,
                                           output_topk90_null_pct=[0.0] * 4, output_topk90_k=[4] * 4,
                                           readout_coding_cosine=cos, readout_coding_cosine_untrained=[0.01, -0.05, 0.0, 0.03])
    text = prose.readout_alignment(main, None, cfg)
    assert "over the 50 and 150 ms test pulses: with two, their difference)" in text
    # the untrained cosines' exact p: 0.26 at |cos| 0.05 (the largest), so none is beyond chance at 0.05 / 4
    assert 2 * integrate.quad(density, 0.05, 1)[0] > 0.05 / 4
    assert ("w lies at cosine 0.10 to 0.25 (before training -0.05 to 0.03, the untrained w against the untrained "
            "network's own direction; beyond chance in none)") in text
    strong = prose.readout_alignment(main.assign(readout_coding_cosine_untrained=[0.01, -0.2, 0.0, 0.25]), None, cfg)
    assert "beyond chance in 2)" in strong  # p = 1.4e-8 and 6.4e-6 above, both below 0.05 / 4
    assert "fell" not in text
    assert "significantly beyond chance in 3 of the 4 networks (exact two-sided p < 0.05/4" in text
    assert "sees: 1 to 6.2 % of its square" in text and "no separate finding" in text
    assert "significantly beyond chance in all 4 networks" in prose.readout_alignment(main.assign(readout_coding_cosine=[0.2] * 4), None, cfg)
    assert "significantly beyond chance in none of them" in prose.readout_alignment(main.assign(readout_coding_cosine=[0.01] * 4), None, cfg)
    assert "cosine" not in prose.readout_alignment(main, None)  # without the configuration, nothing of it
    assert "falls as" not in text and "|cos|" not in text.split("times a random")[0]
    mixed = prose.readout_alignment(main.assign(readout_coding_cosine=[0.2, -0.25, 0.15, -0.01]), None, cfg)
    ratios = " to ".join(format(abs(x) / alignment.cosine_chance(n), ".2g") for x in (-0.01, -0.25))
    assert f"w lies at cosine -0.25 to 0.20 (before training -0.05 to 0.03, the untrained w against the untrained network's own direction; beyond chance in none), |cos| {ratios} times a random" in mixed
    untrained_up = prose.readout_alignment(main.assign(readout_coding_cosine_untrained=[0.01, 0.05, 0.0, 0.03]), None, cfg)
    assert "(before training 0.00 to 0.05, the untrained" in untrained_up
    assert "in 2 of the 4 w·u < 0: the window's mean output falls as the pulse lengthens, against what the task asks" in mixed
    coding = mixed[mixed.index("Against the direction"):]
    assert "no separate finding" not in coding and "sees: 0.01 to 6.2 % of its square" in coding
    assert "in all of them w·u < 0" in prose.readout_alignment(main.assign(readout_coding_cosine=[-0.2] * 4), None, cfg)


def test_measures_that_rank_the_networks_alike_are_counted_as_one_order():
    """The table tests the cosine, the state speed and the PCs the readout needs; a measure ranked in
    reverse gives the same |rho|, so it counts as the same order."""
    main = _ensemble(4, 1.0, 0.85).assign(weight_correlation=[0.1, 0.2, 0.3, 0.4],
                                          plateau_state_speed_per_s=[4.0, 3.0, 2.0, 1.0],  # the cosine's, reversed
                                          readout_pcs_needed=[10, 30, 20, 40])
    t, _ = population.statistics(main)
    assert sorted(t["measure"]) == ["plateau_state_speed_per_s", "readout_pcs_needed", "weight_correlation"]
    assert prose.shared_orders(main, t) == (" The 3 measures order the 4 networks in only 2 distinct ways (a "
                                            "reversed order counted as the same), so their tests overlap; Holm's "
                                            "correction holds whatever their dependence.")
    one = main.assign(readout_pcs_needed=[1, 2, 3, 4])
    assert "in only 1 distinct way (" in prose.shared_orders(one, population.statistics(one)[0])
    apart = main.assign(plateau_state_speed_per_s=[2.0, 1.0, 4.0, 3.0])
    assert prose.shared_orders(apart, population.statistics(apart)[0]) == ""  # three orders: nothing to say
    assert prose.shared_orders(main.iloc[:2], t) == ""  # fewer than 3 networks
    assert any("distinct way" in line and "rho" in line for line in _answer(main, None))  # in the relationships line


def test_how_far_I_and_w_turned_is_said_with_the_angle_and_the_gap_to_ws_cosine():
    main = _ensemble(4, 1.0, 0.55).assign(input_drift_cosine=[0.93, 0.94, 0.95, 0.96],
                                          output_drift_cosine=[0.60, 0.61, 0.62, 0.63],
                                          weight_correlation=[0.52, 0.55, 0.57, 0.60])
    text = prose._drift(main)
    angle = np.degrees(np.arccos(0.945))  # the median cosine's angle: 19.1 degrees
    assert f"I turns less than w in training (cos(I, I at initialisation): median 0.945, about {angle:.0f}°" in text
    assert "cos(w, w at initialisation): median 0.615)" in text
    assert "(the two differ by 0.03 to 0.08 seed by seed)" in text  # |0.60 - 0.63| .. |0.52 - 0.60|
    assert "barely" not in text
    turned = prose._drift(main.assign(input_drift_cosine=[0.5] * 4))
    assert turned.startswith(" I turns at least as far as w") and "close to" not in turned


def test_a_limit_cycle_is_said_with_its_evidence():
    from sysa_core.analysis import regime

    m = dict(network_n_fixed_points=7, network_n_stable_fixed_points=0, network_regime="limit cycle",
             network_regime_period_ms=3791.35)
    text = prose._structure_of_G(_ensemble(4, 1.0, 0.85).assign(**m), None)
    said = (f"a limit cycle (period 3.79 s: the state comes back within {100 * regime.RETURN_TOL:g} % of its "
            f"trajectory's spread after one period, from each of {regime.N_REFERENCES} reference times)")
    assert f"its spontaneous activity is {said}" in text and "within 1 % " in said


def test_the_structure_of_G_is_said_once_for_a_shared_G_and_not_for_a_G_per_seed():
    census = dict(network_n_fixed_points=27, network_n_stable_fixed_points=0, network_regime="chaos")
    shared = _ensemble(4, 1.0, 0.85).assign(**census)
    text = prose._structure_of_G(shared, _ensemble(4, 0.0, 0.0).assign(**census))
    assert "All 8 networks here share one G" in text and "none of the 27 fixed points" in text
    assert "chaotic" in text and "one observation of this G, not one per seed" in text
    assert prose._structure_of_G(_ensemble(4, 1.0, 0.85, key="per-seed").assign(**census), None) == ""
    near = dict(memory_n_fixed_points=[2, 6, 3, 4], memory_n_stable_fixed_points=[0, 1, 0, 0])
    text = prose._structure_of_G(shared.assign(**near), None)
    assert ("fixed points that searches started from each network's memory states reach (2 to 6 per network), "
            "1 in all are stable") in text
    text = prose._structure_of_G(shared.assign(**near).assign(memory_n_stable_fixed_points=0), None)
    assert "(2 to 6 per network), none is stable" in text


def test_the_answer_first_says_how_many_networks_do_the_task_and_claims_no_hold_when_none_does():
    main = _ensemble(4, 1.0, 0.85).assign(converged=[False] * 4, plateau_held_trained_window=[0.5] * 4,
                                           improvement_over_untrained=[300.0] * 4)
    control = _ensemble(4, 0.0, 0.0).assign(converged=[False, False, True, True],
                                             plateau_held_trained_window=[0.5, 1.0, 1.0, 1.0],
                                             improvement_over_untrained=[200.0, 5.0, 300.0, 300.0])
    lines = _answer(main, control)
    assert lines[0].startswith("Doing the task (converged, every in-range plateau held through the trained window, "
                               "in-range precision at least 10× better than untrained): 0 of 4 main networks")
    assert "4 of 4 not converged; 4 of 4 plateaus not held" in lines[0]
    assert "2 of 4 control networks (2 of 4 not converged; 1 of 4 plateaus not held; 1 of 4 barely learned)" in lines[0]
    assert "2 of 4 control networks do the task with an I–w cosine near 0" in lines[2]
    assert not any("hold the plateau" in line for line in lines)
    none = control.assign(converged=[False] * 4)
    said = _answer(main, none)[2]
    assert "3 of 4 control networks are at least 10× more precise in range than before training" in said
    assert "none does the task" in said


def test_the_answer_names_the_closest_measure_once():
    """Below significance, the closest relationship gets its own sentence: the summary before it does
    not name the same measure again."""
    rng = np.random.default_rng(3)
    x = np.arange(12.0)
    df = pd.DataFrame({"precision": x, "a": x + rng.normal(0, 6, 12), "b": rng.permutation(12)})
    t = stats.against(df, ["a", "b"])
    assert not t["significant"].any()
    labels = {"a": "AAA", "b": "BBB"}
    line = prose.summary_sentence(t, labels, name_smallest=False) + prose._largest_rho(t, labels)
    closest = "AAA" if abs(t.set_index("measure").loc["a", "rho"]) > abs(t.set_index("measure").loc["b", "rho"]) else "BBB"
    assert line.count(closest) == 1 and "The closest rank relationship is " + closest in line
    assert "(the smallest adjusted p: " in prose.summary_sentence(t, labels)  # named when asked to


def test_the_answer_counts_the_holds_of_each_in_range_test_pulse():
    """With the run's configuration, the first line counts per in-range test pulse the networks whose
    plateau stays on target for the whole trained window (a pulse outside the range is not counted)."""
    from sysa_core import config

    cfg = config.resolve("paper")
    window = cfg.trained_window_ms
    assert [cfg.in_trained_range(d) for d in (50, 150, 300)] == [True, True, False]
    main = _ensemble(4, 1.0, 0.85).assign(plateau_hold_50ms=[0.0, 120.0, window - 1, window],
                                           plateau_hold_150ms=[window] * 4, plateau_hold_300ms=[window] * 4)
    control = _ensemble(3, 0.0, 0.0).assign(plateau_hold_50ms=[0.0] * 3, plateau_hold_150ms=[window, 0.0, 9e3],
                                             plateau_hold_300ms=[0.0] * 3)
    t, power = population.statistics(main)
    line = prose.answer(main, control, t, power, None, population.compare_ensembles(main, control), cfg)[0]
    assert line.endswith("Held through the trained window (2.5 s), by in-range test pulse: 50 ms by 1 of 4 main "
                         "(control 0 of 3); 150 ms by 4 of 4 main (control 2 of 3).")
    assert "Held through" not in _answer(main, control)[0]  # no configuration, no counts


def test_the_answer_counts_the_holds_at_the_papers_step_for_a_coarser_one():
    """A run trained with a 10 ms step: after the holds at that step, the holds of the same test
    pulses simulated again at 1 ms (the fine_step_hold_<d>ms columns), in-range pulses only."""
    from sysa_core import config

    cfg = config.resolve("quick")
    window = cfg.trained_window_ms
    held = dict(plateau_hold_50ms=[window] * 4, plateau_hold_150ms=[window] * 4, plateau_hold_300ms=[window] * 4)
    main = _ensemble(4, 1.0, 0.85).assign(**held, fine_step_hold_50ms=[0.0, 514.0, window, 0.0],
                                           fine_step_hold_150ms=[window, 0.0, window, window],
                                           fine_step_hold_300ms=[window] * 4,
                                           fine_step_held_trained_window=[0.5, 0.0, 1.0, 0.5])
    # control seed 2's check is missing: it counts in neither the held nor the n
    control = _ensemble(2, 0.0, 0.0).assign(**{k: v[:2] for k, v in held.items()}, fine_step_hold_50ms=[0.0, None],
                                             fine_step_hold_150ms=[1441.0, None], fine_step_hold_300ms=[0.0, None],
                                             fine_step_held_trained_window=[0.0, None])
    t, power = population.statistics(main)
    line = prose.answer(main, control, t, power, None, population.compare_ensembles(main, control), cfg)[0]
    assert "better than untrained, at the 10 ms step they were trained with): " in line
    assert line.endswith("150 ms by 4 of 4 main (control 2 of 2). Simulated again with the paper's 1 ms step (they "
                         "were trained with 10 ms), held through the window: 50 ms by 1 of 4 main (control 0 of 1); "
                         "150 ms by 3 of 4 main (control 0 of 1). At 1 ms, 1 of 4 networks of the main ensemble and "
                         "0 of 1 networks of the control hold every in-range plateau.")
    paper = prose.answer(main, control, t, power, None, population.compare_ensembles(main, control),
                         config.resolve("paper"))[0]
    assert "Simulated again" not in paper  # at the paper's own step there is nothing finer to report
    assert "step they were trained with" not in paper
    no_fine = main.drop(columns=[c for c in main if c.startswith("fine_step_")])
    assert "Simulated again" not in prose.answer(no_fine, None, t, power, None, None, cfg)[0]


def _fine_step_metrics(window: float) -> dict:
    """A quick model's metrics as far as the fine-step check reads them: 50 and 150 ms in range."""
    return {"fine_step_dt_ms": 1.0, "relative_error_trained_range": 0.025, "fine_step_relative_error_trained_range": 0.13,
            "plateau_hold_ms_by_duration": {"50": window + 120.0, "150": window, "300": 10.0},
            "fine_step_hold_ms_by_duration": {"50": 0.0, "150": window, "300": window},
            "relative_error_by_duration": {"50": 0.03, "150": 0.02, "300": 0.06},
            "fine_step_relative_error_by_duration": {"50": 0.15, "150": 0.1, "300": 0.04},
            "fine_step_trained_step_plateau_by_duration": {"50": 0.352, "150": 1.047, "300": 1.96},
            "fine_step_plateau_by_duration": {"50": 0.35, "150": 1.14, "300": 2.04},
            "fine_step_held_trained_window": 0.5}


def test_the_fine_step_sentence_counts_each_step_apart_and_explains_only_a_loss():
    from sysa_core import config

    cfg = config.resolve("quick")
    m = _fine_step_metrics(cfg.trained_window_ms)
    assert prose.fine_step_counts(m, cfg) == (2, 2, 1)  # 300 ms is outside the trained range
    text = prose.fine_step_phrase(m, cfg)
    assert ("1 ms step (the same onsets and pulses in ms): 1 of the 2 in-range plateaus stay within 10 % of their "
            "target through the trained window (at 10 ms: 2), and the in-range relative error is 13 % (at 10 ms: 2.5 %)"
            ". What holds at 10 ms but not at 1 ms") in text
    same = {**m, "fine_step_hold_ms_by_duration": {"50": cfg.trained_window_ms, "150": cfg.trained_window_ms,
                                                   "300": 0.0}}
    assert prose.fine_step_counts(same, cfg) == (2, 2, 2) and "What holds" not in prose.fine_step_phrase(same, cfg)


def test_the_fine_step_table_and_index_cell_show_both_steps_with_the_cap_named():
    from sysa_core import config
    from sysa_core.pipeline import report, tables

    cfg = config.resolve("quick")
    m = _fine_step_metrics(cfg.trained_window_ms)
    df = tables.fine_step(m, cfg).data
    row = df.loc[50]
    assert row["mean at 10 ms (a.u.)"] == 0.352 and row["mean at 1 ms (a.u.)"] == 0.35
    assert row["relative error at 10 ms (RMS / target)"] == 0.03 and row["relative error at 1 ms (RMS / target)"] == 0.15
    assert row["on target at 10 ms (ms after cost onset; 2000 = the whole window)"] == 2000  # capped, as at 1 ms
    assert row["on target at 1 ms (ms after cost onset; 2000 = the whole window)"] == 0.0
    assert report.fine_step_cell(m) == "0.5 held, 0.13 relative" and report.fine_step_cell({}) == "–"


def test_what_the_tests_could_detect_is_said_for_one_test_and_under_holm():
    text = prose.sensitivity(stats.power_summary(20, 6))
    # one test at n = 20: the exact two-sided critical |rho| is 0.447, so 0.45 rounded up; at 0.05/6: 0.5725
    assert "one test reaches p < 0.05 only from |rho| ≈ 0.45 on, and detects |rho| = 0.61 with 80 % power" in text
    assert "across the 6 tests the first claim needs p < 0.05/6, |rho| ≈ 0.58 or more" in text
    assert "|rho| = 0.71 is detected with 80 % power there" in text
    assert "Holm" not in prose.sensitivity(stats.power_summary(20, 1))
    assert prose.sensitivity(stats.power_summary(4, 6)) == "no correlation can reach p < 0.05 at n = 4"


def test_a_permutation_p_at_its_floor_is_a_bound():
    floor = stats.smallest_p(20)  # 2 / 50,001: no permutation reached the observed rho
    assert floor == pytest.approx(4e-5, rel=1e-3)
    assert stats.p_text(floor, 20) == "p ≤ 4e-05" and stats.p_text(2 * floor, 20, "Holm p", floor) == "Holm p ≤ 8e-05"
    assert stats.p_text(0.25, 20) == "p = 0.25" and stats.p_text(2 / 120, 5) == "p = 0.017"  # exact at n = 5
    x = np.arange(20.0)
    rho, p = stats.spearman(x, x + 0.01 * np.sin(x))  # a perfect rank relation: no pairing reaches it
    assert rho == 1.0 and p == pytest.approx(floor)


def test_a_share_of_the_norm_near_one_is_told_apart_from_exactly_one():
    assert prose.share_of_norm(0.694) == "69%" and prose.share_of_norm(1.0) == "100%"
    assert prose.share_of_norm(1.003) == "100.3%" and prose.share_of_norm(0.996) == "99.6%"
    assert prose.share_of_norm(1.02) == "102%"


def test_a_share_of_the_norm_given_as_a_bound_is_rounded_down():
    """'at least 89 %' for 0.897, never 'at least 90 %', which would claim more than the value."""
    assert prose.share_of_norm(0.897) == "90%" and prose.share_of_norm(0.897, down=True) == "89%"
    assert prose.share_of_norm(0.29, down=True) == "29%" and prose.share_of_norm(0.9999, down=True) == "99%"
    assert prose.share_of_norm(1.0, down=True) == "100%"
