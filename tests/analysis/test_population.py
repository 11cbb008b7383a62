"""sysa_core.analysis.population: which measures are per-seed predictors (no G-only measure when
the seeds share G), and the answer to the original question, which follows the data."""
from __future__ import annotations

import numpy as np
import pandas as pd

from sysa_core.analysis import population, stats


def _ensemble(n: int, cos_init: float, cos: float, mech: str = "transient", key: str = "k") -> pd.DataFrame:
    rng = np.random.default_rng(int(100 * cos) + n)
    return pd.DataFrame({
        "seed": np.arange(1, n + 1), "precision": rng.uniform(0.01, 0.04, n),
        "precision_trained_range": rng.uniform(1e-3, 3e-3, n),
        "weight_correlation_init": np.full(n, cos_init), "weight_correlation": cos + 0.01 * rng.standard_normal(n),
        "pr_input_l1": rng.uniform(300, 340, n), "memory_mechanism": [mech] * n,
        "plateau_state_speed_per_s": rng.uniform(1, 2, n), "readout_pcs_needed": rng.integers(15, 25, n),
        "network_dim_spontaneous": np.full(n, 3.9) if key == "k" else rng.uniform(3, 4, n),
        "network_key": [key] * n if key == "k" else [f"k{i}" for i in range(n)],
        "network_G": [key] * n if key == "k" else [f"G{i}" for i in range(n)]})


def test_no_G_only_measure_is_a_predictor_when_the_seeds_share_G():
    shared = _ensemble(6, 1.0, 0.85)
    assert population.shares_G(shared)
    assert "network_dim_spontaneous" not in population.predictors(shared)
    assert {"weight_correlation", "plateau_state_speed_per_s"} <= set(population.predictors(shared))
    assert "pr_input_l1" not in population.predictors(shared)  # shown, not tested (population.UNTESTED)
    own = _ensemble(6, 1.0, 0.85, key="own")
    assert not population.shares_G(own) and "network_dim_spontaneous" in population.predictors(own)
    # seeds analysed by two versions of the code: two cache keys, one G
    mixed = shared.assign(network_key=["old"] * 3 + ["new"] * 3)
    assert population.shares_G(mixed) and "network_dim_spontaneous" not in population.predictors(mixed)


def _answer(main, control):
    t, power = population.statistics(main)
    return population.answer(main, control, t, power, None, population.compare_ensembles(main, control))


def test_the_answer_follows_the_data():
    main = _ensemble(8, 1.0, 0.85)
    inherited = _answer(main, _ensemble(8, 0.02, 0.03))
    assert "inherited from its initialisation, not learned" in inherited[0] and "0.85" in inherited[0]
    assert "exact Mann–Whitney p = 0.00016" in inherited[0]  # 2 / C(16, 8): every main seed above every control one
    learned = _answer(main, _ensemble(8, 0.02, 0.6))
    assert "part of the cosine is learned" in learned[0] and learned[0] != inherited[0]
    small = _answer(_ensemble(3, 1.0, 0.85), _ensemble(3, 0.02, 0.03))
    assert "cannot establish the difference at 3 and 3 seeds" in small[0] and "more seeds are needed" in small[0]
    assert "In-range precision: median" in inherited[1]
    assert "cannot be told without the control ensemble" in _answer(main, None)[0]
    assert "All 8 main networks hold the plateau by a transient" in inherited[3] and "control: 8 of 8" in inherited[3]
    mixed = main.copy()
    mixed.loc[:3, "memory_mechanism"] = "attractor"
    assert "differ in how they hold" in _answer(mixed, None)[2]
    assert "no measure is related to precision" in inherited[2]
    strong = main.copy()
    strong["plateau_state_speed_per_s"] = 1 + 1e3 * strong["precision_trained_range"]  # rho = 1 at n = 8
    said = _answer(strong, None)[1]
    assert said.startswith("At n = 8, after Holm's correction") and "relative state speed" in said
    assert "31 seeds for one test" in inherited[4]


def test_statistics_test_every_predictor_against_in_range_precision():
    main = _ensemble(8, 1.0, 0.85)
    t, power = population.statistics(main)
    meas = population.predictors(main)
    assert len(t) == len(meas) and set(t["target"]) == {"precision_trained_range"}
    np.testing.assert_allclose(t["p_holm"], stats.holm(t["p"]))
    assert power["tests"] == len(t) and power["n"] == 8


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
    mech = next(line for line in lines if "hold the plateau" in line)
    assert "leaves its 10 % band +20 to +100 ms relative to the end of the trained window (0.6 s" in mech
    assert "sweep's end" not in mech
    main["sweep_hold_ms_in_range_min"] = [3000.0, 650.0, 700.0, 640.0]
    mech = next(line for line in _answer(main, None) if "hold the plateau" in line)
    assert "+40 to +2400 ms" in mech and "still on target at the sweep's end (3 s) counts as leaving there" in mech
    assert "answer holds for this G" in lines[-1] and "model.G_per_seed=true" in lines[-1]
    own = main.assign(network_key=[f"k{i}" for i in range(4)], network_G=[f"G{i}" for i in range(4)])
    assert "answer holds for this G" not in _answer(own, None)[-1]


def test_the_overlaps_are_read_out_per_kind_of_pair():
    labels = ["main 1", "main 2", "main 3", "control 1", "control 2"]
    m = np.full((5, 5), 0.1)
    m[:3, :3] = [[1, 0.2, 0.3], [0.2, 1, 0.4], [0.3, 0.4, 1]]
    m[3, 4] = m[4, 3] = 0.05
    np.fill_diagonal(m, 1.0)
    said = population.overlap_summary(pd.DataFrame(m, index=labels, columns=labels), 3, 200)
    assert said.startswith("Overlap of the leading 3 memory PCs")
    assert "main–main 0.3 (0.2–0.4), 3 pairs; control–control 0.05, 1 pair; main–control 0.1, 6 pairs" in said
    assert "k/N = 0.015" in said
