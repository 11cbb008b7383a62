"""The output's plateau: its drift during the memory period, how it generalises to pulse
durations beyond the trained range, and how long it holds.

Times in ms, the output y in the task's units (target = thresh * duration_ms).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..model import run
from ..task import build_trials

#: default durations of the generalisation sweep: 10 .. 400 ms every 10 ms
SWEEP_MS = tuple(range(10, 401, 10))
#: default horizon over which the plateau must hold (ms after cost onset)
HOLD_HORIZON_MS = 10000
#: default tolerance: the plateau holds while |y - y(cost onset)| <= this share of the target
HOLD_TOLERANCE = 0.1


def slope_per_s(t_ms: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of y against time, in y units per second."""
    t = np.asarray(t_ms, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    tc = t - t.mean()
    return float((tc @ (y - y.mean())) / (tc @ tc) * 1000.0)


def plateau_drift(evaluation) -> dict:
    """The output's drift during the plateau of each evaluation trial (sysa_core.analysis.
    Evaluation): the least-squares slope of y over the window where the target is the plateau
    (target > 0: from cost onset to the end of the evaluation run, i.e. including the
    eval_extra_ms beyond the trained trial), in output units per second. {duration_ms: slope}."""
    out = {}
    for i, d in enumerate(evaluation.durations_ms):
        win = evaluation.target[i] > 0
        out[int(d)] = slope_per_s(evaluation.t_ms[win], evaluation.y[i, win])
    return out


@dataclass
class Generalisation:
    """Plateau against pulse duration (one trial per duration, onset eval_onset_ms).

    durations_ms (D,); target (D,) = thresh * duration; plateau (D,) = mean of y over the trained
    plateau window [cost_onset_ms, Nt_ms); error (D,) = plateau - target; rmse (D,) = root mean
    square of y - target over the same window (the square root of the precision loss);
    in_training_range (D,) bool: the duration lies in the trained range [O_off - SO_off,
    O_off + SO_off); hold_ms (D,): time from cost onset until |y(t) - y(cost onset)| first
    exceeds tolerance * target, or horizon_ms when it never does within the horizon;
    held (D,) bool: it never did; horizon_ms, tolerance; t_ms (T,) time from trial start;
    y (D, T) the outputs."""

    durations_ms: np.ndarray
    target: np.ndarray
    plateau: np.ndarray
    error: np.ndarray
    rmse: np.ndarray
    in_training_range: np.ndarray
    hold_ms: np.ndarray
    held: np.ndarray
    horizon_ms: float
    tolerance: float
    t_ms: np.ndarray
    y: np.ndarray


def sweep_durations(cfg, durations_ms=None) -> tuple:
    """The sweep's durations: SWEEP_MS by default, keeping those whose pulse at eval_onset_ms
    ends before cost onset (the task's constraint; all of them for the paper and quick
    profiles)."""
    ds = SWEEP_MS if durations_ms is None else tuple(int(d) for d in durations_ms)
    t = cfg.task
    keep = tuple(d for d in ds if d > 0 and cfg.analysis.eval_onset_ms + d < t.cost_onset_ms)
    if not keep:
        raise ValueError(f"no duration of {ds} ends before cost onset ({t.cost_onset_ms} ms) "
                         f"with onset {cfg.analysis.eval_onset_ms} ms")
    return keep


def generalisation(cfg, sd: dict, durations_ms=None, horizon_ms: float = HOLD_HORIZON_MS,
                   tolerance: float = HOLD_TOLERANCE) -> Generalisation:
    """Plateau value, error and hold time against pulse duration, from one batched simulation
    of cost_onset + horizon_ms ms (default durations: sweep_durations(cfg))."""
    ds = sweep_durations(cfg, durations_ms)
    t = cfg.task
    onset, cost = cfg.steps(cfg.analysis.eval_onset_ms), cfg.steps(t.cost_onset_ms)
    nt, T = cfg.steps(t.Nt_ms), cost + cfg.steps(horizon_ms)
    T = max(T, nt)
    dur = torch.tensor([cfg.steps(d) for d in ds])
    tr = build_trials(cfg, torch.full((len(ds),), onset), dur, T)
    y = run(cfg, sd, tr.x).double().numpy()
    target = t.thresh * np.asarray(ds, dtype=np.float64)
    win = y[:, cost:nt]
    plateau = win.mean(axis=1)
    rmse = np.sqrt(((win - target[:, None]) ** 2).mean(axis=1))
    after = y[:, cost:cost + cfg.steps(horizon_ms)]
    out_of_band = np.abs(after - after[:, :1]) > tolerance * target[:, None]
    held = ~out_of_band.any(axis=1)
    first = np.where(held, after.shape[1], out_of_band.argmax(axis=1))
    hold_ms = np.minimum(first * cfg.model.dt_ms, horizon_ms)
    d_arr = np.asarray(ds, dtype=np.float64)
    in_range = np.array([cfg.in_trained_range(d) for d in d_arr])
    return Generalisation(d_arr, target, plateau, plateau - target, rmse, in_range, hold_ms.astype(np.float64),
                          held, float(horizon_ms), float(tolerance), np.arange(T) * cfg.model.dt_ms, y)
