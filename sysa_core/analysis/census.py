"""A census of the fixed points of a network's autonomous flow, tau dh/dt = F(h) = -h + g phi(h) G'.

The flow depends on G alone, so the census is taken once per G. Fixed points are sought from many
starting states (states of the spontaneous activity, of trials driven by random input vectors, their
scaled copies and random states): q = |F|^2 / 2 is minimised from each (batched L-BFGS), every
distinct minimum is refined by Newton's method to machine precision, and the zeros of F are kept,
all of them, with their mirror images: phi is odd, so F(-h) = -F(h) and -h is a fixed point with
the same spectrum whenever h is one.

How complete it is cannot be proven; two estimates are reported: how many of the points (mirror
pairs counted once) were reached from a single start, and how many the second half of the starts
found that the first half had not (if doubling the starts still finds new points, more remain)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import dynamics

#: a zero of F: |F| below this (per tau, units of h) after Newton's refinement
F_TOL = 1e-9
#: a minimum of q below this is refined by Newton's method (|F| < 1.4e-3 per tau)
Q_CANDIDATE = 1e-6
#: Newton's refinement stops at this q (machine precision for |h| of order 10)
Q_FLOOR = 1e-28
#: the share of the starts of each kind (spontaneous, driven, scaled, random)
START_KINDS = ("spontaneous", "driven", "scaled", "random")
#: the per-point arrays of a Census, in its order
ARRAYS = ("h", "norm", "n_unstable", "leading", "slowest_decay_ms", "fastest_growth_ms", "residual", "orbit",
          "found", "found_first_half", "eigvals")


@dataclass
class Census:
    """The fixed points found, sorted by norm: h (K, N); norm (K,); n_unstable (K,) modes with
    Re lambda > zero_tol; leading (K,) the largest Re lambda (1/tau); slowest_decay_ms and
    fastest_growth_ms (K,) (nan when there is none); residual (K,) |F(h)|; orbit (K,) the index
    of the point's mirror pair (the origin is its own); found (K,) how many starts reached the
    pair; found_first_half (K,) how many of the first half of the starts did; n_starts; tau_ms."""

    h: np.ndarray
    norm: np.ndarray
    n_unstable: np.ndarray
    leading: np.ndarray
    slowest_decay_ms: np.ndarray
    fastest_growth_ms: np.ndarray
    residual: np.ndarray
    orbit: np.ndarray
    found: np.ndarray
    found_first_half: np.ndarray
    eigvals: np.ndarray
    n_starts: int
    tau_ms: float

    def __len__(self) -> int:
        return len(self.norm)

    @property
    def n_orbits(self) -> int:
        return int(len(np.unique(self.orbit)))

    def completeness(self) -> dict:
        """n_points, n_pairs (mirror pairs and the origin, each once), found_once (pairs reached
        from one start only), new_in_second_half (pairs the second half of the starts found and
        the first did not), n_starts."""
        first = {}
        for o, f, f1 in zip(self.orbit, self.found, self.found_first_half):
            first[int(o)] = (int(f), int(f1))
        return {"n_points": len(self), "n_pairs": len(first),
                "found_once": sum(1 for f, _ in first.values() if f == 1),
                "new_in_second_half": sum(1 for f, f1 in first.values() if f > 0 and f1 == 0),
                "n_starts": int(self.n_starts)}

    def points(self) -> dynamics.Points:
        """The census as dynamics.Points (every one a fixed point), for what draws and unites points."""
        q = 0.5 * self.residual ** 2
        return dynamics.Points(self.h, q, np.arange(len(self)), self.eigvals, self.tau_ms, q_fixed=0.5 * F_TOL ** 2)

    def to_arrays(self, prefix: str = "census_") -> dict:
        """The census as named arrays (for an npz file); from_arrays reads them back."""
        return {f"{prefix}{k}": getattr(self, k) for k in ARRAYS} | {
            f"{prefix}constants": np.array([self.n_starts, self.tau_ms])}

    @classmethod
    def from_arrays(cls, z, prefix: str = "census_") -> "Census":
        n_starts, tau = z[f"{prefix}constants"]
        return cls(**{k: z[f"{prefix}{k}"] for k in ARRAYS}, n_starts=int(n_starts), tau_ms=float(tau))

    def records(self) -> list[dict]:
        """One JSON-ready record per point."""
        def num(v):
            return None if not np.isfinite(v) else float(v)
        return [{"norm": float(self.norm[k]), "n_unstable": int(self.n_unstable[k]),
                 "leading_re_per_tau": float(self.leading[k]), "slowest_decay_ms": num(self.slowest_decay_ms[k]),
                 "fastest_growth_ms": num(self.fastest_growth_ms[k]), "residual": float(self.residual[k]),
                 "pair": int(self.orbit[k]), "found": int(self.found[k])} for k in range(len(self))]


def take(dyn: dynamics.RateDynamics, starts: np.ndarray, max_iter: int = 1500, n_newton: int = 20,
         zero_tol: float = 1e-9) -> Census:
    """The census from the starting states `starts` (M, N), in the order given (the first half
    and the second are compared for the completeness estimate)."""
    starts = np.atleast_2d(np.asarray(starts, dtype=np.float64))
    M, N = starts.shape
    h, q, _ = dynamics.minimise_q(dyn, starts, max_iter=max_iter)
    merge_tol = 1e-3 * np.sqrt(N)
    keep = dynamics._merge(h, q, merge_tol)  # distinct minima: refine each once
    polished = h[keep].copy()
    near = q[keep] <= Q_CANDIDATE  # slow points far from any zero are not refined (Newton would not reach one)
    if near.any():
        polished[near] = dynamics.newton_polish(dyn, polished[near], n_iter=n_newton, q_floor=Q_FLOOR)
    resid = np.linalg.norm(dyn.velocity(polished), axis=1)
    zeros = polished[resid <= F_TOL]
    pts = _distinct(np.vstack([zeros, -zeros, np.zeros((1, N))]), dyn, merge_tol)  # with every mirror image
    pts = pts[np.argsort(np.linalg.norm(pts, axis=1), kind="stable")]
    # which start reached which point: its minimum's representative, refined, lies on the point (or its mirror)
    nearest_kept = np.argmin(np.linalg.norm(h[:, None, :] - h[keep][None], axis=2), axis=1)  # index into keep
    end = polished[nearest_kept]
    d = np.minimum(np.linalg.norm(end[:, None, :] - pts[None], axis=2), np.linalg.norm(end[:, None, :] + pts[None], axis=2))
    reach = (d <= merge_tol) & (resid[nearest_kept] <= F_TOL)[:, None]
    orbit = _orbits(pts, merge_tol)
    found = np.array([reach[:, orbit == orbit[k]].any(axis=1).sum() for k in range(len(pts))])
    half = M // 2
    found1 = np.array([reach[:half, orbit == orbit[k]].any(axis=1).sum() for k in range(len(pts))])
    spectra = {}
    for k in range(len(pts)):  # J(-h) = J(h): one spectrum per pair
        if orbit[k] not in spectra:
            spectra[orbit[k]] = dynamics.jacobian_spectrum(dyn, pts[k])
    eigvals = np.array([spectra[o] for o in orbit]).reshape(len(pts), N)
    re = list(np.real(eigvals))
    n_unstable = np.array([int((r > zero_tol).sum()) for r in re])
    leading = np.array([float(r.max()) for r in re])
    slow = np.array([dyn.tau_ms / -r[r < -zero_tol].max() if (r < -zero_tol).any() else np.nan for r in re])
    fast = np.array([dyn.tau_ms / r[r > zero_tol].max() if (r > zero_tol).any() else np.nan for r in re])
    return Census(pts, np.linalg.norm(pts, axis=1), n_unstable, leading, slow, fast,
                  np.linalg.norm(dyn.velocity(pts), axis=1), orbit, found, found1, eigvals, M, float(dyn.tau_ms))


def _distinct(h: np.ndarray, dyn: dynamics.RateDynamics, tol: float) -> np.ndarray:
    keep = dynamics._merge(h, dyn.q(h), tol)
    return h[np.sort(keep)]


def _orbits(pts: np.ndarray, tol: float) -> np.ndarray:
    """The index of each point's mirror pair: the lower index of h and -h."""
    out = np.arange(len(pts))
    for k in range(len(pts)):
        d = np.linalg.norm(pts + pts[k], axis=1)
        j = int(np.argmin(d))
        if d[j] <= tol:
            out[k] = min(k, j)
    return out


