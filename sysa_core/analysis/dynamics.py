"""The dynamics of a rate network: fixed and slow points, the modes around the fixed points,
the largest Lyapunov exponent, and the trajectories they are found from.

The network of README, Definitions 1 in continuous time, row vectors, time in ms:

    tau dh/dt = F(h) + x(t) I',    F(h) = -h + g phi(h) G',    phi = tanh (or the identity)

so F is a velocity per unit of tau (h per tau). Its Jacobian, J_ij = dF_i/dh_j, is

    J(h) = -1 + g G diag(phi'(h))

and around a fixed point a mode with eigenvalue lambda of J evolves as exp(lambda t / tau): its
time constant is tau_ms / |Re lambda| (decaying when Re lambda < 0, growing when Re lambda > 0).
The simulation is the Euler map h <- h + alpha (F(h) + x_t I'), alpha = dt / tau, whose
tangent map is 1 + alpha J(h).

Everything here works on private float64 copies; nothing it is given is modified.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import stdtrit

from ..model import simulate
from ..task import fixed_trials

# -- the vector field ------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class RateDynamics:
    """The autonomous vector field F(h) = -h + g phi(h) G' (per tau) of a rate network.

    G: (N, N) recurrent weights; g: gain; tau_ms: time constant (ms);
    nonlinearity: "tanh" (the model) or "linear" (phi(h) = h, for constructed test systems).
    """

    G: np.ndarray
    g: float
    tau_ms: float
    nonlinearity: str = "tanh"

    def __post_init__(self):
        G = np.array(self.G, dtype=np.float64, copy=True)
        if G.ndim != 2 or G.shape[0] != G.shape[1]:
            raise ValueError(f"G must be square, got shape {G.shape}")
        if self.nonlinearity not in ("tanh", "linear"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'linear', got {self.nonlinearity!r}")
        G.setflags(write=False)
        object.__setattr__(self, "G", G)
        # dense products run in torch (float64), whose thread count the caller controls
        object.__setattr__(self, "_G", torch.from_numpy(G.copy()))

    @classmethod
    def from_model(cls, cfg, sd: dict) -> "RateDynamics":
        """The dynamics of a model: G from its state dict (copied to float64), g_G and tau_ms
        from the configuration."""
        G = sd["G"].detach().cpu().double().numpy()
        return cls(G, float(cfg.model.g_G), float(cfg.model.tau_ms), "tanh")

    @property
    def n(self) -> int:
        return self.G.shape[0]

    def phi(self, h):
        """phi(h), elementwise (numpy or torch)."""
        if self.nonlinearity == "linear":
            return h * 1.0
        return torch.tanh(h) if isinstance(h, torch.Tensor) else np.tanh(h)

    def dphi(self, h):
        """phi'(h), elementwise (numpy or torch)."""
        if self.nonlinearity == "linear":
            return h * 0.0 + 1.0
        return self.phi_and_dphi(h)[1]

    def phi_and_dphi(self, h):
        """(phi(h), phi'(h)), elementwise (numpy or torch), tanh evaluated once; both new arrays,
        which the caller may overwrite."""
        if self.nonlinearity == "linear":
            return h * 1.0, h * 0.0 + 1.0
        t = torch.tanh(h) if isinstance(h, torch.Tensor) else np.tanh(h)
        return t, 1.0 - t * t

    def rows_GT(self, a):
        """a G' for rows a (..., N): numpy in, numpy out (computed in torch)."""
        return (torch.as_tensor(np.asarray(a, dtype=np.float64)) @ self._G.T).numpy()

    def rows_G(self, a):
        """a G for rows a (..., N)."""
        return (torch.as_tensor(np.asarray(a, dtype=np.float64)) @ self._G).numpy()

    def velocity(self, h: np.ndarray) -> np.ndarray:
        """F(h) for states h (..., N) as rows: -h + g phi(h) G' (units: h per tau)."""
        h = np.asarray(h, dtype=np.float64)
        return -h + self.g * self.rows_GT(self.phi(h))

    def jacobian(self, h: np.ndarray) -> np.ndarray:
        """J(h) = -1 + g G diag(phi'(h)) at one state h (N,): (N, N), J_ij = dF_i / dh_j."""
        h = np.asarray(h, dtype=np.float64).reshape(-1)
        return self.g * self.G * self.dphi(h)[None, :] - np.eye(self.n)

    def q(self, h: np.ndarray) -> np.ndarray:
        """The kinetic energy q = |F(h)|^2 / 2 per state: (...,)."""
        f = self.velocity(h)
        return 0.5 * np.einsum("...i,...i->...", f, f)



# -- trajectories ------------------------------------------------------------------------------

def simulate_states(dyn: RateDynamics, I: np.ndarray, h0: np.ndarray, x_bt: np.ndarray, alpha: float,
                    record_from: int = 0) -> np.ndarray:
    """Euler trajectories h (B, T - record_from, N) in float64, the state after each step
    t = record_from .. T-1 (model.simulate with this system's G, g and phi).

    I: (N,) or (N, 1) input weights; h0: (N,) or (B, N); x_bt: (B, T) input (one channel).
    """
    x = torch.tensor(np.asarray(x_bt, dtype=np.float64))[:, :, None]
    I_col = torch.tensor(np.asarray(I, dtype=np.float64).reshape(-1, 1))
    w_col = torch.zeros(dyn.n, 1, dtype=torch.float64)
    phi = torch.tanh if dyn.nonlinearity == "tanh" else dyn.phi
    _, h = simulate(dyn._G, I_col, w_col, torch.tensor(np.asarray(h0, dtype=np.float64)), x, alpha, dyn.g,
                    return_h=True, record_from=record_from, phi=phi)
    return h.numpy()


