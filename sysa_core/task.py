"""Trials of the pulse-duration task (README, Definitions 2) and the two losses (section 3)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import Config

MARKER = -1.0  # target value of the steps that are not evaluated (onset .. cost_onset)


@dataclass
class Trials:
    """A batch of trials. x, target: (B, T, 1). onset_step: (B,), -1 for catch trials.
    duration_ms: (B,) float, 0 for catch trials."""

    x: torch.Tensor
    target: torch.Tensor
    onset_step: torch.Tensor
    duration_ms: torch.Tensor

    @property
    def catch(self) -> torch.Tensor:
        return self.onset_step < 0

    def __len__(self) -> int:
        return self.x.shape[0]

    def subset(self, idx) -> "Trials":
        return Trials(self.x[idx], self.target[idx], self.onset_step[idx], self.duration_ms[idx])


def build_trials(cfg: Config, onset_step: torch.Tensor, duration_step: torch.Tensor,
                 T_steps: int, cost_onset_step: int | None = None) -> Trials:
    """Trials from explicit onsets and durations in steps (onset < 0 marks a catch trial).

    Input = sig for onset <= t < onset + D, or t <= onset + D under the original's rule
    (task.pulse_includes_end: both ends included, D + 1 steps); target = 0 before onset, the marker
    -1 for onset <= t < cost_onset, thresh * D_ms from cost_onset on (D_ms the labelled duration).
    """
    t = cfg.task
    if cost_onset_step is None:
        cost_onset_step = cfg.steps(t.cost_onset_ms)
    onset_step = onset_step.long()
    duration_step = duration_step.long()
    catch = onset_step < 0
    steps = torch.arange(T_steps).unsqueeze(0)
    on = onset_step.unsqueeze(1)
    end = on + duration_step.unsqueeze(1) + (1 if t.pulse_includes_end else 0)
    pulse = (steps >= on) & (steps < end) & ~catch.unsqueeze(1)
    x = torch.where(pulse, t.sig, 0.0)
    duration_ms = torch.where(catch, 0.0, duration_step.double() * cfg.model.dt_ms)
    level = (t.thresh * duration_ms).unsqueeze(1)
    target = torch.zeros(len(onset_step), T_steps, dtype=torch.float64)
    marker = (steps >= on) & (steps < cost_onset_step) & ~catch.unsqueeze(1)
    target = torch.where(marker, MARKER, target)
    target = torch.where((steps >= cost_onset_step) & ~catch.unsqueeze(1), level, target)
    dtype = torch.float64 if cfg.model.dtype == "float64" else torch.float32
    return Trials(x.unsqueeze(-1).to(dtype), target.unsqueeze(-1).to(dtype), onset_step,
                  duration_ms.to(dtype))


def draw_trials(cfg: Config, n: int, gen: torch.Generator) -> Trials:
    """n random training trials (catch fraction perc, onset and duration jitter), drawn only
    from `gen`. Jitters are uniform integers in [-SO, SO) steps (0 when SO = 0)."""
    t = cfg.task
    catch = torch.rand(n, generator=gen, dtype=torch.float64) < t.perc
    so_on, so_off = cfg.steps(t.SO_on_ms), cfg.steps(t.SO_off_ms)
    d_on = torch.randint(-so_on, so_on, (n,), generator=gen) if so_on else torch.zeros(n, dtype=torch.long)
    d_off = torch.randint(-so_off, so_off, (n,), generator=gen) if so_off else torch.zeros(n, dtype=torch.long)
    onset = cfg.steps(t.O_on_ms) + d_on
    duration = cfg.steps(t.O_off_ms) + d_off
    onset = torch.where(catch, -1, onset)
    return build_trials(cfg, onset, duration, cfg.steps(t.Nt_ms))


def fixed_trials(cfg: Config, durations_ms=None, onset_ms: int | None = None,
                T_ms: int | None = None) -> Trials:
    """One trial per duration, fixed onset, no catch trials (evaluation and precision)."""
    a = cfg.analysis
    durations_ms = a.durations_ms if durations_ms is None else durations_ms
    onset_ms = a.eval_onset_ms if onset_ms is None else onset_ms
    T_ms = cfg.task.Nt_ms if T_ms is None else T_ms
    n = len(durations_ms)
    onset = torch.full((n,), cfg.steps(onset_ms), dtype=torch.long)
    dur = torch.tensor([cfg.steps(d) for d in durations_ms], dtype=torch.long)
    return build_trials(cfg, onset, dur, cfg.steps(T_ms))


def per_trial_loss(y: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """sum(mask * (y - target)^2) / sum(mask) over time and outputs, per trial: (B,)."""
    m = mask.to(y.dtype)
    return (m * (y - target) ** 2).sum(dim=(1, 2)) / m.sum(dim=(1, 2))


def training_loss(y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over trials of the loss on every step whose target is not the marker (-1)."""
    return per_trial_loss(y, target, target != MARKER).mean()


def precision_loss(y: torch.Tensor, target: torch.Tensor, reduce: bool = True) -> torch.Tensor:
    """The same, on the plateau window only (target > 0)."""
    per = per_trial_loss(y, target, target > 0)
    return per.mean() if reduce else per
