"""The one pass that computes every per-model number, and the arrays the notebooks plot.

`analyse` runs each simulation and each expensive computation once: the test trials of the
trained and of the untrained network, the memory trials in the configured dtype and in float64,
the alignment nulls, the points and Lyapunov exponents, the noise runs and the duration sweep; what
G alone determines comes from analysis.network (computed once per G and passed in). Its `metrics`
are what `metrics.json` holds and `sysa evaluate --json` prints; its `arrays` are what the
notebooks draw (pipeline.store keeps both in a model's folder).

Metric keys (v = input: I on the spontaneous PCs; v = output: w on the memory-period PCs;
L = 90, 95, 99 % explained variance; units in the names or given here):

* identity: seed, profile, checkpoint_sha256, epoch, training_id, analysis_id, network_key;
* training: final_loss, loss_fall_last_20pct, converged (training.convergence; None without
  sysa's training record in the checkpoint);
* precision (the original's: mean plateau MSE over the test durations), precision_by_duration,
  precision_trained_range and precision_extrapolation (the test durations inside / outside the
  trained range; None where there is none), precision_untrained, precision_untrained_by_duration,
  precision_untrained_trained_range (the same network before training), relative_error_by_duration
  (the root of each plateau MSE over its target level) and relative_error_trained_range (their root
  mean square over the in-range durations), improvement_over_untrained
  (how many times better the in-range precision is than untrained: `improvement`);
* weight_correlation (cosine of I and w); the initialisation confound: weight_correlation_init,
  input_drift_cosine, output_drift_cosine, input_drift_norm, output_drift_norm;
* PCA: pr_{v}_l1, pr_{v}_l2 (participation ratios over all N eigenvectors), dim_spontaneous (a
  property of G: network_dim_spontaneous), dim_memory; readout_coding_cosine (the cosine of w and
  the direction along which the memory window's mean rate changes with the pulse's duration,
  pca.coding_direction, fitted to the in-range test pulses; None where it does not change) and
  readout_coding_cosine_untrained (the same of the network before training);
* alignment against 1000 random vectors of the same norm: {v}_topk{L}_k, {v}_topk{L}_fraction,
  {v}_topk{L}_null_mean, {v}_topk{L}_null_pct, {v}_var_alignment, {v}_var_alignment_null_mean,
  {v}_var_alignment_null_pct;
* float32 vs float64 simulation: pr_{v}_l1_f64, pr_{v}_l1_spread, pr_{v}_l2_f64, pr_{v}_l2_spread
  (spread = |x32 - x64| / |x64|), {v}_topk{L}_fraction_f64, {v}_topk{L}_fraction_spread,
  {v}_var_alignment_f64, {v}_var_alignment_spread;
* the network G (analysis.network, NetworkAnalysis.metrics): network_key (the analysis's cache
  key), network_G (G's digest), network_dim_spontaneous, the spontaneous exponent
  network_lyapunov_spontaneous_* (its value, interval half-width, standard error, spread over
  starting vectors, blocks, vectors, transient and window), network_regime,
  network_regime_period_ms, the census network_n_fixed_points, network_n_fixed_pairs,
  network_n_stable_fixed_points, network_census_starts, network_census_found_once,
  network_census_new_in_second_half, network_points;
* the memory period: memory_points (the fixed and slow points near the memory trajectories, each
  with its speed), memory_n_fixed_points, memory_n_stable_fixed_points (those without a growing
  mode, as in G's census), memory_n_slow_points, memory_min_point_speed_per_s,
  lyapunov_per_s_by_duration and lyapunov_se_per_s_by_duration (the largest finite-time Lyapunov
  exponent along each memory trajectory over the memory window, 1/s, and its standard error from
  lyapunov_blocks blocks), lyapunov_start_spread_per_s_by_duration (how far the farthest
  of the other starting vectors' values lies: the window is short), lyapunov_decorrelation_ms_by_duration
  (the lag after which the log growth per step first decorrelates: the blocks are nearly independent
  where they are much longer), lyapunov_in_range_per_s and lyapunov_in_range_halfwidth_per_s
  (their mean over the in-range durations, and its 95 % interval's half-width: the mean of theirs);
  fixed_points_with_memory (G's census united with the fixed points near the memory trajectories),
  fixed_points_new_from_memory,
  memory_state_norm_by_duration, memory_nearest_point_norm_by_duration,
  memory_nearest_point_unstable_by_duration, memory_nearest_point_relative_distance_by_duration
  (the fixed point nearest the mid-window memory state), and the same of the nearest fixed point other
  than the origin: memory_nearest_nonzero_point_* (None where none is known);
* the plateau (analysis.plateau): plateau_held_trained_window (the share of the in-range test
  durations whose output stays within 10 % of its target from the cost onset to the end of the
  trained window), plateau_steady_trained_window (the share whose output stays within 10 % of the
  target around its own mean there: it holds a value, on target or not), plateau_hold_ms_by_duration,
  plateau_drift_per_s (mean |slope| over the trained window, output units per s) and
  plateau_drift_per_s_by_duration, plateau_sign_kept_ms_by_duration (ms from the cost onset until
  the output first takes the sign opposite to its target's, capped at plateau_run_ms, the test run's
  span after the cost onset: Nt + eval_extra_ms - cost onset) and plateau_sign_kept_ms_in_range_min
  (its minimum over the in-range durations); over the 10-400 ms sweep: generalisation_rmse_trained_range,
  generalisation_rmse_outside_range, sweep_hold_ms_min, sweep_hold_ms_median,
  sweep_hold_ms_in_range_min (ms from the cost onset, capped at sweep_horizon_ms; the trained
  window is sweep_trained_window_ms),
  sweep_held_trained_window (share of the sweep), sweep_held_in_range (share of the sweep's in-range
  durations: a finer view of the trained range than its few test durations);
* the mechanism (analysis.mechanism): plateau_state_speed_per_s, state_travel,
  precision_noise_0.01, precision_noise_0.03, precision_noise_0.1, readout_pcs_needed,
  memory_mechanism ("attractor", "transient", "no memory");
* only for a model whose step is coarser than the paper's 1 ms (analysis.stepsize): the test trials
  again at a 1 ms step, the pulses as long in ms: fine_step_dt_ms, fine_step_plateau_by_duration
  (the output's mean over the trained window), fine_step_relative_error_by_duration,
  fine_step_hold_ms_by_duration (capped at the trained window), fine_step_held_trained_window and
  fine_step_relative_error_trained_range (as plateau_held_trained_window and
  relative_error_trained_range).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import runtime
from ..config import Config
from ..model import init_weights, run
from ..task import fixed_trials
from ..training import convergence
from . import alignment, dynamics, mechanism, pca, plateau, precision, stepsize
from .network import NetworkAnalysis, analyse_network

#: which model, checkpoint and configuration the numbers are of (always present)
IDENTITY_KEYS = ("seed", "profile", "checkpoint_sha256", "epoch", "training_id", "analysis_id")
#: the numbers of README, Definitions 5 (with the identity, all that `sysa evaluate --core-only` gives)
CORE_KEYS = ("precision", "precision_by_duration", "weight_correlation", "pr_input_l1", "pr_input_l2",
             "pr_output_l1", "pr_output_l2", "dim_spontaneous", "dim_memory")
#: how many leading memory PCs the figures project on and the subspace comparisons use
N_PROJECTED = 3
#: the numbers that rounding decides rather than the model: the participation ratios over all N
#: eigenvectors (the near-null eigenvectors are fixed by rounding, README Definitions 6) and the
#: float32-vs-float64 spreads of PCA-based numbers (their differences), and what the slow- and
#: fixed-point searches find (where an L-BFGS run ends after its iterations, how many minima it
#: tells apart). The same code, data and matrix-library code paths (runtime.numerics) give them to
#: the bit; other code paths round differently and move them by percents. `rounding_fixed` names
#: them all: these keys of the searches, pr_* and *_spread.
POINT_SEARCH_KEYS = (
    "network_points", "network_n_fixed_points", "network_n_fixed_pairs", "network_n_stable_fixed_points",
    "network_census_found_once", "network_census_new_in_second_half",
    "memory_points", "memory_n_fixed_points", "memory_n_stable_fixed_points", "memory_n_slow_points",
    "memory_min_point_speed_per_s", "fixed_points_with_memory", "fixed_points_new_from_memory",
    "memory_nearest_point_norm_by_duration", "memory_nearest_point_unstable_by_duration",
    "memory_nearest_point_relative_distance_by_duration", "memory_nearest_nonzero_point_norm_by_duration",
    "memory_nearest_nonzero_point_unstable_by_duration", "memory_nearest_nonzero_point_relative_distance_by_duration")


def rounding_fixed(key: str) -> bool:
    """Whether metric `key` is one of the numbers rounding decides (POINT_SEARCH_KEYS, the
    participation ratios pr_*, and the float32-vs-float64 spreads *_spread)."""
    return key in POINT_SEARCH_KEYS or key.startswith("pr_") or key.endswith("_spread")


@dataclass
class ModelAnalysis:
    """metrics: the JSON-ready per-model numbers (keys in the module docstring);
    arrays: {name: numpy array} for the figures (see `_arrays`)."""

    metrics: dict
    arrays: dict


def analyse(cfg: Config, sd: dict, *, core_only: bool = False, checkpoint_sha256: str | None = None,
            epoch: int | None = None, training: dict | None = None, network: NetworkAnalysis | None = None,
            threads: int | None = 1, beside: bool | None = None) -> ModelAnalysis:
    """Every per-model number of the model (cfg, sd) and the arrays its figures need.

    core_only: only the identity and the numbers of README, Definitions 5 (IDENTITY_KEYS, CORE_KEYS), no
    arrays. checkpoint_sha256, epoch: recorded with the numbers. training: sysa's training record in
    the checkpoint (files.load_checkpoint's "extra": the monitor losses give the convergence keys;
    None for checkpoints without one). network: the analysis of sd["G"] (analysis.network), computed
    here when not given. threads: thread cap (runtime.limited; one thread makes the numbers
    independent of the machine's core count). beside: the point search near the memory trajectories
    (about half of the work) runs in a child process beside the rest, once the float64 memory trials
    it starts from are simulated (runtime.beside: only under a one-thread cap). False: all of it in this
    thread; None: beside when this process may use two cores. Each computation is the one a single
    thread does, so the numbers are the same bits either way.
    """
    with runtime.limited(threads):
        return _analyse(cfg, sd, core_only, checkpoint_sha256, epoch, training, network, beside)


def training_summary(cfg: Config, training: dict | None) -> dict:
    """final_loss (the monitor set's training loss at the end), loss_fall_last_20pct and converged
    (training.convergence); None for a checkpoint without sysa's training record."""
    if not training or "monitor_loss" not in training:
        return {"final_loss": None, "loss_fall_last_20pct": None, "converged": None}
    c = convergence([int(v) for v in training["monitor_step"]], [float(v) for v in training["monitor_loss"]],
                    cfg.train.total_steps)
    return {"final_loss": c["final_loss"], "loss_fall_last_20pct": c["loss_fall"], "converged": c["converged"]}


def improvement(m: dict) -> float | None:
    """How many times better the in-range precision is than the same network's untrained (the
    "× better than untrained" of every report): precision_untrained_trained_range /
    precision_trained_range, None where either is missing or zero. The one place it is computed."""
    inr, un = m.get("precision_trained_range"), m.get("precision_untrained_trained_range")
    return un / inr if inr and un else None


def _by_duration(values: dict) -> dict:
    return {str(int(k)): v for k, v in values.items()}


def _analyse(cfg, sd, core_only, checkpoint_sha256, epoch, training, network, beside) -> ModelAnalysis:
    sd = {k: v.detach().cpu() for k, v in sd.items()}
    if core_only:
        m, _ = _analyse_core(cfg, sd, checkpoint_sha256, epoch, network, core_only)
        return ModelAnalysis({k: m[k] for k in IDENTITY_KEYS + CORE_KEYS}, {})
    # the point search, half of the work, runs beside the rest from the float64 memory trials' states
    sim64 = _memory_trials64(cfg, sd)
    with runtime.beside(beside) as pool:
        points = pool.submit(dynamics.memory_points, cfg, sd, sim64[1])
        m, parts = _analyse_core(cfg, sd, checkpoint_sha256, epoch, network, core_only)
        m.update(training_summary(cfg, training))
        return _analyse_rest(cfg, sd, m, *parts, sim64, points)


def _memory_trials64(cfg: Config, sd: dict) -> tuple[np.ndarray, np.ndarray]:
    """float64: one simulation of the memory trials gives the PCA for the spread and the states for
    the dynamics and the mechanism: (rates, states), each (D, T, N)."""
    a = cfg.analysis
    trials = fixed_trials(cfg, a.durations_ms, a.mem_onset_ms, a.mem_T_ms)
    _, rates64, states = run(cfg.with_dtype("float64"), sd, trials.x, return_r=True, return_h=True)
    return rates64.numpy(), states.numpy()


def _analyse_core(cfg, sd, checkpoint_sha256, epoch, network, core_only):
    """The identity and the numbers of the original's table, and the parts the rest of the analysis
    needs: (metrics, (evaluation, network analysis, memory trajectories, memory PCA, I, w)); with
    core_only the network analysis is not computed when not given (None)."""
    ev = precision.evaluate(cfg, sd)
    # the original's numbers need only G's spontaneous PCs, not the rest of its analysis
    net = network if network is not None or core_only else analyse_network(cfg, sd["G"], threads=None)
    spont = net.spontaneous if net is not None else pca.spontaneous_pca(cfg, sd)
    traj = pca.memory_trajectories(cfg, sd)
    mem = pca.memory_pca(cfg, sd, traj)
    I, w = sd["I"].double().numpy().reshape(-1), sd["w"].double().numpy().reshape(-1)
    pr_in = pca.participation_ratios(I, spont.eigvecs)
    pr_out = pca.participation_ratios(w, mem.eigvecs)
    m: dict = {
        "seed": cfg.seed, "profile": cfg.profile, "checkpoint_sha256": checkpoint_sha256, "epoch": epoch,
        "training_id": cfg.training_id(), "analysis_id": cfg.analysis_id(),
        "precision": ev.precision,
        "precision_by_duration": _by_duration(ev.precision_by_duration),
        "precision_trained_range": ev.precision_trained_range,
        "precision_extrapolation": ev.precision_extrapolation,
        "relative_error_by_duration": _by_duration(ev.relative_error_by_duration),
        "relative_error_trained_range": ev.relative_error_trained_range,
        "weight_correlation": precision.weight_correlation(sd["I"], sd["w"]),
        "pr_input_l1": pr_in["l1"], "pr_input_l2": pr_in["l2"],
        "pr_output_l1": pr_out["l1"], "pr_output_l2": pr_out["l2"],
        "dim_spontaneous": spont.dimensionality, "dim_memory": mem.dimensionality,
    }
    return m, (ev, net, traj, mem, I, w)


def _analyse_rest(cfg: Config, sd: dict, m: dict, ev, net: NetworkAnalysis, traj: np.ndarray, mem: pca.PCA,
                  I: np.ndarray, w: np.ndarray, sim64: tuple, points) -> ModelAnalysis:
    a = cfg.analysis
    untrained_sd = init_weights(cfg.model, cfg.seed)
    untrained = precision.evaluate(cfg, untrained_sd)
    m["precision_untrained"] = untrained.precision
    m["precision_untrained_by_duration"] = _by_duration(untrained.precision_by_duration)
    m["precision_untrained_trained_range"] = untrained.precision_trained_range
    m["improvement_over_untrained"] = improvement(m)
    m.update(precision.init_confound(cfg, sd))
    for name, vec, p in (("input", I, net.spontaneous), ("output", w, mem)):
        for k, v in alignment.alignment(vec, p, seed=0).items():
            m[f"{name}_{k}"] = v

    hold = plateau.hold(cfg, ev)
    gen = plateau.generalisation(cfg, sd)
    ds = mechanism.in_range_durations(cfg)
    noisy = mechanism.noise_precisions(cfg, sd) if ds else {}
    readout_pcs = mechanism.readout_pcs_needed(cfg, traj, w) if ds else None
    rates64, states = sim64
    mem64 = mem if cfg.model.dtype == "float64" else pca.memory_pca(cfg.with_dtype("float64"), sd, rates64)
    lyap = dynamics.memory_lyapunov(cfg, sd, states)
    found, starts = points.result()
    md = dynamics.MemoryDynamics(found, *lyap, starts)
    spread = alignment.dtype_spread({"float32": (net.spontaneous, mem), "float64": (net.spontaneous_f64, mem64)},
                                    I, w)
    for name in ("input", "output"):
        s = spread[name]
        for pr in ("l1", "l2"):
            m[f"pr_{name}_{pr}_f64"] = s[pr]["f64"]
            m[f"pr_{name}_{pr}_spread"] = s[pr]["spread"]
        for k, v in s.items():
            if k not in ("l1", "l2"):
                m[f"{name}_{k}_f64"] = v["f64"]
                m[f"{name}_{k}_spread"] = v["spread"]

    m.update(net.metrics())
    pts = md.points
    moving = pts.speed_per_s[~pts.fixed]
    m.update({
        "memory_points": pts.records(), "memory_n_fixed_points": int(pts.fixed.sum()),
        "memory_n_stable_fixed_points": int((np.real(pts.eigvals) <= pts.zero_tol).all(axis=1).sum()),
        "memory_n_slow_points": int((~pts.fixed).sum()),
        "memory_min_point_speed_per_s": float(moving.min()) if moving.size else None,
        "lyapunov_per_s_by_duration": _by_duration(dict(zip(a.durations_ms, map(float, md.lyapunov_per_s)))),
        "lyapunov_se_per_s_by_duration": _by_duration(dict(zip(a.durations_ms, map(float, md.lyapunov_se_per_s)))),
        "lyapunov_blocks": md.lyapunov_blocks,
        "lyapunov_start_spread_per_s_by_duration": _by_duration(dict(zip(a.durations_ms,
                                                                          map(float, md.lyapunov_start_spread_per_s)))),
        "lyapunov_decorrelation_ms_by_duration": _by_duration(dict(zip(a.durations_ms,
                                                                        map(float, md.lyapunov_decorrelation_ms)))),
        **_in_range_lyapunov(cfg, md),
        **_plateau_and_fixed_points(cfg, net, md, states),
    })

    in_range = [d for d in hold.held_trained_window if cfg.in_trained_range(d)]
    held = float(np.mean([hold.held_trained_window[d] for d in in_range])) if in_range else None
    steady = float(np.mean([hold.steady_trained_window[d] for d in in_range])) if in_range else None
    m.update({
        "plateau_held_trained_window": held, "plateau_steady_trained_window": steady,
        "plateau_hold_ms_by_duration": _by_duration(hold.hold_ms),
        "plateau_drift_per_s": float(np.mean(np.abs(list(hold.drift_per_s.values())))),
        "plateau_drift_per_s_by_duration": _by_duration(hold.drift_per_s),
        "plateau_sign_kept_ms_by_duration": _by_duration(hold.sign_kept_ms),
        "plateau_sign_kept_ms_in_range_min": min((hold.sign_kept_ms[d] for d in in_range), default=None),
        "plateau_run_ms": hold.run_ms,
    })
    inr, outr = gen.rmse[gen.in_training_range], gen.rmse[~gen.in_training_range]
    m.update({
        "generalisation_rmse_trained_range": float(inr.mean()) if inr.size else None,
        "generalisation_rmse_outside_range": float(outr.mean()) if outr.size else None,
        "sweep_hold_ms_min": float(gen.hold_ms.min()),
        "sweep_hold_ms_in_range_min": float(gen.hold_ms[gen.in_training_range].min())
        if gen.in_training_range.any() else None,
        "sweep_horizon_ms": float(gen.horizon_ms), "sweep_trained_window_ms": float(gen.trained_window_ms),
        "sweep_hold_ms_median": float(np.median(gen.hold_ms)),
        "sweep_held_trained_window": float(gen.held_trained_window.mean()),
        "sweep_held_in_range": float(gen.held_trained_window[gen.in_training_range].mean())
        if gen.in_training_range.any() else None,
    })

    idx = cfg.in_range_indices
    speed = float(np.median(mechanism.state_speed_per_s(cfg, states[idx]))) if ds else None
    travel = mechanism.state_travel(cfg, speed) if speed is not None else None
    m.update({"plateau_state_speed_per_s": speed, "state_travel": travel})
    for sigma in mechanism.NOISE_SIGMAS:
        m[f"precision_noise_{sigma:g}"] = noisy.get(sigma)
    m["readout_pcs_needed"] = readout_pcs
    u = pca.coding_direction(cfg, traj)
    m["readout_coding_cosine"] = _coding_cosine(w, u)
    m["readout_coding_cosine_untrained"] = _coding_cosine(
        untrained_sd["w"].double().numpy().reshape(-1),
        pca.coding_direction(cfg, pca.memory_trajectories(cfg, untrained_sd)))
    m["memory_mechanism"] = mechanism.mechanism(m["improvement_over_untrained"], travel)
    check = stepsize.step_check(cfg, sd, ev)
    if check is not None:  # only for a step coarser than the paper's
        m.update(check.metrics())
    return ModelAnalysis(m, _arrays(cfg, ev, net, mem, traj, md, gen, I, w, u))


def _coding_cosine(w: np.ndarray, u: np.ndarray | None) -> float | None:
    """cos(w, u) for the unit coding direction u (pca.coding_direction), None without one."""
    return float(w @ u / np.linalg.norm(w)) if u is not None else None


def _in_range_lyapunov(cfg: Config, md) -> dict:
    """The mean of the memory trajectories' finite-time exponents over the in-range durations, and the
    half-width of its 95 % interval: the mean of their intervals' half-widths (dynamics.lyapunov_halfwidth).
    The trials of one network may be correlated; whatever their correlation, the mean's standard error
    is at most the mean of theirs, and its starting-vector spread at most the mean of theirs."""
    idx = cfg.in_range_indices
    if not idx:
        return {"lyapunov_in_range_per_s": None, "lyapunov_in_range_halfwidth_per_s": None}
    half = [dynamics.lyapunov_halfwidth(md.lyapunov_se_per_s[i], md.lyapunov_blocks, md.lyapunov_start_spread_per_s[i])
            for i in idx]
    return {"lyapunov_in_range_per_s": float(np.mean(np.asarray(md.lyapunov_per_s)[idx])),
            "lyapunov_in_range_halfwidth_per_s": float(np.mean(half))}


def _plateau_and_fixed_points(cfg: Config, net: NetworkAnalysis, md, states: np.ndarray) -> dict:
    """Where the memory states lie in G's flow: G's fixed points (its census united with those found
    near this model's memory trajectories: fixed_points_with_memory, and how many of them the
    census lacked: fixed_points_new_from_memory), and for each test duration the fixed point nearest
    the state at the middle of the memory window (memory_nearest_point_*), and the nearest other
    than the origin (memory_nearest_nonzero_point_*; None where G has no other known): its norm,
    unstable dimension, and its distance from the state relative to the state's norm."""
    united, _ = dynamics.union_points([p for p in (net.points, md.points) if int(p.fixed.sum())])
    a = cfg.analysis
    s0, s1 = cfg.steps(a.mem_start_ms), cfg.steps(a.mem_T_ms)
    mid = states[:, (s0 + s1) // 2]
    n_fixed = int(united.fixed.sum())
    d = a.durations_ms
    out = {"fixed_points_with_memory": n_fixed, "fixed_points_new_from_memory": n_fixed - len(net.census),
           "memory_state_norm_by_duration": _by_duration(dict(zip(d, map(float, np.linalg.norm(mid, axis=1)))))}
    for name, beyond in (("point", False), ("nonzero_point", True)):
        near = dynamics.nearest_fixed_points(united, mid, beyond_origin=beyond)
        known = np.isfinite(near["distance"])
        out.update({
            f"memory_nearest_{name}_norm_by_duration": _by_duration(
                {k: float(v) if ok else None for k, v, ok in zip(d, near["norm"], known)}),
            f"memory_nearest_{name}_unstable_by_duration": _by_duration(
                {k: int(v) if ok else None for k, v, ok in zip(d, near["n_unstable"], known)}),
            f"memory_nearest_{name}_relative_distance_by_duration": _by_duration(
                {k: float(v) if ok else None for k, v, ok in zip(d, near["relative_distance"], known)})})
    return out


def _coding_projections(traj: np.ndarray, w: np.ndarray, u: np.ndarray | None) -> dict:
    """The memory trials' rates (D, T, N) projected on the readout direction w / |w| (traj_readout:
    the output over |w|) and on the direction that codes duration u (pca.coding_direction;
    traj_duration, zeros where there is none), both (D, T), in rate units."""
    r = np.asarray(traj, dtype=np.float64)
    return {"traj_readout": r @ (w / np.linalg.norm(w)),
            "traj_duration": r @ u if u is not None else np.zeros(r.shape[:2])}


def _arrays(cfg, ev, net, mem, traj, md, gen, I, w, u) -> dict:
    """What the notebooks and the population report draw: the test trials (eval_*), the PCs'
    eigenvalues and the loadings of I and w on them (spont_*, mem_*), the leading memory PCs
    (mem_pcs, N x N_PROJECTED), the memory trials (traj_*), the points near them (points_*:
    analysis.dynamics.Points.to_arrays, and projected on the PCs), and the duration sweep (gen_*)."""
    E = mem.eigvecs[:, :N_PROJECTED]
    mean = traj.reshape(-1, traj.shape[-1]).mean(0)
    pts = md.points
    return {
        "eval_t_ms": ev.t_ms, "eval_durations_ms": np.asarray(ev.durations_ms), "eval_x": ev.x,
        "eval_y": ev.y, "eval_target": ev.target,
        "spont_eigvals": net.spontaneous.eigvals, "spont_coef_I": net.spontaneous.eigvecs.T @ I,
        "mem_eigvals": mem.eigvals, "mem_coef_w": mem.eigvecs.T @ w, "mem_pcs": E,
        "traj_pcs": (traj - mean) @ E, **_coding_projections(traj, w, u),
        "traj_pulse_steps": np.array([cfg.pulse_steps(d) for d in cfg.analysis.durations_ms]),
        "traj_duration_fitted": np.isin(np.arange(len(cfg.analysis.durations_ms)), pca.coding_fit(cfg)),
        "traj_phase_steps": np.array(
            [cfg.steps(cfg.analysis.mem_onset_ms), cfg.steps(cfg.analysis.mem_start_ms)]),
        "points_pcs": (np.tanh(pts.h) - mean) @ E if len(pts) else np.zeros((0, N_PROJECTED)),
        **pts.to_arrays(),
        "gen_durations_ms": gen.durations_ms, "gen_target": gen.target, "gen_plateau": gen.plateau,
        "gen_in_range": gen.in_training_range, "gen_hold_ms": gen.hold_ms, "gen_horizon_ms": np.array(gen.horizon_ms),
        "gen_trained_window_ms": np.array(gen.trained_window_ms),
    }
