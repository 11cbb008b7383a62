"""The output's plateau: how long it stays on its target, how it drifts, and how it generalises
to pulse durations beyond the trained range.

The plateau holds while |y - target| <= HOLD_TOLERANCE * target, target = thresh * duration,
counted from the cost onset; the trained window ends at Nt_ms, so a network that does the task
holds at least Nt_ms - cost_onset_ms. Times in ms, the output y in the task's units.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..model import run
from ..task import build_trials

#: default durations of the generalisation sweep: 10 .. 400 ms every 10 ms
SWEEP_MS = tuple(range(10, 401, 10))
#: how long after the cost onset the sweep follows each plateau (ms)
HOLD_HORIZON_MS = 10000
#: the plateau holds while |y - target| <= this share of the target
HOLD_TOLERANCE = 0.1
#: steps the sweep simulates at a time beyond the trained window, until every plateau has left its band
SWEEP_CHUNK_STEPS = 500


def slope_per_s(t_ms: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of y against time, in y units per second."""
    t = np.asarray(t_ms, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    tc = t - t.mean()
    return float((tc @ (y - y.mean())) / (tc @ tc) * 1000.0)


def _first_ms(event: np.ndarray, dt_ms: float) -> np.ndarray:
    """For a boolean array (D, T) of steps: the time (ms) of each row's first True step, or the
    whole span T * dt when it has none."""
    return np.where(event.any(axis=1), event.argmax(axis=1), event.shape[1]) * float(dt_ms)


def sign_kept_ms(y_after: np.ndarray, target: np.ndarray, dt_ms: float) -> np.ndarray:
    """For outputs y (D, T) from the cost onset on and their plateau targets (D,): the time (ms)
    until y first has the sign opposite to its target's (y = 0 keeps it), or the whole span T * dt
    when it never does."""
    sign = np.sign(np.asarray(target, dtype=np.float64))[:, None]
    return _first_ms(np.asarray(y_after, dtype=np.float64) * sign < 0, dt_ms)


def hold_ms(y_after: np.ndarray, target: np.ndarray, dt_ms: float, tolerance: float = HOLD_TOLERANCE) -> np.ndarray:
    """For outputs y (D, T) from the cost onset on and their plateau targets (D,): the time (ms)
    until |y - target| first exceeds tolerance * target, or the whole span T * dt when it never does."""
    out = np.abs(np.asarray(y_after, dtype=np.float64) - target[:, None]) > tolerance * np.abs(target[:, None])
    return _first_ms(out, dt_ms)


def in_band_fraction(y: np.ndarray, target: np.ndarray, tolerance: float = HOLD_TOLERANCE) -> np.ndarray:
    """For outputs y (D, T) over a window and their targets there (D, T): the share of the window's
    steps (D,) at which |y - target| <= tolerance * |target| (the output inside the band around its
    target, whether or not it left it before)."""
    y, target = np.asarray(y, dtype=np.float64), np.asarray(target, dtype=np.float64)
    return np.mean(np.abs(y - target) <= tolerance * np.abs(target), axis=1)


@dataclass
class Hold:
    """How the test trials' plateaus hold (analysis.precision.Evaluation, run for Nt + eval_extra_ms).

    hold_ms {duration: ms from the cost onset until the output leaves the band around its target,
    capped at the end of the run}; held_trained_window {duration: it stayed in that band up to Nt};
    steady_trained_window {duration: over the trained window the output stayed within
    HOLD_TOLERANCE * target of its own mean there: it holds a value, on target or not};
    drift_per_s {duration: least-squares slope of the output over the trained window's plateau (cost
    onset to Nt), output units per s}; sign_kept_ms {duration: ms from the cost onset until the
    output first takes the sign opposite to its target's, capped at the end of the run}; run_ms:
    the run's span after the cost onset (both caps)."""

    hold_ms: dict
    held_trained_window: dict
    steady_trained_window: dict
    drift_per_s: dict
    sign_kept_ms: dict
    run_ms: float


def hold(cfg, evaluation) -> Hold:
    """The hold of each test trial's plateau (over the whole evaluation run after the cost onset,
    the eval_extra_ms beyond the trained trial included) and its drift over the trained window."""
    ev = evaluation
    cost = cfg.steps(cfg.task.cost_onset_ms)
    window = cfg.trained_window_ms
    target = np.array([cfg.task.thresh * d for d in ev.durations_ms])
    ms = hold_ms(ev.y[:, cost:], target, cfg.model.dt_ms)
    win = np.asarray(ev.y[:, cost:cfg.steps(cfg.task.Nt_ms)], dtype=np.float64)
    steady = np.abs(win - win.mean(axis=1, keepdims=True)).max(axis=1) <= HOLD_TOLERANCE * target
    nt = cfg.steps(cfg.task.Nt_ms)
    drift = {int(d): slope_per_s(ev.t_ms[cost:nt], ev.y[i, cost:nt]) for i, d in enumerate(ev.durations_ms)}
    sign = sign_kept_ms(ev.y[:, cost:], target, cfg.model.dt_ms)
    return Hold({int(d): float(v) for d, v in zip(ev.durations_ms, ms)},
                {int(d): bool(v >= window) for d, v in zip(ev.durations_ms, ms)},
                {int(d): bool(v) for d, v in zip(ev.durations_ms, steady)}, drift,
                {int(d): float(v) for d, v in zip(ev.durations_ms, sign)},
                float((ev.y.shape[1] - cost) * cfg.model.dt_ms))


@dataclass
class Generalisation:
    """Plateau against pulse duration (one trial per duration, onset eval_onset_ms).

    durations_ms (D,); target (D,) = thresh * duration; plateau (D,) = mean of y over the trained
    plateau window [cost_onset_ms, Nt_ms); rmse (D,) = root mean square of y - target over the
    same window (the square root of the precision loss); in_training_range (D,) bool; hold_ms
    (D,): hold_ms over horizon_ms after the cost onset; held_trained_window (D,) bool: it held up
    to Nt; horizon_ms; trained_window_ms (Nt - cost onset)."""

    durations_ms: np.ndarray
    target: np.ndarray
    plateau: np.ndarray
    rmse: np.ndarray
    in_training_range: np.ndarray
    hold_ms: np.ndarray
    held_trained_window: np.ndarray
    horizon_ms: float
    trained_window_ms: float


def sweep_durations(cfg, durations_ms=None) -> tuple:
    """The sweep's durations: SWEEP_MS by default, keeping those whose pulse at eval_onset_ms
    ends before cost onset (the task's constraint)."""
    ds = SWEEP_MS if durations_ms is None else tuple(int(d) for d in durations_ms)
    t = cfg.task
    keep = tuple(d for d in ds if d > 0 and cfg.analysis.eval_onset_ms + d < t.cost_onset_ms
                 and abs(d / cfg.model.dt_ms - round(d / cfg.model.dt_ms)) < 1e-9)
    if not keep:
        raise ValueError(f"no duration of {ds} ends before cost onset ({t.cost_onset_ms} ms) "
                         f"with onset {cfg.analysis.eval_onset_ms} ms")
    return keep


def _sweep_outputs(cfg, sd: dict, x: torch.Tensor, nt: int, cost: int, target: np.ndarray, tol: float) -> np.ndarray:
    """y (D, T') of the sweep's trials x (D, T, 1): the first nt steps (the trained window), then
    SWEEP_CHUNK_STEPS at a time, continued from the last state, until every output has left its
    band (what follows no longer changes a hold) or the trials end. The continued simulation
    gives the bits of one uninterrupted simulation (the same operations on the same state)."""
    T = x.shape[1]
    y, h = run(cfg, sd, x[:, :nt], return_h=True, record_from=nt - 1)
    ys = [y]
    t = nt
    out = np.abs(y[:, cost:].double().numpy() - target[:, None]) > tol * np.abs(target[:, None])
    left = out.any(axis=1)
    while t < T and not left.all():
        y, h = run(cfg, sd, x[:, t:t + SWEEP_CHUNK_STEPS], h0=h[:, -1], return_h=True,
                   record_from=min(SWEEP_CHUNK_STEPS, T - t) - 1)
        ys.append(y)
        t += y.shape[1]
        left |= (np.abs(y.double().numpy() - target[:, None]) > tol * np.abs(target[:, None])).any(axis=1)
    return torch.cat(ys, dim=1).double().numpy()


def generalisation(cfg, sd: dict, durations_ms=None, horizon_ms: float = HOLD_HORIZON_MS) -> Generalisation:
    """Plateau value, error and hold against pulse duration, from one batched simulation of
    cost_onset + horizon_ms ms (default durations: sweep_durations(cfg)), stopped once every
    plateau has left its band."""
    ds = sweep_durations(cfg, durations_ms)
    t = cfg.task
    onset, cost = cfg.steps(cfg.analysis.eval_onset_ms), cfg.steps(t.cost_onset_ms)
    nt = cfg.steps(t.Nt_ms)
    T = max(cost + cfg.steps(horizon_ms), nt)
    dur = torch.tensor([cfg.steps(d) for d in ds])
    tr = build_trials(cfg, torch.full((len(ds),), onset), dur, T)
    target = t.thresh * np.asarray(ds, dtype=np.float64)
    y = _sweep_outputs(cfg, sd, tr.x, nt, cost, target, HOLD_TOLERANCE)
    win = y[:, cost:nt]
    window = cfg.trained_window_ms
    # beyond the simulated steps every output had left its band: the hold is decided within them
    ms = hold_ms(y[:, cost:cost + cfg.steps(horizon_ms)], target, cfg.model.dt_ms, HOLD_TOLERANCE)
    d_arr = np.asarray(ds, dtype=np.float64)
    return Generalisation(d_arr, target, win.mean(axis=1), np.sqrt(((win - target[:, None]) ** 2).mean(axis=1)),
                          np.array([cfg.in_trained_range(d) for d in d_arr]), ms, ms >= window,
                          float(horizon_ms), float(window))
