"""Task performance and the weights' cosine (README, Definitions 5): the test trials, precision per
duration, split into the durations inside the trained range and those outside it, the I-w
cosine and how far training moved I and w from their initialisation (README, Definitions 6)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..config import Config
from ..model import init_weights, run
from ..task import fixed_trials, precision_loss


@dataclass
class Evaluation:
    """Test trials (one per duration, onset eval_onset_ms) run for Nt + eval_extra_ms.

    t_ms (T,); x, y, target (D, T), target -1 where not evaluated; precision_by_duration
    {duration_ms: plateau MSE on the first Nt ms}; in_range {duration_ms: inside the trained
    range}."""

    durations_ms: tuple
    t_ms: np.ndarray
    x: np.ndarray
    y: np.ndarray
    target: np.ndarray
    precision_by_duration: dict
    in_range: dict

    @property
    def precision(self) -> float:
        """The original's precision: the mean over every test duration (lower is better)."""
        return float(np.mean(list(self.precision_by_duration.values())))

    @property
    def precision_trained_range(self) -> float | None:
        """The mean over the test durations inside the trained range (None if there is none)."""
        v = [p for d, p in self.precision_by_duration.items() if self.in_range[d]]
        return float(np.mean(v)) if v else None

    @property
    def precision_extrapolation(self) -> float | None:
        """The mean over the test durations outside the trained range (None if there is none)."""
        v = [p for d, p in self.precision_by_duration.items() if not self.in_range[d]]
        return float(np.mean(v)) if v else None


    @property
    def relative_error_by_duration(self) -> dict:
        """{duration_ms: the root of the plateau MSE over the plateau's target}: the typical error as a
        share of the level the network should hold (the target on the scored plateau)."""
        out = {}
        for i, (d, p) in enumerate(self.precision_by_duration.items()):
            level = float(np.max(self.target[i]))
            out[d] = float(np.sqrt(p) / level) if level > 0 else None
        return out

    @property
    def relative_error_trained_range(self) -> float | None:
        """The root mean square of the relative errors over the test durations inside the trained range."""
        v = [r for d, r in self.relative_error_by_duration.items() if self.in_range[d] and r is not None]
        return float(np.sqrt(np.mean(np.square(v)))) if v else None


def evaluate(cfg: Config, sd: dict) -> Evaluation:
    """Outputs for the test durations over Nt + eval_extra_ms, and the precision computed on
    the first Nt ms of the same simulation (identical to a run of length Nt)."""
    a = cfg.analysis
    T_ms = cfg.task.Nt_ms + a.eval_extra_ms
    tr = fixed_trials(cfg, a.durations_ms, a.eval_onset_ms, T_ms)
    y = run(cfg, sd, tr.x)
    nt = cfg.steps(cfg.task.Nt_ms)
    per = precision_loss(y[:, :nt, None], tr.target[:, :nt].to(y.dtype), reduce=False)
    by = {int(d): float(p) for d, p in zip(a.durations_ms, per)}
    return Evaluation(tuple(int(d) for d in a.durations_ms), np.arange(y.shape[1]) * cfg.model.dt_ms,
                      tr.x[:, :, 0].numpy(), y.numpy(), tr.target[:, :, 0].numpy(), by,
                      {d: cfg.in_trained_range(d) for d in by})


def weight_correlation(I: torch.Tensor, w: torch.Tensor) -> float:
    """Cosine similarity (I . w) / (|I| |w|), not centred."""
    I, w = I.detach().double().flatten(), w.detach().double().flatten()
    return float(I @ w / (I.norm() * w.norm()))


def init_confound(cfg: Config, sd: dict) -> dict:
    """How the trained I and w relate to their initialisation (model.init_weights of cfg.seed
    under the configured scheme). With the seed-compatible initialisation I_init = sqrt(N) w_init,
    so the trained I-w cosine mostly measures how far w moved.

    Returns weight_correlation_init = cos(I_init, w_init), input_drift_cosine = cos(I, I_init),
    output_drift_cosine = cos(w, w_init), input_drift_norm = |I - I_init| / |I_init|,
    output_drift_norm = |w - w_init| / |w_init|.
    """
    init = init_weights(cfg.model, cfg.seed)
    I, w = sd["I"].detach().cpu().double(), sd["w"].detach().cpu().double()
    I0, w0 = init["I"].double(), init["w"].double()
    return {
        "weight_correlation_init": weight_correlation(I0, w0),
        "input_drift_cosine": weight_correlation(I, I0),
        "output_drift_cosine": weight_correlation(w, w0),
        "input_drift_norm": float((I - I0).norm() / I0.norm()),
        "output_drift_norm": float((w - w0).norm() / w0.norm()),
    }