# -- fixed and slow points -----------------------------------------------------------------------

#: points of an n-unit flow closer than this times sqrt(n) are one point (merge_tolerance)
MERGE_TOLERANCE_PER_ROOT_N = 0.01


def merge_tolerance(n: int) -> float:
    """The default distance (units of h) below which two points of an n-unit flow are one point:
    MERGE_TOLERANCE_PER_ROOT_N sqrt(n), a hundredth of a unit vector's norm per unit on average."""
    return MERGE_TOLERANCE_PER_ROOT_N * float(np.sqrt(n))


@dataclass
class Points:
    """Distinct local minima of q = |F|^2 / 2 reached from the starting states (minima closer
    than merge_tol are one point), listed fixed points first, by norm, then slow points, by q
    (listing_order: the fixed points' q lie at the rounding floor, whose order means nothing).
    K points, N units.

    A point with q <= q_fixed is a fixed point: the flow stops there (to that tolerance), and the
    Jacobian's spectrum there gives the time constants of the modes around it. The others are slow
    points: the state moves through them at speed_per_s, and the linearisation around a moving
    state has no time constants (J is singular along the flow there by construction, since
    grad q = J'F = 0), so none are reported for them.

    h: (K, N) states; q: (K,) in (h / tau)^2 / 2; speed_per_s: (K,) |F| / tau, h per second, and
    fixed: (K,) bool, both follow from q; start_index: (K,) the starting state each came from; eigvals: (F, N)
    complex eigenvalues of J (units 1/tau, real part descending) at the F fixed points, in the
    order of h[fixed]; tau_ms; q_fixed; zero_tol: |Re lambda| below it is a marginal mode.
    """

    h: np.ndarray
    q: np.ndarray
    start_index: np.ndarray
    eigvals: np.ndarray
    tau_ms: float
    q_fixed: float
    zero_tol: float = 1e-9

    @property
    def speed_per_s(self) -> np.ndarray:
        """|F| / tau at each point (q = |F|^2 / 2), h per second: (K,)."""
        return np.sqrt(2.0 * self.q) / self.tau_ms * 1000.0

    @property
    def fixed(self) -> np.ndarray:
        """Whether each point is a fixed point (q <= q_fixed): (K,) bool."""
        return self.q <= self.q_fixed

    def __len__(self) -> int:
        return len(self.q)

    def modes(self, i: int) -> dict:
        """The modes around the i-th fixed point (0 .. F-1): decay_ms (tau / |Re lambda| of the
        decaying modes, slowest first), growth_ms (tau / Re lambda of the growing ones, fastest
        first), and n_marginal (|Re lambda| <= zero_tol: neither, e.g. along a line attractor)."""
        re = np.real(self.eigvals[i])
        decay = np.sort(self.tau_ms / -re[re < -self.zero_tol])[::-1]
        growth = np.sort(self.tau_ms / re[re > self.zero_tol])
        return {"decay_ms": decay, "growth_ms": growth, "n_marginal": int((np.abs(re) <= self.zero_tol).sum())}

    def records(self) -> list[dict]:
        """One JSON-ready record per point: fixed, speed_per_s, q, |h|; for a fixed point also its
        growing, decaying and marginal mode counts, the slowest decay and the fastest growth (ms)."""
        out, f = [], 0
        for k in range(len(self)):
            rec = {"fixed": bool(self.fixed[k]), "speed_per_s": float(self.speed_per_s[k]), "q": float(self.q[k]),
                   "norm": float(np.linalg.norm(self.h[k]))}
            if self.fixed[k]:
                md = self.modes(f)
                f += 1
                rec.update(n_growth_modes=int(len(md["growth_ms"])), n_decay_modes=int(len(md["decay_ms"])),
                           n_marginal_modes=md["n_marginal"],
                           slowest_decay_ms=float(md["decay_ms"][0]) if len(md["decay_ms"]) else None,
                           fastest_growth_ms=float(md["growth_ms"][0]) if len(md["growth_ms"]) else None)
            out.append(rec)
        return out

    def to_arrays(self, prefix: str = "points_") -> dict:
        """The points as named arrays (for an npz file); from_arrays reads them back."""
        return {f"{prefix}h": self.h, f"{prefix}q": self.q, f"{prefix}speed_per_s": self.speed_per_s,
                f"{prefix}fixed": self.fixed, f"{prefix}start_index": self.start_index,
                f"{prefix}eigvals": self.eigvals,
                f"{prefix}constants": np.array([self.tau_ms, self.q_fixed, self.zero_tol])}

    @classmethod
    def from_arrays(cls, z, prefix: str = "points_") -> "Points":
        tau, q_fixed, zero_tol = (float(v) for v in z[f"{prefix}constants"])
        return cls(z[f"{prefix}h"], z[f"{prefix}q"], z[f"{prefix}start_index"], z[f"{prefix}eigvals"], tau, q_fixed,
                   zero_tol)

    def mirrors(self, tol: float | None = None) -> np.ndarray:
        """For each point, the index of the point at -h (closer than tol, default merge_tolerance(N)), or
        -1: the flow is odd (F(-h) = -F(h)), so its points come in mirror pairs with the same
        speed and modes; the origin is its own mirror. Pairs are mutual: where several points lie
        near one another (a slow region), a point is paired only with the one nearest its -h whose
        own nearest -h it is, and the others get -1."""
        tol = merge_tolerance(self.h.shape[1]) if tol is None else tol
        nearest = np.full(len(self), -1)
        for i in range(len(self)):
            d = np.linalg.norm(self.h + self.h[i], axis=1)
            j = int(np.argmin(d)) if len(d) else -1
            if j >= 0 and d[j] <= tol:
                nearest[i] = j
        return np.array([j if j >= 0 and nearest[j] == i else -1 for i, j in enumerate(nearest)], dtype=int)


