"""sysa_core.analysis.population: which measures are per-seed predictors (no G-only measure when
the seeds share G), and the statistics of a population."""
from __future__ import annotations

import numpy as np

from conftest import population_table as _ensemble

from sysa_core.analysis import population, stats




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






def test_statistics_test_every_predictor_against_in_range_precision():
    main = _ensemble(8, 1.0, 0.85)
    t, power = population.statistics(main)
    meas = population.predictors(main)
    assert len(t) == len(meas) and set(t["target"]) == {"precision_trained_range"}
    np.testing.assert_allclose(t["p_holm"], stats.holm(t["p"]))
    assert power["tests"] == len(t) and power["n"] == 8
