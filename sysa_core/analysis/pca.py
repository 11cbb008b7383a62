"""Principal components of the firing rates (README, Definitions 5): the spontaneous activity (for I)
and the memory period (for w), participation ratios of a vector on the PCs, and the activity
dimensionality. Covariances are one float64 matrix product; eigenvectors come from a
symmetric solver."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..config import Config
from ..model import run
from ..task import fixed_trials


@dataclass
class PCA:
    """Eigen-decomposition of an activity covariance (float64): eigenvalues descending (N,) and
    the eigenvectors as columns (N, N)."""

    eigvals: np.ndarray
    eigvecs: np.ndarray

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
    return PCA(lam[::-1].copy(), vec[:, ::-1].copy())


def spontaneous_rates(cfg: Config, sd: dict) -> np.ndarray:
    """Rates (window x N) of the autonomous network started from h = spont_h0 for every unit."""
    a = cfg.analysis
    n = cfg.model.hidden_size
    T = cfg.steps(a.spont_T_ms)
    x = torch.zeros(1, T, 1)
    h0 = torch.full((n,), a.spont_h0)
    _, r = run(cfg, sd, x, h0=h0, return_r=True, record_from=cfg.steps(a.spont_start_ms))
    return r[0].numpy()


def spontaneous_pca(cfg: Config, sd: dict) -> PCA:
    """PCs of the spontaneous activity (covariance over [spont_start, spont_T), ddof 1)."""
    return pca_of(covariance(spontaneous_rates(cfg, sd), ddof=1))


def memory_trajectories(cfg: Config, sd: dict) -> np.ndarray:
    """Rates (D, T, N) of the memory-PCA trials: a pulse of each test duration at mem_onset_ms."""
    a = cfg.analysis
    tr = fixed_trials(cfg, a.durations_ms, a.mem_onset_ms, a.mem_T_ms)
    _, r = run(cfg, sd, tr.x, return_r=True)
    return r.numpy()


def memory_rates(cfg: Config, sd: dict, trajectories: np.ndarray | None = None) -> np.ndarray:
    """Rates (D, window, N) of the memory period after pulses of each test duration."""
    r = memory_trajectories(cfg, sd) if trajectories is None else trajectories
    return r[:, cfg.steps(cfg.analysis.mem_start_ms):]


def memory_pca(cfg: Config, sd: dict, trajectories: np.ndarray | None = None) -> PCA:
    """PCs of the memory-period activity: per-trial covariance (ddof 0) averaged over durations."""
    r = memory_rates(cfg, sd, trajectories)
    return pca_of(np.mean([covariance(ri, ddof=0) for ri in r], axis=0))


def duration_slope(durations_ms, mean_rates) -> np.ndarray:
    """The least-squares slope (N,) of mean rates (D, N) on the pulse durations (D,): per unit, how
    its rate changes per ms of pulse (zeros for fewer than two distinct durations)."""
    d = np.asarray(durations_ms, dtype=np.float64)
    centred = d - d.mean()
    r = np.asarray(mean_rates, dtype=np.float64)
    return centred @ (r - r.mean(axis=0)) / max(float(centred @ centred), 1e-300)


def coding_fit(cfg) -> list[int]:
    """The positions in cfg.analysis.durations_ms of the test durations the coding direction is
    fitted to: those inside the trained range when there are at least two, else all of them."""
    inside = cfg.in_range_indices
    return inside if len(inside) >= 2 else list(range(len(cfg.analysis.durations_ms)))


def coding_direction(cfg, traj) -> np.ndarray | None:
    """The unit vector (N,) along which the memory window's mean rate changes with the pulse's
    duration: the least-squares slope of the trials' mean rates over [mem_start_ms, end) on their
    durations (traj (D, T, N): the memory trials of cfg.analysis.durations_ms from the trial's
    start), fitted to the trials of coding_fit (the trained range's), or None when their mean rates
    do not change with the duration beyond rounding (the change the slope predicts over the fitted
    durations' range is below 1e-12 of the largest mean rate vector)."""
    a = cfg.analysis
    fit = coding_fit(cfg)
    r = np.asarray(traj, dtype=np.float64)[fit]
    mean_rate = r[:, cfg.steps(a.mem_start_ms):].mean(axis=1)  # (D', N)
    d = [a.durations_ms[i] for i in fit]
    slope = duration_slope(d, mean_rate)
    norm = float(np.linalg.norm(slope))
    if norm * float(np.ptp(d)) <= 1e-12 * float(np.linalg.norm(mean_rate, axis=1).max()):
        return None
    return slope / norm


def readout_variances(y_window) -> tuple[float, float]:
    """The output's variance within the memory window (each trial's variance over time, ddof 0,
    averaged over the trials: for y = r w this is exactly w' C w of memory_pca's covariance) and
    between the trials (the variance of their time means, ddof 0: what a readout that tells the
    durations apart must carry, and that covariance leaves out), from y_window (D, T)."""
    y = np.asarray(y_window, dtype=np.float64)
    return float(y.var(axis=1).mean()), float(y.mean(axis=1).var())


def participation_ratios(v, eigvecs: np.ndarray) -> dict:
    """Participation of vector v on the eigenvectors (columns): ratios_of_coefficients(E' v)."""
    c = np.asarray(eigvecs, dtype=np.float64).T @ np.asarray(v, dtype=np.float64).reshape(-1)
    return ratios_of_coefficients(c)


def ratios_of_coefficients(c) -> dict:
    """Participation ratios of a vector from its coefficients c_i = e_i . v on all N eigenvectors.

    l1 = (sum |c_i|)^2 / sum c_i^2  (the original's stated intent; 1..N)
    l2 = (sum c_i^2)^2 / sum c_i^4  (the standard participation ratio; 1..N)
    signed = (sum c_i)^2 / sum c_i^2, the original's formula: it depends on the arbitrary sign
    of each eigenvector and is reported only for comparison.
    """
    c = np.asarray(c, dtype=np.float64)
    c2 = c * c
    return {"l1": float(np.abs(c).sum() ** 2 / c2.sum()), "l2": float(c2.sum() ** 2 / (c2 * c2).sum()),
            "signed": float(c.sum() ** 2 / c2.sum())}


def dimensionality(eigvals) -> float:
    """Activity dimensionality (sum lambda)^2 / sum lambda^2."""
    lam = np.clip(np.asarray(eigvals, dtype=np.float64), 0, None)
    return float(lam.sum() ** 2 / (lam * lam).sum())