def listing_order(h: np.ndarray, q: np.ndarray, q_fixed: float) -> np.ndarray:
    """The order points (K, N) with q (K,) are listed in: the fixed points (q <= q_fixed) first, by
    norm, then the slow points, by q."""
    fixed = q <= q_fixed
    norm = np.linalg.norm(h, axis=1)
    return np.lexsort((np.where(fixed, norm, q), ~fixed))


def union_points(parts: list[Points], merge_tol: float | None = None) -> tuple[Points, list[list[int]]]:
    """The distinct points among several searches of one flow (points closer than merge_tol, default
    0.01 sqrt(N), are one: the one with the lowest q is kept), in listing_order; and for each, the
    indices of the parts that found it."""
    parts = [p for p in parts if len(p)]
    if not parts:
        raise ValueError("no points to unite")
    h = np.vstack([p.h for p in parts])
    q = np.concatenate([p.q for p in parts])
    part = np.concatenate([np.full(len(p), i) for i, p in enumerate(parts)])
    eig = []  # per point: its spectrum (a fixed point) or None
    for p in parts:
        f = np.cumsum(p.fixed) - 1
        eig += [p.eigvals[f[k]] if p.fixed[k] else None for k in range(len(p))]
    fixed = np.concatenate([p.fixed for p in parts])
    tol = merge_tolerance(h.shape[1]) if merge_tol is None else float(merge_tol)
    keep = _merge(h, q, tol)
    keep = keep[listing_order(h[keep], q[keep], parts[0].q_fixed)]
    found = [sorted({int(part[j]) for j in range(len(h)) if np.linalg.norm(h[j] - h[i]) <= tol}) for i in keep]
    kf = [i for i in keep if fixed[i]]
    eigvals = np.array([eig[i] for i in kf]).reshape(len(kf), h.shape[1])
    p0 = parts[0]
    return Points(h[keep], q[keep], np.asarray(keep), eigvals, p0.tau_ms, p0.q_fixed, p0.zero_tol), found


def jacobian_spectrum(dyn: RateDynamics, h: np.ndarray) -> np.ndarray:
    """Eigenvalues of J(h) (units 1/tau), sorted by real part, largest first: (N,) complex."""
    lam = torch.linalg.eigvals(torch.from_numpy(dyn.jacobian(h))).numpy()
    return lam[np.argsort(-lam.real, kind="stable")]


