"""Per-model analyses (SPEC section 5). Every function is pure: it reads the model's tensors and
returns numbers; nothing it is given is modified (tensors are copied on entry)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .config import Config
from .engine import simulate
from .model import DTYPES
from .task import fixed_trials, precision_loss


def _weights(cfg: Config, sd: dict) -> dict:
    """Private copies of G, I, w, h0 in the configured dtype (the caller's tensors stay untouched)."""
    dtype = DTYPES[cfg.model.dtype]
    return {k: v.detach().to("cpu", dtype).clone() for k, v in sd.items()}


def run(cfg: Config, sd: dict, x_btd: torch.Tensor, h0: torch.Tensor | None = None, return_r: bool = True):
    """Simulate trials x (B, T, 1) from h0 (default the model's). Returns y (B, T) [, r (B, T, N)]."""
    wt = _weights(cfg, sd)
    h = wt["h0"] if h0 is None else h0.to(wt["G"].dtype)
    return simulate(wt["G"], wt["I"], wt["w"], h, x_btd.to(wt["G"].dtype), cfg.alpha, cfg.model.g_G, return_r)


@dataclass
class Evaluation:
    """Test trials (one per duration, onset eval_onset_ms) run for Nt + eval_extra_ms."""

    durations_ms: tuple
    t_ms: np.ndarray  # (T,)
    x: np.ndarray  # (D, T)
    y: np.ndarray  # (D, T)
    target: np.ndarray  # (D, T), -1 where not evaluated
    precision: float  # mean precision loss over the durations, on the first Nt ms
    precision_by_duration: dict  # {duration_ms: loss}


def evaluate(cfg: Config, sd: dict) -> Evaluation:
    """Outputs for the test durations over Nt + eval_extra_ms, and the precision computed on
    the first Nt ms of the same simulation (identical to a run of length Nt)."""
    a = cfg.analysis
    T_ms = cfg.task.Nt_ms + a.eval_extra_ms
    tr = fixed_trials(cfg, a.durations_ms, a.eval_onset_ms, T_ms)
    y = run(cfg, sd, tr.x, return_r=False)
    nt = cfg.steps(cfg.task.Nt_ms)
    per = precision_loss(y[:, :nt, None], tr.target[:, :nt].to(y.dtype), reduce=False)
    by = {int(d): float(p) for d, p in zip(a.durations_ms, per)}
    return Evaluation(tuple(a.durations_ms), np.arange(y.shape[1]) * cfg.model.dt_ms, tr.x[:, :, 0].numpy(),
                      y.numpy(), tr.target[:, :, 0].numpy(), float(per.mean()), by)


def weight_correlation(I: torch.Tensor, w: torch.Tensor) -> float:
    """Cosine similarity (I . w) / (|I| |w|), not centred."""
    I, w = I.detach().double().flatten(), w.detach().double().flatten()
    return float(I @ w / (I.norm() * w.norm()))


def signals(cfg: Config, sd: dict, onset_ms: int, T_ms: int, duration_ms: int):
    """One trial: rates r (T, N) and output y (T), numpy."""
    tr = fixed_trials(cfg, (duration_ms,), onset_ms, T_ms)
    y, r = run(cfg, sd, tr.x)
    return r[0].numpy(), y[0].numpy()


@dataclass
class PCA:
    """Eigen-decomposition of an activity covariance: eigenvalues descending (N,), eigenvectors
    as columns (N, N), and the covariance itself (float64)."""

    eigvals: np.ndarray
    eigvecs: np.ndarray
    cov: np.ndarray

    @property
    def explained(self) -> np.ndarray:
        lam = np.clip(self.eigvals, 0, None)
        return lam / lam.sum()

    @property
    def dimensionality(self) -> float:
        return dimensionality(self.eigvals)


def covariance(x_tn: np.ndarray, ddof: int) -> np.ndarray:
    """Covariance of the columns of x (time x units), as one matrix product in float64."""
    x = np.asarray(x_tn, dtype=np.float64)
    xc = x - x.mean(axis=0, keepdims=True)
    return xc.T @ xc / (x.shape[0] - ddof)


def pca_of(cov: np.ndarray) -> PCA:
    lam, vec = np.linalg.eigh(cov)  # symmetric solver, ascending
    return PCA(lam[::-1].copy(), vec[:, ::-1].copy(), cov)


def spontaneous_rates(cfg: Config, sd: dict) -> np.ndarray:
    """Rates (window x N) of the autonomous network started from h = spont_h0 for every unit."""
    a = cfg.analysis
    n = cfg.model.hidden_size
    T = cfg.steps(a.spont_T_ms)
    x = torch.zeros(1, T, 1)
    h0 = torch.full((n,), a.spont_h0)
    _, r = run(cfg, sd, x, h0=h0)
    return r[0, cfg.steps(a.spont_start_ms):].numpy()


def spontaneous_pca(cfg: Config, sd: dict) -> PCA:
    """PCs of the spontaneous activity (covariance over [spont_start, spont_T), ddof 1)."""
    return pca_of(covariance(spontaneous_rates(cfg, sd), ddof=1))


def memory_trajectories(cfg: Config, sd: dict) -> np.ndarray:
    """Rates (D, T, N) of the memory-PCA trials: a pulse of each test duration at mem_onset_ms."""
    a = cfg.analysis
    tr = fixed_trials(cfg, a.durations_ms, a.mem_onset_ms, a.mem_T_ms)
    _, r = run(cfg, sd, tr.x)
    return r.numpy()


def memory_rates(cfg: Config, sd: dict, trajectories: np.ndarray | None = None) -> np.ndarray:
    """Rates (D, window, N) of the memory period after pulses of each test duration."""
    r = memory_trajectories(cfg, sd) if trajectories is None else trajectories
    return r[:, cfg.steps(cfg.analysis.mem_start_ms):]


def memory_pca(cfg: Config, sd: dict, trajectories: np.ndarray | None = None) -> PCA:
    """PCs of the memory-period activity: per-trial covariance (ddof 0) averaged over durations."""
    r = memory_rates(cfg, sd, trajectories)
    return pca_of(np.mean([covariance(ri, ddof=0) for ri in r], axis=0))


def participation_ratios(v, eigvecs: np.ndarray) -> dict:
    """Participation of vector v on the eigenvectors (columns), c_i = e_i . v.

    l1 = (sum |c_i|)^2 / sum c_i^2  (the original's stated intent; 1..N)
    l2 = (sum c_i^2)^2 / sum c_i^4  (the standard participation ratio; 1..N)
    signed = (sum c_i)^2 / sum c_i^2, the original's formula: it depends on the arbitrary sign
    of each eigenvector and is reported only for comparison.
    """
    c = np.asarray(eigvecs, dtype=np.float64).T @ np.asarray(v, dtype=np.float64).reshape(-1)
    c2 = c * c
    return {"l1": float(np.abs(c).sum() ** 2 / c2.sum()), "l2": float(c2.sum() ** 2 / (c2 * c2).sum()),
            "signed": float(c.sum() ** 2 / c2.sum())}


def dimensionality(eigvals) -> float:
    """Activity dimensionality (sum lambda)^2 / sum lambda^2."""
    lam = np.clip(np.asarray(eigvals, dtype=np.float64), 0, None)
    return float(lam.sum() ** 2 / (lam * lam).sum())


def metrics(cfg: Config, sd: dict, evaluation: Evaluation | None = None, extended: bool = True,
            threads: int | None = 1, **extended_options) -> dict:
    """All per-model numbers of SPEC section 5 as a flat JSON-ready dict, followed (with
    `extended`) by those of issue 6 (sysa_core.extended.extended_metrics; extended_options
    go to it, e.g. with_dynamics=False or with_generalisation=False to leave out the expensive parts).
    threads caps torch's and numpy's BLAS threads for the block (sysa_core.threads; None: as set)."""
    from .threads import limited

    with limited(threads):
        ev = evaluation or evaluate(cfg, sd)
        sp = spontaneous_pca(cfg, sd)
        mem = memory_pca(cfg, sd)
        pr_in = participation_ratios(sd["I"].detach().cpu().numpy(), sp.eigvecs)
        pr_out = participation_ratios(sd["w"].detach().cpu().numpy(), mem.eigvecs)
        out = {
            "precision": ev.precision,
            "precision_by_duration": {str(k): v for k, v in ev.precision_by_duration.items()},
            "weight_correlation": weight_correlation(sd["I"], sd["w"]),
            "pr_input_l1": pr_in["l1"], "pr_input_l2": pr_in["l2"],
            "pr_output_l1": pr_out["l1"], "pr_output_l2": pr_out["l2"],
            "dim_spontaneous": sp.dimensionality, "dim_memory": mem.dimensionality,
        }
        if extended:
            from .extended import extended_metrics

            out.update(extended_metrics(cfg, sd, ev, (sp, mem), threads=None, **extended_options))
    return out
