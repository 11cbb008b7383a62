"""`sysa evaluate --json` with the issue-6 keys: the SPEC section 6 facts on the published seed-1
checkpoint (initialisation confound, float32/float64 spread), key types, and the switches
that leave out the expensive parts."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from conftest import PUBLISHED, moved_weights, parse_json_lines, run_cli
from sysa_core import analysis, config, extended

OLD_KEYS = {"precision", "precision_by_duration", "weight_correlation", "pr_input_l1", "pr_input_l2",
            "pr_output_l1", "pr_output_l2", "dim_spontaneous", "dim_memory"}
LEVELS = ("90", "95", "99")
ALIGN_KEYS = {f"{v}_{k}" for v in ("input", "output") for k in
              [f"topk{L}_{s}" for L in LEVELS for s in ("k", "fraction", "null_mean", "null_pct", "fraction_spread")]
              + ["var_alignment", "var_alignment_null_mean", "var_alignment_null_pct", "var_alignment_spread"]}
SPREAD_KEYS = {f"pr_{v}_{p}_{s}" for v in ("input", "output") for p in ("l1", "l2") for s in ("f64", "spread")}
CONFOUND_KEYS = {"weight_correlation_init", "input_drift_cosine", "output_drift_cosine", "input_drift_norm",
                 "output_drift_norm"}
DYNAMICS_KEYS = {"n_slow_points", "n_fixed_points", "n_slow_modes", "n_unstable_modes", "slowest_time_constant_ms",
                 "slow_point_min_q", "slow_point_max_speed_per_s", "lyapunov_max_per_s",
                 "lyapunov_per_s_by_duration"}
PLATEAU_KEYS = {"plateau_drift_per_s", "plateau_drift_per_s_by_duration"}
GENERALISATION_KEYS = {"generalisation_rmse_trained_range", "generalisation_rmse_outside_range",
                       "plateau_hold_ms_min", "plateau_hold_ms_median", "plateau_hold_fraction_held"}
NEW_KEYS = ALIGN_KEYS | SPREAD_KEYS | CONFOUND_KEYS | DYNAMICS_KEYS | PLATEAU_KEYS | GENERALISATION_KEYS


@pytest.fixture(scope="module")
def seed1(reference_dir) -> dict:
    """`sysa evaluate ../shared/reference/sys_A1_state.pth --json` (the paper configuration)."""
    proc = run_cli("evaluate", reference_dir / "sys_A1_state.pth", "--json")
    assert proc.returncode == 0, proc.stderr
    out = parse_json_lines(proc.stdout)
    assert len(out) == 1
    return out[0]


def test_the_existing_keys_are_unchanged(seed1):
    assert OLD_KEYS <= set(seed1)
    precision, correlation = PUBLISHED[1]
    assert seed1["precision"] == pytest.approx(precision, rel=1e-4)
    assert seed1["weight_correlation"] == pytest.approx(correlation, abs=1e-5)
    assert set(seed1["precision_by_duration"]) == {"50", "150", "300"}


def test_the_initialisation_confound_of_seed_1(seed1):
    """SPEC section 6: I and w start identical (cosine 1); after training cos(I, I_init) ~ 0.998 while
    cos(w, w_init) ~ 0.881, so the final I-w cosine (0.8806) is mostly how far w moved."""
    assert seed1["weight_correlation_init"] == pytest.approx(1.0, abs=1e-6)
    assert seed1["input_drift_cosine"] == pytest.approx(0.998, abs=0.002)
    assert seed1["output_drift_cosine"] == pytest.approx(0.881, abs=0.005)
    assert seed1["output_drift_norm"] > 5 * seed1["input_drift_norm"]


def test_every_new_key_is_present_and_json_typed(seed1):
    assert NEW_KEYS <= set(seed1), sorted(NEW_KEYS - set(seed1))
    json.dumps(seed1, allow_nan=False)  # strict JSON: no NaN or infinity anywhere
    for k in NEW_KEYS:
        v = seed1[k]
        if k.endswith("_by_duration"):
            assert set(v) == {"50", "150", "300"} and all(isinstance(x, float) for x in v.values()), k
        elif k.endswith("_k") or k.startswith("n_"):
            assert isinstance(v, int) and not isinstance(v, bool), k
        else:
            assert v is None or isinstance(v, float), k


def test_alignment_measures_of_seed_1(seed1):
    for v in ("input", "output"):
        ks = [seed1[f"{v}_topk{L}_k"] for L in LEVELS]
        assert 1 <= ks[0] <= ks[1] <= ks[2] <= 500  # more variance, at least as many PCs
        fr = [seed1[f"{v}_topk{L}_fraction"] for L in LEVELS]
        assert 0 <= fr[0] <= fr[1] <= fr[2] <= 1
        for L, k in zip(LEVELS, ks):
            assert 0 <= seed1[f"{v}_topk{L}_null_pct"] <= 100
            # the null mean of the top-k fraction of a random vector is k / N (Beta law)
            assert seed1[f"{v}_topk{L}_null_mean"] == pytest.approx(k / 500, rel=0.15)
        assert 0 <= seed1[f"{v}_var_alignment"] <= 1
        assert 0 <= seed1[f"{v}_var_alignment_null_pct"] <= 100
    # the activity is low-dimensional (SPEC section 6): a handful of PCs carry 90 % of the variance
    assert seed1["input_topk90_k"] <= 10 and seed1["output_topk90_k"] <= 10


def test_float32_float64_spread_of_seed_1(seed1):
    """The participation ratios over all N eigenvectors are reported with their float32/float64
    spread; the measures restricted to the PCs that carry variance barely move."""
    for v in ("input", "output"):
        for p in ("l1", "l2"):
            f32, f64, spread = seed1[f"pr_{v}_{p}"], seed1[f"pr_{v}_{p}_f64"], seed1[f"pr_{v}_{p}_spread"]
            assert 1 <= f64 <= 500
            assert spread == pytest.approx(abs(f32 - f64) / f64, rel=1e-9, abs=1e-15)
        for L in LEVELS:
            assert seed1[f"{v}_topk{L}_fraction_spread"] < 1e-3
        assert seed1[f"{v}_var_alignment_spread"] < 1e-3


def test_dynamics_and_plateau_of_seed_1(seed1):
    assert seed1["n_slow_points"] >= 1 and 0 <= seed1["n_fixed_points"] <= seed1["n_slow_points"]
    assert 0 <= seed1["n_slow_modes"] <= 500 and 0 <= seed1["n_unstable_modes"] <= 500
    assert seed1["slow_point_min_q"] >= 0
    lyap = seed1["lyapunov_per_s_by_duration"]
    assert seed1["lyapunov_max_per_s"] == pytest.approx(max(lyap.values()))
    assert all(math.isfinite(x) and abs(x) < 100 for x in lyap.values())  # |lambda| < 10 / tau
    drift = seed1["plateau_drift_per_s_by_duration"]
    assert seed1["plateau_drift_per_s"] == pytest.approx(np.mean(np.abs(list(drift.values()))))
    # the trained range generalises better than durations outside it (up to 400 ms)
    assert seed1["generalisation_rmse_trained_range"] < seed1["generalisation_rmse_outside_range"]
    assert 0 <= seed1["plateau_hold_ms_min"] <= seed1["plateau_hold_ms_median"] <= 10000
    assert 0 <= seed1["plateau_hold_fraction_held"] <= 1


# -- in process, on a small model -------------------------------------------------------------------

@pytest.fixture(scope="module")
def small():
    cfg = config.resolve("smoke", ["hidden_size=40"], seed=2)
    return cfg, moved_weights(cfg.model, 2, noise_seed=9, dw=0.2)


def test_the_expensive_parts_can_be_left_out(small):
    cfg, sd = small
    full = analysis.metrics(cfg, sd)
    assert OLD_KEYS | NEW_KEYS <= set(full)
    assert set(analysis.metrics(cfg, sd, extended=False)) == OLD_KEYS
    cheap = analysis.metrics(cfg, sd, with_dynamics=False, with_generalisation=False)
    assert not (DYNAMICS_KEYS | GENERALISATION_KEYS) & set(cheap)
    assert (ALIGN_KEYS | SPREAD_KEYS | CONFOUND_KEYS | PLATEAU_KEYS) <= set(cheap)
    for k in cheap:
        assert cheap[k] == full[k], k  # the same numbers either way
    json.dumps(full, allow_nan=False)


def test_extended_metrics_are_reproducible_and_leave_the_thread_count_alone(small):
    cfg, sd = small
    before = torch.get_num_threads()
    a = extended.extended_metrics(cfg, sd)
    assert torch.get_num_threads() == before
    assert a == extended.extended_metrics(cfg, sd)
    assert a["weight_correlation_init"] == pytest.approx(1.0, abs=1e-6)


def test_objects_a_notebook_already_computed_are_reused_not_recomputed(small):
    """inspect.ipynb passes its generalisation sweep (and could pass its slow points) to the metrics:
    the same objects give the same numbers, and a different object changes them (so it is used)."""
    from sysa_core import dynamics, plateau

    cfg, sd = small
    full = extended.extended_metrics(cfg, sd)
    gen, md = plateau.generalisation(cfg, sd), dynamics.memory_dynamics(cfg, sd)
    assert extended.extended_metrics(cfg, sd, generalisation=gen, memory_dynamics=md) == full
    inside = plateau.generalisation(cfg, sd, durations_ms=[cfg.task.O_off_ms])  # the mean duration only: none outside
    other = dynamics.memory_dynamics(cfg, sd, n_starts_per_trial=1, seed=1)  # another tangent vector
    given = extended.extended_metrics(cfg, sd, generalisation=inside, memory_dynamics=other)
    assert full["generalisation_rmse_outside_range"] is not None
    assert given["generalisation_rmse_outside_range"] is None
    assert given["lyapunov_max_per_s"] == other.lyapunov_max_per_s != full["lyapunov_max_per_s"]
