"""The trained network simulated with a finer Euler step than it was trained with: whether the
plateaus it learned stay when the step shrinks towards the continuous-time network, or move.

The model is an Euler discretisation of tau dh/dt = -h + g G tanh(h) + I x(t); a network trained
at dt = 10 ms can lean on the step's own errors. The check keeps everything in ms (onset, the
pulse's physical length, cost onset, trial length) and simulates the test trials again at
FINE_DT_MS, the paper's step (itself a discretisation, but a finer one); the plateau's target stays
thresh * D for the pulse labelled D.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..config import Config
from ..model import run
from ..task import fixed_trials
from .plateau import hold_ms
from .precision import Evaluation

#: the finer step: the paper's
FINE_DT_MS = 1.0


def applies(cfg: Config) -> bool:
    """Whether a model of this configuration gets the check: its step is coarser than FINE_DT_MS and a
    whole number of fine steps."""
    ratio = cfg.model.dt_ms / FINE_DT_MS
    return ratio > 1 and abs(ratio - round(ratio)) <= 1e-9


@dataclass
class StepCheck:
    """The test trials at the model's step (dt_ms) and at fine_dt_ms, per duration (ms, int keys):
    plateau {dt: {D: mean output over the trained window}}, relative_error {dt: {D: root mean
    square of output - target over the window, over the target}}, on_target_ms {dt: {D: ms from the
    cost onset until the output leaves its 10 % band, capped at the window's length window_ms}}."""

    dt_ms: float
    fine_dt_ms: float
    durations_ms: tuple
    in_range: dict
    window_ms: float
    plateau: dict
    relative_error: dict
    on_target_ms: dict

    def held_in_range(self, dt: float) -> float | None:
        """The share of the in-range test plateaus that stay in their band through the window at step dt."""
        ds = [d for d in self.durations_ms if self.in_range[d]]
        return float(np.mean([self.on_target_ms[dt][d] >= self.window_ms for d in ds])) if ds else None

    def relative_error_in_range(self, dt: float) -> float | None:
        """The root mean square of the in-range relative errors at step dt (as the index's "in range, relative")."""
        v = [self.relative_error[dt][d] for d in self.durations_ms if self.in_range[d]]
        return float(np.sqrt(np.mean(np.square(v)))) if v else None

    def metrics(self) -> dict:
        """The numbers at the fine step, and the plateau's mean at the model's own step, for metrics.json
        (the model's own relative errors and holds are in its other keys)."""
        by = lambda v, dt: {str(d): float(x) for d, x in v[dt].items()}  # noqa: E731
        f = self.fine_dt_ms
        return {"fine_step_dt_ms": f, "fine_step_trained_step_plateau_by_duration": by(self.plateau, self.dt_ms),
                "fine_step_plateau_by_duration": by(self.plateau, f),
                "fine_step_relative_error_by_duration": by(self.relative_error, f),
                "fine_step_hold_ms_by_duration": by(self.on_target_ms, f),
                "fine_step_held_trained_window": self.held_in_range(f),
                "fine_step_relative_error_trained_range": self.relative_error_in_range(f)}


def _fine_outputs(cfg: Config, sd: dict) -> np.ndarray:
    """The test trials (onset eval_onset_ms, pulses as long in ms as the model's own) simulated at
    FINE_DT_MS to the trial's end: y (D, T)."""
    at = replace(cfg, model=replace(cfg.model, dt_ms=FINE_DT_MS), task=replace(cfg.task, pulse_includes_end=False))
    pulse_ms = [cfg.pulse_steps(d) * cfg.model.dt_ms for d in cfg.analysis.durations_ms]  # its physical length
    trials = fixed_trials(at, pulse_ms, cfg.analysis.eval_onset_ms)
    return run(at, sd, trials.x).numpy()


def step_check(cfg: Config, sd: dict, evaluation: Evaluation) -> StepCheck | None:
    """The test trials at the model's step (from its `evaluation`, precision.evaluate: the same
    trials) and again at FINE_DT_MS (None when the check does not apply)."""
    if not applies(cfg):
        return None
    ds = tuple(int(d) for d in cfg.analysis.durations_ms)
    target = np.array([cfg.task.thresh * d for d in ds])
    plateau, rel, on_target = {}, {}, {}
    for step, y in ((cfg.model.dt_ms, evaluation.y), (FINE_DT_MS, _fine_outputs(cfg, sd))):
        win = np.asarray(y[:, round(cfg.task.cost_onset_ms / step):round(cfg.task.Nt_ms / step)], dtype=np.float64)
        plateau[step] = dict(zip(ds, win.mean(axis=1).tolist()))
        rel[step] = dict(zip(ds, (np.sqrt(np.mean((win - target[:, None]) ** 2, axis=1)) / target).tolist()))
        on_target[step] = dict(zip(ds, hold_ms(win, target, step).tolist()))
    return StepCheck(cfg.model.dt_ms, FINE_DT_MS, ds, {d: cfg.in_trained_range(d) for d in ds},
                     float(cfg.trained_window_ms), plateau, rel, on_target)
