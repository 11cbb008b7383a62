"""sysa_core.analysis.metrics: the one pass that computes every per-model number. On the published
seed-1 checkpoint (through `sysa evaluate --json`): the README, Definitions 6 facts (initialisation
confound, float32/float64 spread, the precision split); in process on a small model: purity,
reproducibility, the keys of --core-only, and the cache that lets a second notebook read what
the first computed."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import scipy.stats
import torch
from conftest import Net1, assert_same_arrays, moved_weights, record_calls, recorded_calls

from sysa_core import config, model
from sysa_core.task import fixed_trials
from sysa_core.analysis import dynamics, metrics
from sysa_core.analysis.metrics import CORE_KEYS

pytestmark = pytest.mark.usefixtures("single_threaded_torch")

LEVELS = ("90", "95", "99")
ALIGN_KEYS = {f"{v}_{k}" for v in ("input", "output") for k in
              [f"topk{L}_{s}" for L in LEVELS for s in ("k", "fraction", "null_mean", "null_pct", "fraction_f64",
                                                        "fraction_spread")]
              + ["var_alignment", "var_alignment_null_mean", "var_alignment_null_pct", "var_alignment_f64",
                 "var_alignment_spread"]}
SPREAD_KEYS = {f"pr_{v}_{p}_{s}" for v in ("input", "output") for p in ("l1", "l2") for s in ("f64", "spread")}
CONFOUND_KEYS = {"weight_correlation_init", "input_drift_cosine", "output_drift_cosine", "input_drift_norm",
                 "output_drift_norm"}
DYNAMICS_KEYS = {"memory_points", "memory_n_fixed_points", "memory_n_slow_points", "memory_min_point_speed_per_s",
                 "lyapunov_per_s_by_duration", "lyapunov_se_per_s_by_duration", "lyapunov_blocks",
                 "lyapunov_in_range_per_s", "lyapunov_in_range_halfwidth_per_s", "lyapunov_start_spread_per_s_by_duration",
                 "lyapunov_decorrelation_ms_by_duration",
                 "fixed_points_with_memory", "fixed_points_new_from_memory", "memory_state_norm_by_duration",
                 "memory_nearest_point_norm_by_duration", "memory_nearest_point_unstable_by_duration",
                 "memory_nearest_point_relative_distance_by_duration", "memory_nearest_nonzero_point_norm_by_duration",
                 "memory_nearest_nonzero_point_unstable_by_duration",
                 "memory_nearest_nonzero_point_relative_distance_by_duration"}
NETWORK_KEYS = {"network_key", "network_G", "network_dim_spontaneous", "network_lyapunov_spontaneous_per_s",
                "network_lyapunov_spontaneous_halfwidth_per_s", "network_lyapunov_spontaneous_se_per_s",
                "network_lyapunov_spontaneous_spread_per_s", "network_lyapunov_spontaneous_blocks",
                "network_lyapunov_spontaneous_vectors", "network_lyapunov_spontaneous_transient_ms",
                "network_lyapunov_spontaneous_window_ms",
                "network_lyapunov_spontaneous_decorrelation_ms", "network_regime", "network_regime_period_ms",
                "network_n_fixed_points", "network_n_fixed_pairs", "network_n_stable_fixed_points",
                "network_census_starts", "network_census_found_once", "network_census_new_in_second_half",
                "network_points"}
#: integer counts among them
COUNT_KEYS = {"network_lyapunov_spontaneous_vectors", "network_census_starts", "network_census_found_once",
              "network_census_new_in_second_half", "fixed_points_with_memory", "fixed_points_new_from_memory"}
PLATEAU_KEYS = {"plateau_held_trained_window", "plateau_steady_trained_window", "plateau_hold_ms_by_duration",
                "plateau_drift_per_s", "plateau_drift_per_s_by_duration", "generalisation_rmse_trained_range",
                "generalisation_rmse_outside_range", "sweep_hold_ms_min", "sweep_hold_ms_median",
                "sweep_held_trained_window", "sweep_held_in_range", "sweep_hold_ms_in_range_min", "sweep_horizon_ms", "sweep_trained_window_ms"}
MECHANISM_KEYS = {"plateau_state_speed_per_s", "state_travel", "precision_noise_0.01", "precision_noise_0.03",
                  "precision_noise_0.1", "readout_pcs_needed", "memory_mechanism"}
PRECISION_KEYS = {"relative_error_by_duration", "relative_error_trained_range", "precision_trained_range",
                  "precision_extrapolation", "precision_untrained",
                  "precision_untrained_by_duration", "precision_untrained_trained_range", "improvement_over_untrained"}
TRAINING_KEYS = {"final_loss", "loss_fall_last_20pct", "converged"}
CODING_KEYS = {"readout_coding_cosine", "readout_coding_cosine_untrained"}
NEW_KEYS = (ALIGN_KEYS | SPREAD_KEYS | CONFOUND_KEYS | DYNAMICS_KEYS | NETWORK_KEYS | PLATEAU_KEYS | MECHANISM_KEYS
            | PRECISION_KEYS | TRAINING_KEYS | CODING_KEYS)


@pytest.fixture(scope="module")
def seed1(reference_full) -> dict:
    return reference_full


def test_the_original_keys(seed1):
    """(The published numbers themselves: test_cli, through `sysa evaluate`.)"""
    assert set(CORE_KEYS) <= set(seed1)
    assert set(seed1["precision_by_duration"]) == {"50", "150", "300"}


def test_the_initialisation_confound_of_seed_1(seed1):
    """README, Definitions 6: I and w start identical (cosine 1); after training cos(I, I_init) ~ 0.998 while
    cos(w, w_init) ~ 0.881, so the final I-w cosine (0.8806) is mostly how far w moved."""
    assert seed1["weight_correlation_init"] == pytest.approx(1.0, abs=1e-6)
    assert seed1["input_drift_cosine"] == pytest.approx(0.998, abs=0.002)
    assert seed1["output_drift_cosine"] == pytest.approx(0.881, abs=0.005)
    assert seed1["output_drift_norm"] > 5 * seed1["input_drift_norm"]


def test_every_key_is_present_and_json_typed(seed1):
    assert NEW_KEYS <= set(seed1), sorted(NEW_KEYS - set(seed1))
    json.dumps(seed1, allow_nan=False)  # strict JSON: no NaN or infinity anywhere
    for k in NEW_KEYS:
        v = seed1[k]
        if k.endswith("_unstable_by_duration"):
            assert set(v) == {"50", "150", "300"} and all(isinstance(x, int) for x in v.values()), k
        elif k.endswith("_by_duration"):
            assert set(v) == {"50", "150", "300"} and all(isinstance(x, float) for x in v.values()), k
        elif k in ("memory_points", "network_points"):
            assert isinstance(v, list) and all(isinstance(p, dict) for p in v), k
        elif k in ("memory_mechanism", "network_key", "network_G", "network_regime"):
            assert isinstance(v, str), k
        elif k in TRAINING_KEYS:
            assert v is None, k  # the original's checkpoints carry no sysa training record
        elif k.endswith(("_k", "_blocks")) or "_n_" in k or k == "readout_pcs_needed" or k in COUNT_KEYS:
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
    # the activity is low-dimensional (README, Definitions 6): a handful of PCs carry 90 % of the variance
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


def test_dynamics_plateau_and_mechanism_of_seed_1(seed1):
    """The original's seed 1 (README, Definitions 7): G's only certain fixed point is the origin, unstable
    in the chaotic regime; the memory trajectories pass slow points; the largest finite-time
    Lyapunov exponent along them is about +0.48 /s; the output holds while the state keeps moving: a transient."""
    pts = seed1["memory_points"]
    assert seed1["memory_n_fixed_points"] + seed1["memory_n_slow_points"] == len(pts) >= 1
    for p in pts:  # time constants only at fixed points
        assert ("slowest_decay_ms" in p) == p["fixed"]
    moving = [p["speed_per_s"] for p in pts if not p["fixed"]]
    assert seed1["memory_min_point_speed_per_s"] == (min(moving) if moving else None)
    origin = seed1["network_points"][0]
    assert origin["norm"] == 0.0 and origin["n_unstable"] > 0
    assert seed1["network_dim_spontaneous"] == seed1["dim_spontaneous"]
    lyap, se = seed1["lyapunov_per_s_by_duration"], seed1["lyapunov_se_per_s_by_duration"]
    assert seed1["lyapunov_in_range_per_s"] == pytest.approx((lyap["50"] + lyap["150"]) / 2)
    spread, t = seed1["lyapunov_start_spread_per_s_by_duration"], scipy.stats.t.ppf(0.975, seed1["lyapunov_blocks"] - 1)
    assert seed1["lyapunov_in_range_halfwidth_per_s"] == pytest.approx(
        np.mean([t * se[d] + spread[d] for d in ("50", "150")]))
    # the +0.48 /s measured on the original's seed 1 (README, Definitions 7); ours aligns the tangent vector from the trial's start, and its block
    # standard error says how far a finite-time value over this window can be trusted
    assert seed1["lyapunov_in_range_per_s"] == pytest.approx(0.48, abs=0.1)
    assert seed1["lyapunov_in_range_halfwidth_per_s"] > abs(seed1["lyapunov_in_range_per_s"])  # one network: no sign
    assert seed1["lyapunov_blocks"] == 3  # the 2.5 s window in blocks of at least 8 tau, 3 to 5
    lag = seed1["lyapunov_decorrelation_ms_by_duration"]
    assert set(lag) == set(lyap) and all(0 < v < 2500 for v in lag.values())
    drift = seed1["plateau_drift_per_s_by_duration"]
    assert seed1["plateau_drift_per_s"] == pytest.approx(np.mean(np.abs(list(drift.values()))))
    # the trained range generalises better than durations outside it (up to 400 ms)
    assert seed1["generalisation_rmse_trained_range"] < seed1["generalisation_rmse_outside_range"]
    assert 0 <= seed1["sweep_hold_ms_min"] <= seed1["sweep_hold_ms_median"] <= 10000
    # the 150 ms plateau stays within 10 % of its target through the trained window, the 50 ms one does not
    assert seed1["plateau_hold_ms_by_duration"]["150"] >= 2500 and seed1["plateau_held_trained_window"] == 0.5
    assert seed1["memory_mechanism"] == "transient" and seed1["state_travel"] > 1
    assert seed1["readout_pcs_needed"] > 10
    noise = [seed1[f"precision_noise_{s}"] for s in ("0.01", "0.03", "0.1")]
    assert seed1["precision_trained_range"] < noise[0] < noise[1] < noise[2]


def test_the_precision_split_of_seed_1(seed1):
    """README, Definitions 7: on the original's seed 1 the per-duration precision is 0.0030 / 0.00048 / 0.045,
    so the 300 ms extrapolation is about 90 % of the published mean."""
    by = seed1["precision_by_duration"]
    assert by["50"] == pytest.approx(0.0030, abs=5e-5) and by["150"] == pytest.approx(0.00048, abs=1e-5)
    assert by["300"] == pytest.approx(0.045, abs=5e-4)
    assert seed1["precision_trained_range"] == pytest.approx((by["50"] + by["150"]) / 2, rel=1e-12)
    assert seed1["precision_extrapolation"] == by["300"]
    assert by["300"] / 3 / seed1["precision"] == pytest.approx(0.93, abs=0.02)
    assert seed1["precision_untrained"] > 10 * seed1["precision"]


# -- in process, on a small model -------------------------------------------------------------------

@pytest.fixture(scope="module")
def small():
    cfg = config.resolve("smoke", ["hidden_size=40"], seed=2)
    return cfg, moved_weights(cfg.model, 2, noise_seed=9, dw=0.2)


def _snapshot(d):
    return {k: (v, v.clone(), v.dtype, v.requires_grad) for k, v in d.items()}


def test_the_analysis_leaves_the_model_alone_and_is_reproducible(small):
    cfg, sd = small
    net = Net1(cfg, sd)
    before = torch.get_num_threads()
    for weights in (sd, dict(net.named_parameters()), {k: v.double() for k, v in sd.items()}):
        snap = _snapshot(weights)
        metrics.analyse(cfg, weights)
        for k, (obj, copy, dtype, rg) in snap.items():
            assert weights[k] is obj and obj.dtype == dtype and obj.requires_grad == rg
            assert torch.equal(obj, copy), f"{k} was modified"
    assert torch.get_num_threads() == before
    # the spontaneous run starts from h = spont_h0 without touching the model's h0 (the original's bug)
    assert (sd["h0"] == 0).all()
    a, b = metrics.analyse(cfg, sd), metrics.analyse(cfg, sd)
    assert a.metrics == b.metrics
    assert set(a.arrays) == set(b.arrays) and all(np.array_equal(a.arrays[k], b.arrays[k]) for k in a.arrays)


def test_the_point_search_beside_the_rest_gives_the_bits_of_one_thread(small, monkeypatch, tmp_path):
    """The point search near the memory trajectories runs in a forked child process under the same
    one-thread cap, the rest (the exponents too) in this process: every number and array is the
    same bits as when everything runs in this thread, one thing after another."""
    cfg, sd = small
    log = tmp_path / "calls"
    for name in ("memory_points", "memory_lyapunov"):
        record_calls(monkeypatch, dynamics, name, log)
    beside = metrics.analyse(cfg, sd, beside=True)
    calls = {n: (pid, cap) for n, pid, cap in recorded_calls(log)}
    assert len(recorded_calls(log)) == 2 and all(cap == 1 for _, cap in calls.values()), calls
    assert calls["memory_points"][0] != os.getpid() and calls["memory_lyapunov"][0] == os.getpid(), calls
    log.unlink()
    alone = metrics.analyse(cfg, sd, beside=False)
    assert all(pid == os.getpid() and cap == 1 for _, pid, cap in recorded_calls(log)) and len(recorded_calls(log)) == 2
    assert json.dumps(beside.metrics, sort_keys=True) == json.dumps(alone.metrics, sort_keys=True)
    assert_same_arrays(beside.arrays, alone.arrays)


def test_every_number_in_range_and_the_core_keys_are_the_same_numbers(small):
    cfg, sd = small
    full = metrics.analyse(cfg, sd).metrics
    n = cfg.model.hidden_size
    assert NEW_KEYS | set(CORE_KEYS) <= set(full)
    assert set(full["precision_by_duration"]) == {str(d) for d in cfg.analysis.durations_ms}
    for k in ("pr_input_l1", "pr_input_l2", "pr_output_l1", "pr_output_l2", "dim_spontaneous", "dim_memory"):
        assert 1.0 <= full[k] <= n + 1e-9, k
    assert -1 <= full["weight_correlation"] <= 1
    json.dumps(full, allow_nan=False)
    core = metrics.analyse(cfg, sd, core_only=True)
    assert list(core.metrics) == list(metrics.IDENTITY_KEYS + CORE_KEYS) and core.arrays == {}
    assert all(core.metrics[k] == full[k] for k in CORE_KEYS)


def test_the_arrays_are_what_the_metrics_were_computed_from(small):
    cfg, sd = small
    r = metrics.analyse(cfg, sd)
    m, A = r.metrics, r.arrays
    lam = np.clip(A["spont_eigvals"], 0, None)
    assert m["dim_spontaneous"] == pytest.approx(lam.sum() ** 2 / (lam ** 2).sum(), rel=1e-12)
    c = A["mem_coef_w"]
    assert m["pr_output_l2"] == pytest.approx((c ** 2).sum() ** 2 / (c ** 4).sum(), rel=1e-9)
    assert A["eval_y"].shape == (len(cfg.analysis.durations_ms), cfg.steps(cfg.task.Nt_ms + cfg.analysis.eval_extra_ms))
    assert A["traj_pcs"].shape == (len(cfg.analysis.durations_ms), cfg.steps(cfg.analysis.mem_T_ms), 3)
    assert len(A["points_speed_per_s"]) == len(m["memory_points"])
    assert A["points_fixed"].sum() == m["memory_n_fixed_points"]
    assert A["mem_pcs"].shape == (cfg.model.hidden_size, 3)
    inr = A["gen_in_range"]
    assert inr.any() and m["sweep_held_in_range"] == pytest.approx(
        np.mean(A["gen_hold_ms"][inr] >= m["sweep_trained_window_ms"]))


def test_the_coding_cosine_is_w_against_the_slope_of_the_window_means_on_the_duration(small):
    """readout_coding_cosine (and _untrained, of the initial weights) from a plain float64 simulation of
    the in-range memory trials (model.reference_forward): the least-squares slope of each trial's mean
    rate over the memory window on its duration, against w."""
    cfg, sd = small
    a = cfg.analysis
    inside = [d for d in a.durations_ms if cfg.in_trained_range(d)]
    x = fixed_trials(cfg, inside, a.mem_onset_ms, a.mem_T_ms).x.double()

    def cosine(weights):
        w64 = {k: v.double() for k, v in weights.items()}
        _, r = model.reference_forward(w64["G"], w64["I"], w64["w"], w64["h0"], x, cfg.alpha, cfg.model.g_G,
                                       return_r=True)
        means = r[:, cfg.steps(a.mem_start_ms):].mean(dim=1).numpy()  # (D, N)
        slope = np.polyfit(np.asarray(inside, dtype=np.float64), means, 1)[0]  # numpy's least-squares line per unit
        w = w64["w"].numpy().reshape(-1)
        return slope @ w / (np.linalg.norm(slope) * np.linalg.norm(w))

    m = metrics.analyse(cfg, sd).metrics
    assert len(inside) >= 2
    assert m["readout_coding_cosine"] == pytest.approx(cosine(sd), abs=1e-5)
    assert m["readout_coding_cosine_untrained"] == pytest.approx(cosine(model.init_weights(cfg.model, cfg.seed)), abs=1e-5)


def test_the_relative_error_of_seed_1(seed1, reference_dir):
    """The relative error is the root of each plateau MSE over the level the plateau should hold
    (the task's target for that duration, from the task's own trials)."""
    from sysa_core import files
    from sysa_core.task import fixed_trials

    cfg = files.for_checkpoint(reference_dir / "sys_A1_state.pth")
    a = cfg.analysis
    levels = fixed_trials(cfg, a.durations_ms, a.eval_onset_ms, cfg.task.Nt_ms).target.amax(dim=(1, 2))
    rel = seed1["relative_error_by_duration"]
    for d, level in zip(a.durations_ms, levels.tolist()):
        assert rel[str(d)] == pytest.approx(np.sqrt(seed1["precision_by_duration"][str(d)]) / level, rel=1e-12)
    assert seed1["relative_error_trained_range"] == pytest.approx(np.sqrt((rel["50"] ** 2 + rel["150"] ** 2) / 2))
    assert rel["150"] < 0.05 < rel["300"]  # a few % in range, far off when extrapolating


@pytest.mark.parametrize("rho", [-0.5, 0.0, 0.5, 0.9, 1.0])
def test_the_mean_of_two_trials_intervals_half_widths_covers_their_mean_whatever_their_correlation(rho):
    """Two trials' exponents from three blocks each, their block means correlated by rho across the
    trials: the interval of their mean with the mean of their half-widths (the in-range mean's rule)
    covers the true mean at least at the 95 % of each trial's own interval (exactly that at rho = 1)."""
    rng = np.random.default_rng(17)
    n, blocks, sd = 20_000, 3, np.array([0.3, 0.5])
    z = rng.standard_normal((n, blocks, 2))
    z[..., 1] = rho * z[..., 0] + np.sqrt(1 - rho ** 2) * z[..., 1]
    by_block = 0.4 + z * sd  # (draw, block, trial); true exponent 0.4 in both trials
    lam = by_block.mean(axis=1)
    half = np.stack([[dynamics.lyapunov_halfwidth(s, blocks) for s in dynamics.lyapunov_se(by_block[:, :, k])]
                     for k in range(2)], axis=1)
    assert 0.945 <= (np.abs(lam[:, 0] - 0.4) <= half[:, 0]).mean() <= 0.955  # each trial's own interval
    cover = (np.abs(lam.mean(axis=1) - 0.4) <= half.mean(axis=1)).mean()
    assert cover >= 0.945
