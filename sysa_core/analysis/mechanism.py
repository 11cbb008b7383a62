"""How a trained network holds its plateau: by an attractor (the state settles while the output
holds) or by a transient (the state keeps moving while the output holds: the readout is nearly
blind to its motion). The rule cannot tell a transient from a limit cycle.

Only I and w are trained, so the memory must live in G's fixed flow. The measures, on the memory
trials (a pulse of each test duration at mem_onset_ms; their memory window is the trained plateau
window shifted to that onset), for the test durations inside the trained range:

* plateau_state_speed_per_s: the state's mean relative speed |dh/dt| / |h| over the memory window
  (1/s), the median over the durations; times the window's length it is the share of its norm the
  state travels while the output should hold (`state_travel`);
* precision_noise_<sigma>: the plateau MSE when independent Gaussian noise of std
  sigma * sqrt(dt / tau) is added to every unit's state at every step (sigma in units of h, scaled
  so that it means the same at any dt), mean over the durations and NOISE_DRAWS draws;
* readout_pcs_needed: how many PCs of the memory-period activity the readout needs to reproduce
  its output within HOLD_TOLERANCE of the target (`readout_pcs_needed`);
* memory_mechanism, by the rule in `mechanism` (which also uses the precision's improvement
  over the untrained network: precision_untrained_trained_range / precision_trained_range).
"""
from __future__ import annotations

import math

import numpy as np

from ..config import Config
from ..model import derive_seed, generator, run
from ..task import fixed_trials
from .plateau import HOLD_TOLERANCE

#: the noise levels of precision_noise_<sigma> (units of h)
NOISE_SIGMAS = (0.01, 0.03, 0.1)
#: noise draws per level and duration
NOISE_DRAWS = 4
#: the state has settled when it travels less than this share of its norm during the hold
SETTLED_TRAVEL = 0.1
#: a network holds the trained plateaus when its in-range precision is this many times better
#: than untrained
LEARNED = 10.0


def in_range_durations(cfg: Config) -> list[int]:
    """The test durations inside the trained range."""
    return [int(cfg.analysis.durations_ms[i]) for i in cfg.in_range_indices]


def _window(cfg: Config) -> slice:
    return slice(cfg.steps(cfg.analysis.mem_start_ms), cfg.steps(cfg.analysis.mem_T_ms))


def state_speed_per_s(cfg: Config, states_dtn: np.ndarray) -> np.ndarray:
    """The mean relative speed |h(t+1) - h(t)| / (dt |h(t)|) of each memory trial's state (D, T, N)
    over the memory window, in 1/s: (D,)."""
    h = np.asarray(states_dtn, dtype=np.float64)[:, _window(cfg)]
    step = np.linalg.norm(np.diff(h, axis=1), axis=2)
    size = np.linalg.norm(h[:, :-1], axis=2)
    return (step / np.maximum(size, 1e-300)).mean(axis=1) / cfg.model.dt_ms * 1000.0


def state_travel(cfg: Config, speed_per_s: float) -> float:
    """The share of its norm the state travels over the memory window at this relative speed."""
    return speed_per_s * cfg.memory_window_ms / 1000.0


def readout_pcs_needed(cfg: Config, rates_dtn: np.ndarray, w, tolerance: float = HOLD_TOLERANCE) -> int:
    """How many PCs of the memory-period activity the readout needs to reproduce its own output:
    the fewest k such that reading out the activity reconstructed from its first j PCs (the mean
    plus the projection on them) stays within tolerance * target of the output, at every step of
    every in-range memory trial, for every j >= k. The PCs are those of the memory-window rates
    pooled over the in-range trials (rates (D, T, N) of the memory trials in analysis.durations_ms
    order): the differences between the trials, which carry the plateau levels, are among them.
    A state resting at a duration-dependent point needs as many PCs as there are levels to tell
    apart (at most one fewer than the durations); a readout fitted to cancel the motion of a moving
    state needs every PC of that motion."""
    w = np.asarray(w, dtype=np.float64).reshape(-1)
    ds = [(i, cfg.analysis.durations_ms[i]) for i in cfg.in_range_indices]
    r = np.concatenate([np.asarray(rates_dtn[i], dtype=np.float64)[_window(cfg)] for i, _ in ds])
    band = np.concatenate([np.full(len(r) // len(ds), tolerance * cfg.task.thresh * d) for _, d in ds])
    x = r - r.mean(axis=0)
    _, vecs = np.linalg.eigh(x.T @ x)
    c = x @ vecs[:, ::-1]  # coefficients on the PCs, leading first
    a = vecs[:, ::-1].T @ w
    # the output's error with the first j PCs kept is the readout of the others: sum_{i >= j} a_i c_i
    left_out = np.concatenate([np.cumsum((c * a)[:, ::-1], axis=1)[:, ::-1], np.zeros((len(r), 1))], axis=1)
    ok = (np.abs(left_out) <= band[:, None]).all(axis=0)  # column j: the first j PCs suffice
    steady_from = np.flip(np.logical_and.accumulate(np.flip(ok)))  # j: every j' >= j suffices
    return int(np.argmax(steady_from))


def noise_precision(cfg: Config, sd: dict, sigma: float, draws: int = NOISE_DRAWS) -> float:
    """The plateau MSE of the in-range memory trials under state noise sigma (module docstring),
    mean over the durations and `draws` seeded draws."""
    return noise_precisions(cfg, sd, (sigma,), draws)[sigma]


def noise_precisions(cfg: Config, sd: dict, sigmas=NOISE_SIGMAS, draws: int = NOISE_DRAWS) -> dict:
    """{sigma: noise_precision(cfg, sd, sigma, draws)} for each of `sigmas`, from one simulation:
    each level's trials are a block of rows with the noise generator of that level."""
    a = cfg.analysis
    ds = in_range_durations(cfg)
    one = [d for d in ds for _ in range(draws)]
    tr = fixed_trials(cfg, one * len(sigmas), a.mem_onset_ms, a.mem_T_ms)
    gens = [generator(derive_seed(cfg.seed, f"noise:{sigma}")) for sigma in sigmas]
    stds = [sigma * math.sqrt(cfg.alpha) for sigma in sigmas]
    y = run(cfg, sd, tr.x, noise_std=stds, noise=gens).double().numpy()
    target = np.repeat([cfg.task.thresh * d for d in ds], draws)
    err = ((y[:, _window(cfg)] - np.tile(target, len(sigmas))[:, None]) ** 2).reshape(len(sigmas), len(one), -1)
    return {sigma: float(e.mean()) for sigma, e in zip(sigmas, err)}


def mechanism(times_better: float | None, travel: float | None) -> str:
    """The rule: a network that does not hold the trained plateaus (its in-range precision is not at
    least LEARNED times better than the same network's untrained: `times_better` below it) has "no
    memory"; one that does holds them by an "attractor" when its state travels less than
    SETTLED_TRAVEL of its norm over the memory window, else by a "transient" (the state keeps
    moving while the output holds)."""
    if times_better is None or travel is None:
        return "undetermined"
    if times_better < LEARNED:
        return "no memory"
    return "attractor" if travel < SETTLED_TRAVEL else "transient"


def subspace_overlap(Ea: np.ndarray, Eb: np.ndarray) -> float:
    """The mean squared cosine of the principal angles between the column spaces of two orthonormal
    bases (N, k): 1 for the same subspace, about k / N for unrelated random ones."""
    s = np.linalg.svd(np.asarray(Ea, dtype=np.float64).T @ np.asarray(Eb, dtype=np.float64), compute_uv=False)
    return float(np.mean(np.clip(s, 0.0, 1.0) ** 2))
