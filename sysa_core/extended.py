"""The per-model numbers of issue 6 as flat, JSON-ready keys (added to
sysa_core.analysis.metrics and so to `sysa evaluate --json` and metrics.json).

Keys (v = input (I on the spontaneous PCs) or output (w on the memory-period PCs);
L = 90, 95, 99 % explained variance):

* initialisation confound (sysa_core.confound): weight_correlation_init, input_drift_cosine,
  output_drift_cosine, input_drift_norm, output_drift_norm;
* alignment (sysa_core.alignment), null of 1000 random vectors of the same norm, seed 0:
  {v}_topk{L}_k, {v}_topk{L}_fraction, {v}_topk{L}_null_mean, {v}_topk{L}_null_pct,
  {v}_var_alignment, {v}_var_alignment_null_mean, {v}_var_alignment_null_pct;
* float32 vs float64 simulation: pr_{v}_l1_f64, pr_{v}_l1_spread, pr_{v}_l2_f64,
  pr_{v}_l2_spread (spread = |x32 - x64| / |x64|), {v}_topk{L}_fraction_spread,
  {v}_var_alignment_spread;
* memory dynamics (sysa_core.dynamics): n_slow_points, n_fixed_points, n_slow_modes,
  n_unstable_modes, slowest_time_constant_ms (ms; null when no fixed point), slow_point_min_q,
  slow_point_max_speed_per_s, lyapunov_max_per_s (the largest over the memory trials, 1/s),
  lyapunov_per_s_by_duration;
* plateau (sysa_core.plateau): plateau_drift_per_s (mean |slope| over the test durations,
  output units per s), plateau_drift_per_s_by_duration; generalisation_rmse_trained_range and
  generalisation_rmse_outside_range (mean over the sweep's durations inside / outside the
  trained range of the per-duration RMSE on the plateau window), plateau_hold_ms_min,
  plateau_hold_ms_median (ms, capped at the 10 s horizon), plateau_hold_fraction_held.
"""
from __future__ import annotations

import math

import numpy as np

from . import alignment, confound, dynamics, plateau
from .threads import limited


def _finite_or_none(x):
    return float(x) if x is not None and math.isfinite(x) else None


def extended_metrics(cfg, sd: dict, evaluation=None, pcas: tuple | None = None, *, with_dynamics: bool = True,
                     with_generalisation: bool = True, memory_dynamics=None, generalisation=None,
                     n_null: int = alignment.N_NULL, threads: int | None = 1) -> dict:
    """The issue-6 metrics of one model (keys in the module docstring).

    evaluation: sysa_core.analysis.Evaluation of the model (computed when absent);
    pcas: (spontaneous PCA, memory PCA) in the configured dtype (computed when absent).
    with_dynamics / with_generalisation: include the slow points and Lyapunov exponent / the duration
    sweep (the two most expensive parts, a few seconds each for N = 500).
    memory_dynamics / generalisation: a sysa_core.dynamics.MemoryDynamics / sysa_core.plateau.Generalisation
    of this model already computed (a notebook that shows them passes them in so they are computed once).
    threads: thread cap for the block (sysa_core.threads.limited; None leaves them as they are).
    """
    from . import analysis

    with limited(threads):
        ev = evaluation or analysis.evaluate(cfg, sd)
        if pcas is None:
            pcas = (analysis.spontaneous_pca(cfg, sd), analysis.memory_pca(cfg, sd))
        out: dict = {}
        conf = confound.init_confound(cfg, sd)
        out.update({k: conf[k] for k in ("weight_correlation_init", "input_drift_cosine", "output_drift_cosine",
                                         "input_drift_norm", "output_drift_norm")})
        for name, vec, pca in (("input", sd["I"], pcas[0]), ("output", sd["w"], pcas[1])):
            for k, v in alignment.alignment(vec, pca, n_null=n_null, seed=0).items():
                out[f"{name}_{k}"] = v
        spread = alignment.precision_spread(cfg, sd, {cfg.model.dtype: tuple(pcas)})
        for name in ("input", "output"):
            s = spread[name]
            for pr in ("l1", "l2"):
                out[f"pr_{name}_{pr}_f64"] = s[pr]["f64"]
                out[f"pr_{name}_{pr}_spread"] = s[pr]["spread"]
            for k, v in s.items():
                if k not in ("l1", "l2"):
                    out[f"{name}_{k}_spread"] = v["spread"]
        if with_dynamics:
            md = memory_dynamics if memory_dynamics is not None else dynamics.memory_dynamics(cfg, sd)
            summ = md.slow_points.summary()
            out.update({
                "n_slow_points": summ["n_slow_points"], "n_fixed_points": summ["n_fixed_points"],
                "n_slow_modes": summ["n_slow_modes"], "n_unstable_modes": summ["n_unstable_modes"],
                "slowest_time_constant_ms": _finite_or_none(summ["slowest_time_constant_ms"]),
                "slow_point_min_q": _finite_or_none(summ["min_q"]),
                "slow_point_max_speed_per_s": _finite_or_none(summ["max_speed_per_s"]),
                "lyapunov_max_per_s": md.lyapunov_max_per_s,
                "lyapunov_per_s_by_duration": {str(int(d)): float(v) for d, v in
                                               zip(cfg.analysis.durations_ms, md.lyapunov_per_s)},
            })
        drift = plateau.plateau_drift(ev)
        out["plateau_drift_per_s"] = float(np.mean(np.abs(list(drift.values()))))
        out["plateau_drift_per_s_by_duration"] = {str(k): float(v) for k, v in drift.items()}
        if with_generalisation:
            g = generalisation if generalisation is not None else plateau.generalisation(cfg, sd)
            inr, outr = g.rmse[g.in_training_range], g.rmse[~g.in_training_range]
            out.update({
                "generalisation_rmse_trained_range": float(inr.mean()) if inr.size else None,
                "generalisation_rmse_outside_range": float(outr.mean()) if outr.size else None,
                "plateau_hold_ms_min": float(g.hold_ms.min()),
                "plateau_hold_ms_median": float(np.median(g.hold_ms)),
                "plateau_hold_fraction_held": float(g.held.mean()),
            })
    return out