def starts(dyn: dynamics.RateDynamics, spontaneous: np.ndarray, alpha: float, dt_ms: float, budget: int = 128,
           seed: int = 0, pulse_ms: tuple = (50.0, 400.0), hold_ms: float = 2000.0) -> np.ndarray:
    """`budget` starting states, in an order that mixes their kinds (so each half of the list has
    every kind): states of the spontaneous activity `spontaneous` (T, N); states after pulses of
    pulse_ms through random input vectors I ~ N(0, 1) (as the original draws I), over a hold of
    hold_ms; copies of both scaled by 0.5 to 1.5; random states with the spread of the others."""
    rng = np.random.default_rng(seed)
    per = max(1, budget // len(START_KINDS))
    spont = spontaneous[rng.choice(len(spontaneous), per, replace=len(spontaneous) < per)]
    n_trials = max(1, per // 4)
    T = int(round((pulse_ms[1] + hold_ms) / dt_ms))
    x = np.zeros((n_trials, T))
    for b in range(n_trials):
        x[b, : int(round(rng.uniform(*pulse_ms) / dt_ms))] = 1.0
    driven_all = np.concatenate([dynamics.simulate_states(dyn, rng.standard_normal(dyn.n), np.zeros(dyn.n), x[b:b + 1],
                                                          alpha)[0] for b in range(n_trials)])
    driven = driven_all[rng.choice(len(driven_all), per, replace=False)]
    pool = np.vstack([spont, driven])
    scaled = pool[rng.choice(len(pool), per)] * rng.uniform(0.5, 1.5, size=(per, 1))
    rest = budget - 3 * per
    scale = np.linalg.norm(pool, axis=1)
    rand = rng.standard_normal((rest, dyn.n)) / np.sqrt(dyn.n) * rng.choice(scale, size=(rest, 1))
    out = np.vstack([spont, driven, scaled, rand])
    return out[rng.permutation(len(out))]

