"""The trained network simulated with a finer Euler step than it was trained with: whether the
plateaus it learned belong to the continuous-time network (they stay when the step shrinks) or to
the coarse step's discrete map (they move).

The model is an Euler discretisation of tau dh/dt = -h + g G tanh(h) + I x(t); a network trained
at dt = 10 ms can lean on the step's own errors. The check keeps everything in ms (onset, the
pulse's physical length, cost onset, trial length) and simulates the test trials again at
FINE_DT_MS; the plateau's target stays thresh * D for the pulse labelled D.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from ..config import Config
from ..model import run
from ..task import build_trials
from .plateau import hold_ms

#: the finer step: the paper's
FINE_DT_MS = 1.0


@dataclass
class StepCheck:
    """The test trials at the model's step (dt_ms) and at fine_dt_ms, per duration (ms, int keys):
    plateau {dt: {D: mean output over the trained window}}, relative_error {dt: {D: root mean
    square of output - target over the window, over the target}}, hold_ms {dt: {D: ms from the
    cost onset until the output leaves its 10 % band, capped at the window's end}}."""

    dt_ms: float
    fine_dt_ms: float
    durations_ms: tuple
    in_range: dict
    window_ms: float
    plateau: dict
    relative_error: dict
    hold_ms: dict

    def held_in_range(self, dt: float) -> float | None:
        """The share of the in-range test plateaus that stay in their band through the window at step dt."""
        ds = [d for d in self.durations_ms if self.in_range[d]]
        return float(np.mean([self.hold_ms[dt][d] >= self.window_ms for d in ds])) if ds else None

    def relative_error_in_range(self, dt: float) -> float | None:
        """The root mean square of the in-range relative errors at step dt (as the index's "in range, relative")."""
        v = [self.relative_error[dt][d] for d in self.durations_ms if self.in_range[d]]
        return float(np.sqrt(np.mean(np.square(v)))) if v else None

    def metrics(self) -> dict:
        """The numbers at the fine step, for metrics.json (the model's own step is in its other keys)."""
        f = self.fine_dt_ms
        by = lambda v: {str(d): float(x) for d, x in v[f].items()}  # noqa: E731
        return {"fine_step_dt_ms": f, "fine_step_plateau_by_duration": by(self.plateau),
                "fine_step_relative_error_by_duration": by(self.relative_error),
                "fine_step_hold_ms_by_duration": by(self.hold_ms),
                "fine_step_held_trained_window": self.held_in_range(f),
                "fine_step_relative_error_trained_range": self.relative_error_in_range(f)}


def _outputs(cfg: Config, sd: dict, dt_ms: float) -> tuple[np.ndarray, int, int]:
    """The test trials (onset eval_onset_ms, pulses as long in ms as the model's own) simulated at
    step dt_ms to the trial's end: y (D, T), the cost onset's and the trial end's step."""
    a = cfg.analysis
    at = replace(cfg, model=replace(cfg.model, dt_ms=dt_ms), task=replace(cfg.task, pulse_includes_end=False))
    pulse = [cfg.pulse_steps(d) * cfg.model.dt_ms for d in a.durations_ms]  # its physical length, ms
    onset = torch.full((len(pulse),), at.steps(a.eval_onset_ms), dtype=torch.long)
    trials = build_trials(at, onset, torch.tensor([at.steps(p) for p in pulse]), at.steps(cfg.task.Nt_ms))
    return run(at, sd, trials.x).double().numpy(), at.steps(cfg.task.cost_onset_ms), at.steps(cfg.task.Nt_ms)


def step_check(cfg: Config, sd: dict, fine_dt_ms: float = FINE_DT_MS) -> StepCheck | None:
    """The test trials at the model's step and at fine_dt_ms (None when the model's step is not
    coarser, or is not a whole number of fine steps)."""
    dt = cfg.model.dt_ms
    ratio = dt / fine_dt_ms
    if dt <= fine_dt_ms or abs(ratio - round(ratio)) > 1e-9:
        return None
    ds = tuple(int(d) for d in cfg.analysis.durations_ms)
    target = np.array([cfg.task.thresh * d for d in ds])
    window = float(cfg.trained_window_ms)
    plateau, rel, hold = {}, {}, {}
    for step in (dt, fine_dt_ms):
        y, cost, end = _outputs(cfg, sd, step)
        win = y[:, cost:end]
        plateau[step] = dict(zip(ds, win.mean(axis=1).tolist()))
        rel[step] = dict(zip(ds, (np.sqrt(np.mean((win - target[:, None]) ** 2, axis=1)) / target).tolist()))
        hold[step] = dict(zip(ds, hold_ms(win, target, step).tolist()))
    return StepCheck(dt, fine_dt_ms, ds, {d: cfg.in_trained_range(d) for d in ds}, window, plateau, rel, hold)