def _q_and_grad_t(dyn: RateDynamics, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """q (B,) and dq/dh = J'F (B, N) for torch rows h (B, N), float64."""
    r, d = dyn.phi_and_dphi(h)
    # in place, in the order and with the rounding of g (r G') - h and (g d) (f G) - f
    f = torch.matmul(r, dyn._G.T).mul_(dyn.g).sub_(h)
    grad = torch.matmul(f, dyn._G).mul_(d.mul_(dyn.g)).sub_(f)
    return 0.5 * (f * f).sum(dim=1), grad


def minimise_q(dyn: RateDynamics, h_start: np.ndarray, max_iter: int = 2000, history: int = 10,
               grad_tol: float = 1e-10, q_floor: float = 1e-20, rel_tol: float = 1e-12):
    """Minimise q from each starting state (B, N) independently, all at once: a batched L-BFGS
    (two-loop recursion per row, `history` pairs) with a per-row backtracking (Armijo) line
    search. A row stops when |dq/dh| <= grad_tol, q <= q_floor, an iteration lowers its q by
    no more than rel_tol * q (rounding floor), or its line search fails; a stopped row is not
    computed any more (each iteration works on the rows still running, and every number of a
    row is computed from that row alone).
    Returns (h (B, N), q (B,), iterations used)."""
    x_all = torch.tensor(np.atleast_2d(np.asarray(h_start, dtype=np.float64)))
    f_all, g_all = _q_and_grad_t(dyn, x_all)
    live = torch.arange(x_all.shape[0])  # the rows still running, as indices into x_all
    x, f, g = x_all.clone(), f_all.clone(), g_all.clone()  # their states, q and gradients
    S: list[torch.Tensor] = []
    Y: list[torch.Tensor] = []
    R: list[torch.Tensor] = []  # rho per row, 0 where the pair is not used (no positive curvature)

    def keep_running(mask: torch.Tensor) -> None:
        """The rows outside `mask` stop: their state, q and gradient stay in the *_all arrays."""
        nonlocal live, x, f, g, S, Y, R
        x_all[live], f_all[live], g_all[live] = x, f, g
        live, x, f, g = live[mask], x[mask], f[mask], g[mask]
        S, Y, R = [v[mask] for v in S], [v[mask] for v in Y], [v[mask] for v in R]

    it = 0
    for it in range(1, max_iter + 1):
        running = (g.norm(dim=1) > grad_tol) & (f > q_floor)
        if not bool(running.all()):
            keep_running(running)
        if not len(live):
            it -= 1
            break
        B = len(live)
        # two-loop recursion, row-wise
        qv = g.clone()
        alphas = []
        for s_, y_, r_ in zip(reversed(S), reversed(Y), reversed(R)):
            a_ = r_ * (s_ * qv).sum(dim=1)
            alphas.append(a_)
            qv -= a_[:, None] * y_
        if S:
            sy, yy = (S[-1] * Y[-1]).sum(dim=1), (Y[-1] * Y[-1]).sum(dim=1)
            gamma = torch.where((sy > 0) & (yy > 0), sy / yy.clamp_min(1e-300), torch.ones_like(sy))
        else:  # first step: a length-1 step along the gradient direction, at most
            gamma = 1.0 / g.norm(dim=1).clamp_min(1.0)
        d = qv * gamma[:, None]
        for s_, y_, r_, a_ in zip(S, Y, R, reversed(alphas)):
            b_ = r_ * (y_ * d).sum(dim=1)
            d += (a_ - b_)[:, None] * s_
        d = -d
        slope = (g * d).sum(dim=1)
        bad = slope >= 0  # not a descent direction: steepest descent for that row
        if bool(bad.any()):
            d[bad] = -g[bad]
            slope = torch.where(bad, -(g * g).sum(dim=1), slope)
        # per-row backtracking line search (Armijo, c = 1e-4)
        step = torch.ones(B, dtype=torch.float64)

        def attempt(rows):
            """The step of the rows `rows` (None: every row): their new state, q, gradient, and
            whether each is accepted."""
            at = (lambda v: v) if rows is None else (lambda v: v[rows])
            xt = at(x) + at(step)[:, None] * at(d)
            ft, gt = _q_and_grad_t(dyn, xt)
            return xt, ft, gt, ft <= at(f) + 1e-4 * at(step) * at(slope)

        # the full step first, for every row: where it is accepted everywhere (the common case) it is
        # the new state as it stands
        xt, ft, gt, ok = attempt(None)
        pending = ~ok
        if not bool(pending.any()):
            x_new, f_new, g_new = xt, ft, gt
        else:
            x_new, f_new, g_new = x.clone(), f.clone(), g.clone()
            x_new[ok], f_new[ok], g_new[ok] = xt[ok], ft[ok], gt[ok]
            for _ in range(29):  # 30 tries with the full step; only the rows still searching are evaluated
                step = torch.where(pending, step * 0.5, step)
                rows = pending.nonzero()[:, 0]
                xt, ft, gt, ok = attempt(rows)
                done = rows[ok]
                x_new[done], f_new[done], g_new[done] = xt[ok], ft[ok], gt[ok]
                pending[done] = False
                if not bool(pending.any()):
                    break
        # a row whose line search failed has converged as far as it can; so has one at the rounding floor
        going = ~pending & ((f - f_new) > rel_tol * f)
        s_new, y_new = x_new - x, g_new - g
        sy = (s_new * y_new).sum(dim=1)
        use = going & (sy > 1e-300)
        S.append(s_new)
        Y.append(y_new)
        R.append(torch.where(use, 1.0 / torch.where(use, sy, torch.ones_like(sy)), torch.zeros_like(sy)))
        if len(S) > history:
            S.pop(0), Y.pop(0), R.pop(0)
        x, f, g = x_new, f_new, g_new
        if not bool(going.all()):  # stopped rows keep where this iteration left them
            keep_running(going)
    x_all[live], f_all[live], g_all[live] = x, f, g
    return x_all.numpy(), f_all.numpy(), it


def normal_equations(dyn: RateDynamics, h: torch.Tensor, GtG: torch.Tensor | None = None):
    """J'J (k, N, N) and J'F (k, N) at the states h (k, N) (torch, float64), without forming J:
    with J = g G D - 1, D = diag(phi'(h)),

        J'J = g^2 D (G'G) D - g (D G' + G D) + 1,    J'F = g phi'(h) * (F G) - F,

    which costs O(N^2) per state given G'G (GtG, computed here when not given) instead of the
    N^3 of the product J'J."""
    G, g = dyn._G, dyn.g
    if GtG is None:
        GtG = G.T @ G
    r, d = dyn.phi_and_dphi(h)
    f = g * (r @ G.T) - h
    gd, gG = g * d, g * G
    # one (k, N, N) array, with the rounding of the expression (g^2 d) G'G d - (g d) G' - (g G) d + 1
    # evaluated left to right; each subtracted product goes through one reused (N, N) scratch
    JtJ = GtG[None] * ((g * g) * d)[:, :, None]
    JtJ.mul_(d[:, None, :])
    scratch = torch.empty_like(G)
    for i in range(len(h)):
        JtJ[i].sub_(torch.mul(gd[i, :, None], G.T, out=scratch))
        JtJ[i].sub_(torch.mul(gG, d[i, None, :], out=scratch))
    JtJ.diagonal(dim1=1, dim2=2).add_(1.0)
    return JtJ, gd * (f @ G) - f


def newton_polish(dyn: RateDynamics, h: np.ndarray, n_iter: int = 8, q_floor: float = 1e-24,
                  damping: float = 1e-10) -> np.ndarray:
    """Refine states h (K, N) towards zeros of F by damped Gauss-Newton (Levenberg-Marquardt)
    steps delta = -(J'J + mu)^-1 J'F, mu = damping * trace(J'J) / N, accepted only when they
    lower q (halving the step up to 20 times). Near a fixed point this is Newton's method
    (quadratic convergence, where L-BFGS is slow); the damping keeps the step out of
    directions J maps to 0 (along a line attractor, or the drift direction of a slow point with
    q > 0, where J is singular), so a point is not pushed along its slow manifold.
    Costs one solve per point and step (normal_equations: J'J from G'G, formed once per call).
    Returns the refined states."""
    x = torch.tensor(np.atleast_2d(np.asarray(h, dtype=np.float64)))
    K, N = x.shape
    GtG = dyn._G.T @ dyn._G
    q, _ = _q_and_grad_t(dyn, x)
    # a point whose step lowered q by no halving would get the same step again: it is left as it is
    stuck = torch.zeros(K, dtype=torch.bool)
    for _ in range(n_iter):
        active = ((q > q_floor) & ~stuck).nonzero()[:, 0]
        if len(active) == 0:
            break
        xa = x[active]
        JtJ, rhs = normal_equations(dyn, xa, GtG)
        mu = damping * JtJ.diagonal(dim1=1, dim2=2).sum(-1) / N
        delta = _solve_damped(JtJ, mu, rhs)
        if delta is None:  # singular even with damping: keep the minimiser's answer
            break
        step = torch.ones(len(active), dtype=torch.float64)
        improved = torch.zeros(len(active), dtype=torch.bool)
        for _ in range(20):
            xt = xa + step[:, None] * delta
            qt, _ = _q_and_grad_t(dyn, xt)
            ok = ~improved & torch.isfinite(qt) & (qt < q[active])
            x[active[ok]], q[active[ok]] = xt[ok], qt[ok]
            improved |= ok
            if bool(improved.all()):
                break
            step = torch.where(improved, step, step * 0.5)
        stuck[active[~improved]] = True
    return x.numpy()


def _solve_damped(JtJ: torch.Tensor, mu: torch.Tensor, rhs: torch.Tensor):
    """-(J'J + mu)^-1 J'F for each state (k, N), J'J overwritten with J'J + mu; None when any of the
    k systems is singular."""
    JtJ.diagonal(dim1=1, dim2=2).add_(mu[:, None])
    try:
        return -torch.linalg.solve(JtJ, rhs.unsqueeze(-1)).squeeze(-1)
    except RuntimeError:
        return None


def _merge(h: np.ndarray, q: np.ndarray, tol: float) -> np.ndarray:
    """Indices of the points kept after merging (greedy, lowest q first) those closer than tol
    (Euclidean distance) to a kept one."""
    keep: list[int] = []
    for i in np.argsort(q, kind="stable"):
        if all(np.linalg.norm(h[i] - h[j]) > tol for j in keep):
            keep.append(int(i))
    return np.array(keep, dtype=int)


def find_points(dyn: RateDynamics, h_start: np.ndarray, max_iter: int = 1000, n_newton: int = 8,
                q_fixed: float = 1e-10, merge_tol: float | None = None, max_points: int | None = None,
                zero_tol: float = 1e-9) -> Points:
    """Fixed and slow points of the autonomous dynamics, found by minimising q = |F(h)|^2 / 2 from
    the starting states h_start (B, N) (batched L-BFGS, max_iter iterations; then, on the distinct
    minima, n_newton damped Gauss-Newton steps (newton_polish), which finish the fixed points
    quadratically), with the Jacobian's spectrum at each fixed point.

    q_fixed: a minimum with q <= q_fixed is a fixed point (q in (h / tau)^2 / 2; 1e-10 is a speed
    below sqrt(2e-10) / tau). merge_tol: minima closer than this (Euclidean, units of h) are one
    point (default 0.01 sqrt(N)). max_points: keep at most this many distinct points (lowest q
    first; default all). zero_tol: modes with |Re lambda| <= zero_tol (1/tau) count as marginal
    (rounding leaves an exact zero mode at about +-1e-15).
    """
    h_start = np.atleast_2d(np.asarray(h_start, dtype=np.float64))
    h, q, _ = minimise_q(dyn, h_start, max_iter=max_iter)
    tol = merge_tolerance(dyn.n) if merge_tol is None else float(merge_tol)
    keep = _merge(h, q, tol)
    if n_newton:  # polish the distinct points only, then merge again (two may meet)
        h = h.copy()
        h[keep] = newton_polish(dyn, h[keep], n_iter=n_newton)
        q[keep] = dyn.q(h[keep])
        keep = keep[_merge(h[keep], q[keep], tol)]
    if max_points is not None:
        keep = keep[:max_points]
    keep = keep[listing_order(h[keep], q[keep], q_fixed)]
    hk, qk = h[keep], q[keep]
    fixed = qk <= q_fixed
    eig = np.array([jacobian_spectrum(dyn, x) for x in hk[fixed]]).reshape(int(fixed.sum()), dyn.n)
    return Points(h=hk, q=qk, start_index=keep, eigvals=eig, tau_ms=float(dyn.tau_ms), q_fixed=float(q_fixed),
                  zero_tol=float(zero_tol))


# -- Lyapunov exponent --------------------------------------------------------------------------------

#: the shortest block of a finite-time exponent's window, in units of tau, where the window allows:
#: the log growth per step along a trajectory stays correlated for several tau (decorrelation_steps
#: measures it for each exponent), and neighbouring blocks shorter than that make the interval optimistic
LYAPUNOV_BLOCK_TAUS = 8


def lyapunov_blocks(window_ms: float, tau_ms: float) -> int:
    """How many blocks a finite-time Lyapunov exponent's window is cut into for its standard error:
    blocks of at least LYAPUNOV_BLOCK_TAUS tau where the window allows (so that they are nearly
    independent), 3 to 5."""
    return int(np.clip(window_ms // (LYAPUNOV_BLOCK_TAUS * tau_ms), 3, 5))


def decorrelation_steps(series: np.ndarray) -> np.ndarray:
    """Per row of series (B, T): the first lag (steps) at which the row's sample autocorrelation is at
    most zero; T where it stays positive. Blocks of a window much longer than this are nearly
    independent; blocks shorter than it are not."""
    x = np.atleast_2d(np.asarray(series, dtype=np.float64))
    x = x - x.mean(axis=1, keepdims=True)
    T = x.shape[1]
    f = np.fft.rfft(x, 2 * T, axis=1)
    acov = np.fft.irfft(f * np.conj(f), 2 * T, axis=1)[:, :T]  # sum_t x_t x_{t+k}, k = 0..T-1
    out = np.full(len(x), T)
    for b, row in enumerate(acov):
        if row[0] <= 0:  # a constant series: no correlation to lose
            out[b] = 1
            continue
        below = np.flatnonzero(row[1:] <= 0)
        if below.size:
            out[b] = int(below[0]) + 1
    return out


def lyapunov_max(dyn: RateDynamics, h_traj: np.ndarray, alpha: float, dt_ms: float, transient_steps: int = 0,
                 seed: int = 0, blocks: int = 0, vectors: int = 1, decorrelation: bool = False):
    """The largest finite-time Lyapunov exponent (1/s) along each trajectory h (B, T, N) of the
    Euler map h <- h + alpha (F(h) + input), by tangent-vector propagation through its tangent map
    u <- u + alpha (-u + g (u * phi'(h_t)) G') with renormalisation every step.

    The tangent vectors start random (seeded) at the first state and align during the first
    `transient_steps` steps, which are not counted; the exponent is the mean log growth per step
    over the remaining T - 1 - transient_steps steps, divided by dt (ms) and times 1000.
    Positive: nearby trajectories separate (chaos); negative: they converge. Returns (B,); with
    blocks > 0 also the exponent over each of that many equal consecutive blocks of the window,
    (B, blocks), whose spread gives the estimate's standard error (lyapunov_se). With vectors = V > 1,
    V independent tangent vectors per trajectory (vector j drawn from seed + j, so vector 0 is the
    one a single-vector call uses) are propagated together, in one product per step, and each
    result gets a leading axis of V: (V, B) and (V, B, blocks). With decorrelation (and blocks), also
    the lag in ms after which each vector's log growth per step first decorrelates (decorrelation_steps),
    shaped as the exponents.
    """
    h = torch.as_tensor(np.asarray(h_traj, dtype=np.float64))
    B, T, N = h.shape
    steps = T - 1 - transient_steps
    if steps < max(1, blocks):
        raise ValueError(f"trajectory of {T} states is too short for {transient_steps} transient steps")
    V = int(vectors)
    if V < 1:
        raise ValueError(f"vectors must be at least 1, got {vectors}")
    # rows v * B + b: vector v of trajectory b
    u = torch.from_numpy(np.concatenate([np.random.default_rng(seed + v).standard_normal((B, N)) for v in range(V)]))
    u /= u.norm(dim=1, keepdim=True)
    GT = dyn._G.T
    d = dyn.dphi(h)  # (B, T, N)
    logs = torch.zeros(V * B, steps, dtype=torch.float64)
    ud = torch.empty_like(u)
    for t in range(T - 1):
        # u <- (1 - alpha) u + alpha g (u * phi'(h_t)) G', one fused product per step
        torch.mul(u.view(V, B, N), d[:, t], out=ud.view(V, B, N))
        u = torch.addmm(u, ud, GT, beta=1.0 - alpha, alpha=alpha * dyn.g)
        nrm = u.norm(dim=1)
        if t >= transient_steps:
            logs[:, t - transient_steps] = nrm
        u /= nrm[:, None]
    logs.log_()
    lam, by_block = _exponents(logs, dt_ms, blocks)
    lag_ms = decorrelation_steps(logs.numpy()) * dt_ms if decorrelation and blocks else None
    if V > 1:
        lam = lam.reshape(V, B)
        by_block = None if by_block is None else by_block.reshape(V, B, -1)
        lag_ms = None if lag_ms is None else lag_ms.reshape(V, B)
    if not blocks:
        return lam
    return (lam, by_block, lag_ms) if decorrelation else (lam, by_block)


def _exponents(logs: torch.Tensor, dt_ms: float, blocks: int):
    """From the log growth per step (B, steps): the exponent per row over all steps and over each
    of `blocks` equal consecutive blocks, in 1/s: (B,), (B, blocks) (None without blocks)."""
    per_s = 1000.0 / dt_ms
    lam = (logs.mean(dim=1) * per_s).numpy()
    if not blocks:
        return lam, None
    edges = np.linspace(0, logs.shape[1], blocks + 1).round().astype(int)
    by_block = np.stack([logs[:, a:b].mean(dim=1).numpy() * per_s for a, b in zip(edges[:-1], edges[1:])], axis=1)
    return lam, by_block


@dataclass
class Lyapunov:
    """The largest Lyapunov exponent of an autonomous run, from several tangent vectors.

    per_vector: (K,) the exponent (1/s) each starting vector gives over the window; blocks: (K, B)
    each vector's exponent over B consecutive blocks of the window; per_s: their mean; se_per_s:
    the standard error of the mean over the blocks (lyapunov_se of the vectors' mean per block);
    spread_per_s: the largest distance of a vector's value from the mean (how much the starting
    vector still matters after the transient); halfwidth_per_s: the interval's half-width, the
    t quantile (B - 1 degrees of freedom, 95 %) times se_per_s plus spread_per_s; transient_ms and
    window_ms: the discarded alignment time and the window measured; decorrelation_ms: the lag after
    which the vectors' mean log growth per step first decorrelates (decorrelation_steps; the blocks
    are nearly independent where they are much longer)."""

    per_vector: np.ndarray
    blocks: np.ndarray
    transient_ms: float
    window_ms: float
    decorrelation_ms: float

    @property
    def per_s(self) -> float:
        return float(np.mean(self.per_vector))

    @property
    def se_per_s(self) -> float:
        return float(lyapunov_se(self.blocks.mean(axis=0))[0])

    @property
    def spread_per_s(self) -> float:
        return float(np.max(np.abs(self.per_vector - self.per_s)))

    @property
    def halfwidth_per_s(self) -> float:
        return lyapunov_halfwidth(self.se_per_s, self.blocks.shape[1], self.spread_per_s)


def lyapunov_autonomous(dyn: RateDynamics, h0: np.ndarray, alpha: float, dt_ms: float, transient_steps: int,
                        window_steps: int, n_vectors: int = 4, blocks: int = 5, seed: int = 0,
                        keep_states: bool = False):
    """The largest Lyapunov exponent of the autonomous Euler map h <- h + alpha F(h) from h0 (N,),
    from n_vectors random tangent vectors (seeded) propagated beside the state: they align over
    transient_steps steps, which are not counted, and the exponent is measured over the next
    window_steps steps (cut into `blocks` blocks). The state and the vectors advance in one product
    per step. Returns a Lyapunov; with keep_states also the window's states (window_steps, N)."""
    N = dyn.n
    h = torch.as_tensor(np.asarray(h0, dtype=np.float64)).reshape(1, N).clone()
    u = torch.from_numpy(np.random.default_rng(seed).standard_normal((n_vectors, N)))
    u /= u.norm(dim=1, keepdim=True)
    GT = dyn._G.T
    logs = torch.zeros(n_vectors, window_steps, dtype=torch.float64)
    states = torch.empty(window_steps, N, dtype=torch.float64) if keep_states else None
    rows = torch.empty(n_vectors + 1, N, dtype=torch.float64)
    for t in range(transient_steps + window_steps):
        r = torch.tanh(h) if dyn.nonlinearity == "tanh" else h.clone()
        d = 1.0 - r * r if dyn.nonlinearity == "tanh" else torch.ones_like(h)
        torch.mul(u, d, out=rows[:n_vectors])
        rows[n_vectors] = r[0]
        out = rows @ GT  # tangent rows and the state's drive in one product
        u = (1.0 - alpha) * u + (alpha * dyn.g) * out[:n_vectors]
        h = (1.0 - alpha) * h + (alpha * dyn.g) * out[n_vectors:]
        nrm = u.norm(dim=1)
        if t >= transient_steps:
            logs[:, t - transient_steps] = nrm
            if keep_states:
                states[t - transient_steps] = h[0]
        u /= nrm[:, None]
    logs.log_()
    lam, by_block = _exponents(logs, dt_ms, blocks)
    lag_ms = float(decorrelation_steps(logs.mean(dim=0).numpy())[0] * dt_ms)
    res = Lyapunov(lam, by_block, transient_steps * dt_ms, window_steps * dt_ms, lag_ms)
    return (res, states.numpy()) if keep_states else res


def lyapunov_halfwidth(se_per_s: float, blocks: int, spread_per_s: float = 0.0) -> float:
    """The half-width of a finite-time Lyapunov exponent's 95 % interval: Student's t (blocks - 1
    degrees of freedom) times its standard error from `blocks` blocks, plus how far other starting
    tangent vectors' values lie from it at most (the starting vector still matters over a short window)."""
    return float(stdtrit(blocks - 1, 0.975)) * se_per_s + spread_per_s


def lyapunov_se(by_block: np.ndarray) -> np.ndarray:
    """The standard error of finite-time exponents from their blocks (B, K): std over the blocks
    (ddof 1) / sqrt(K), the blocks taken as independent (lyapunov_blocks makes them
    LYAPUNOV_BLOCK_TAUS tau long where the window allows; shorter, correlated blocks make it optimistic)."""
    b = np.atleast_2d(by_block)
    return b.std(axis=1, ddof=1) / np.sqrt(b.shape[1])


# -- the trained model's memory period --------------------------------------------------------

def memory_states(cfg, sd: dict) -> np.ndarray:
    """States h (D, T, N), float64, of the memory-PCA trials (a pulse of each test duration at
    mem_onset_ms, README, Definitions 5) from the first step to mem_T_ms."""
    a = cfg.analysis
    tr = fixed_trials(cfg, a.durations_ms, a.mem_onset_ms, a.mem_T_ms)
    dyn = RateDynamics.from_model(cfg, sd)
    I = sd["I"].detach().cpu().double().numpy()
    h0 = sd["h0"].detach().cpu().double().numpy()
    return simulate_states(dyn, I, h0, tr.x[:, :, 0].double().numpy(), cfg.alpha)


@dataclass
class MemoryDynamics:
    """The points near a model's memory-period trajectories and the largest finite-time Lyapunov
    exponent along them.

    points: fixed and slow points found from n_starts_per_trial states per memory trial, evenly
    spaced over the memory window (properties of G's flow, found where this model's state goes);
    lyapunov_per_s: (D,) one per memory trial (1/s), over the memory window [mem_start_ms,
    mem_T_ms), the tangent vectors aligned from the trial's start; lyapunov_se_per_s: (D,) their
    standard errors (lyapunov_se) from lyapunov_blocks blocks; lyapunov_start_spread_per_s: (D,)
    how far the farthest of the other starting vectors' values lies from the first's (the window is
    too short for the estimate to forget its start where this exceeds the interval);
    lyapunov_decorrelation_ms: (D,) the lag after which the first vector's log growth per step first
    decorrelates (decorrelation_steps); starts: (S, N) the starting states."""

    points: Points
    lyapunov_per_s: np.ndarray
    lyapunov_se_per_s: np.ndarray
    lyapunov_blocks: int
    lyapunov_start_spread_per_s: np.ndarray
    lyapunov_decorrelation_ms: np.ndarray
    starts: np.ndarray


def memory_dynamics(cfg, sd: dict, states: np.ndarray | None = None, n_starts_per_trial: int = 16,
                    max_iter: int = 1000, n_newton: int = 20, q_fixed: float = 1e-18,
                    max_points: int | None = None, seed: int = 0) -> MemoryDynamics:
    """Points (memory_points) from n_starts_per_trial states per memory-PCA trial, evenly spaced over
    the memory window [mem_start_ms, mem_T_ms), and the largest finite-time Lyapunov exponent of
    each trial over that window from several starting tangent vectors (memory_lyapunov), of the model
    (cfg, sd). states: memory_states(cfg, sd) when already simulated. max_points caps the
    eigen-decompositions (N^3 each)."""
    h = memory_states(cfg, sd) if states is None else states  # (D, T, N) from the trial's start
    lyap = memory_lyapunov(cfg, sd, h, seed=seed)
    pts, starts = memory_points(cfg, sd, h, n_starts_per_trial, max_iter, n_newton, q_fixed, max_points)
    return MemoryDynamics(pts, *lyap, starts)


#: starting tangent vectors per memory trial (memory_lyapunov): the first gives the exponent, the
#: others how much the starting vector still matters over the short window
MEMORY_LYAPUNOV_VECTORS = 4


def memory_lyapunov(cfg, sd: dict, states: np.ndarray,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray, int, np.ndarray, np.ndarray]:
    """The largest finite-time Lyapunov exponent of each memory trial (states (D, T, N) from the
    trial's start) over the memory window, from MEMORY_LYAPUNOV_VECTORS starting tangent vectors
    that align from the trial's start, through the pulse, to the window: (the first vector's
    exponents (D,) 1/s, their standard errors, the number of blocks, how far the farthest of the
    other vectors' values lies from the first's, the lag in ms after which the first vector's log
    growth first decorrelates)."""
    a = cfg.analysis
    dyn = RateDynamics.from_model(cfg, sd)
    n_blocks = lyapunov_blocks(cfg.memory_window_ms, cfg.model.tau_ms)
    lam, by_block, lag_ms = lyapunov_max(dyn, states, cfg.alpha, cfg.model.dt_ms,
                                         transient_steps=cfg.steps(a.mem_start_ms), seed=seed, blocks=n_blocks,
                                         vectors=MEMORY_LYAPUNOV_VECTORS, decorrelation=True)
    return lam[0], lyapunov_se(by_block[0]), n_blocks, np.abs(lam[1:] - lam[0]).max(axis=0), lag_ms[0]


def memory_points(cfg, sd: dict, states: np.ndarray, n_starts_per_trial: int = 16, max_iter: int = 1000,
                  n_newton: int = 20, q_fixed: float = 1e-18,
                  max_points: int | None = None) -> tuple[Points, np.ndarray]:
    """Points (find_points) from n_starts_per_trial states per memory trial (states (D, T, N) from
    the trial's start), evenly spaced over the memory window [mem_start_ms, mem_T_ms): (the points,
    the starting states (S, N))."""
    dyn = RateDynamics.from_model(cfg, sd)
    window = states[:, cfg.steps(cfg.analysis.mem_start_ms):]
    idx = np.unique(np.linspace(0, window.shape[1] - 1, n_starts_per_trial).round().astype(int))
    starts = window[:, idx].reshape(-1, dyn.n)
    pts = find_points(dyn, starts, max_iter=max_iter, n_newton=n_newton, q_fixed=q_fixed, max_points=max_points)
    return pts, starts


def nearest_fixed_points(points: Points, states: np.ndarray, beyond_origin: bool = False) -> dict:
    """For each state (M, N), the nearest of the fixed points: index (into points.h[points.fixed]),
    distance, relative_distance (over |state|), the point's norm and its unstable dimension (modes
    with Re lambda > zero_tol). beyond_origin: among the fixed points farther than merge_tolerance(N)
    from the origin only (a nearer one is the origin: points closer than that are one); every value
    NaN (index -1) where there is none."""
    fixed = points.h[points.fixed]
    states = np.atleast_2d(np.asarray(states, dtype=np.float64))
    rows = np.arange(len(fixed))  # the candidates, as indices into fixed
    if beyond_origin:
        rows = rows[np.linalg.norm(fixed, axis=1) > merge_tolerance(fixed.shape[1])]
    if not len(rows):
        none = np.full(len(states), np.nan)
        return {"index": np.full(len(states), -1), "distance": none, "relative_distance": none, "norm": none,
                "n_unstable": none}
    d = np.linalg.norm(states[:, None, :] - fixed[rows][None], axis=2)
    i = np.argmin(d, axis=1)
    dist = d[np.arange(len(i)), i]
    k = rows[i]
    unstable = (np.real(points.eigvals) > points.zero_tol).sum(axis=1)
    return {"index": k, "distance": dist, "relative_distance": dist / np.maximum(np.linalg.norm(states, axis=1), 1e-300),
            "norm": np.linalg.norm(fixed[k], axis=1), "n_unstable": unstable[k]}
