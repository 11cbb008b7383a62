"""What kind of motion a trajectory settles into: a fixed point, a limit cycle (with its period) or
chaos (with its largest Lyapunov exponent), or, when the window resolves none of them, unresolved.

The rules, on a trajectory h (T, N) after its transient:

* fixed point: the state's speed at the end of the window is below SPEED_TOL per tau of the largest
  norm the trajectory reached (so a decay to the origin counts too);
* limit cycle: the state comes back to where it was, within RETURN_TOL of the trajectory's spread
  (root-mean-square distance from its mean), after a period P, from every reference time tested;
  P is the first such return (the fundamental period), refined between steps;
* chaos: no return, and the largest finite-time Lyapunov exponent's interval lies above 0;
* unresolved: anything else (say so, do not guess).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: a state moving slower than this share of its norm per tau is at rest
SPEED_TOL = 1e-6
#: a return within this share of the trajectory's spread counts as coming back
RETURN_TOL = 0.01
#: how many reference times the return is checked from, spread over the first half of the window
N_REFERENCES = 5


@dataclass
class Regime:
    """kind: "fixed point", "limit cycle", "chaos" or "unresolved"; period_ms (limit cycle);
    return_error: the largest relative distance of the best return over the reference times (nan
    when none was tried); lyapunov_per_s and its interval half-width as given; why: the evidence in
    a few words."""

    kind: str
    period_ms: float | None
    return_error: float
    lyapunov_per_s: float | None
    lyapunov_halfwidth_per_s: float | None
    why: str


def _first_return(h: np.ndarray, ref: int, min_lag: int, spread: float) -> tuple[int | None, float]:
    """The first local minimum of |h(ref + lag) - h(ref)| / spread below RETURN_TOL, for lag >= min_lag:
    (lag, its relative distance), or (None, the smallest relative distance seen)."""
    d = np.linalg.norm(h[ref + min_lag:] - h[ref], axis=1) / spread
    if len(d) < 3:
        return None, float("nan")
    for i in range(1, len(d) - 1):
        if d[i] <= d[i - 1] and d[i] <= d[i + 1] and d[i] < RETURN_TOL:
            return min_lag + i, float(d[i])
    return None, float(d.min())


def _refine(h: np.ndarray, ref: int, lag: int) -> float:
    """The return time between steps: the vertex of the parabola through the squared distances at
    lag - 1, lag, lag + 1 (in steps)."""
    if ref + lag + 1 >= len(h):
        return float(lag)
    d2 = [float(np.sum((h[ref + k] - h[ref]) ** 2)) for k in (lag - 1, lag, lag + 1)]
    den = d2[0] - 2 * d2[1] + d2[2]
    return float(lag) if den <= 0 else lag + 0.5 * (d2[0] - d2[2]) / den


def classify(h: np.ndarray, dt_ms: float, tau_ms: float, lyapunov_per_s: float | None = None,
             lyapunov_halfwidth_per_s: float | None = None) -> Regime:
    """The regime of the trajectory h (T, N) (its transient already dropped), steps of dt_ms.
    lyapunov_per_s and its interval's half-width (1/s) decide chaos where no return is found."""
    h = np.asarray(h, dtype=np.float64)
    T = len(h)
    scale = max(float(np.linalg.norm(h, axis=1).max()), 1e-300)
    speed = float(np.linalg.norm(h[-1] - h[-2])) / dt_ms * tau_ms / scale
    if speed < SPEED_TOL:
        return Regime("fixed point", None, float("nan"), lyapunov_per_s, lyapunov_halfwidth_per_s,
                      f"speed {speed:.1e} of its largest norm per tau at the end")
    spread = float(np.sqrt(np.mean(np.sum((h - h.mean(axis=0)) ** 2, axis=1))))
    min_lag = max(2, int(round(tau_ms / dt_ms)))  # a return sooner than tau is the state not yet having left
    refs = np.linspace(0, max(0, T // 2 - min_lag), N_REFERENCES).round().astype(int)
    lags, errors = [], []
    for r in refs:
        lag, err = _first_return(h, int(r), min_lag, spread)
        if lag is None or 2 * lag > T - r:  # a period must fit twice after its reference
            lags, errors = [], [err]
            break
        lags.append(_refine(h, int(r), lag))
        errors.append(err)
    if lags and max(lags) - min(lags) <= max(2.0, 0.02 * np.median(lags)):
        return Regime("limit cycle", float(np.median(lags)) * dt_ms, float(max(errors)), lyapunov_per_s,
                      lyapunov_halfwidth_per_s, f"returns within {max(errors):.1%} of its spread")
    closest = float(np.nanmin(errors)) if errors and np.isfinite(np.nanmin(errors)) else float("nan")
    if lyapunov_per_s is not None and lyapunov_halfwidth_per_s is not None \
            and lyapunov_per_s - lyapunov_halfwidth_per_s > 0:
        return Regime("chaos", None, closest, lyapunov_per_s, lyapunov_halfwidth_per_s,
                      "no return, a positive Lyapunov exponent")
    return Regime("unresolved", None, closest, lyapunov_per_s, lyapunov_halfwidth_per_s,
                  "no return within the window, and no exponent above 0 with its interval")
