"""sysa_core.analysis.dynamics on constructed systems with known answers: a linear network with a
designed line attractor (slow points on the line, one eigenvalue 0, the others at their
designed time constants), Lyapunov exponents of linear maps, the Jacobian against finite
differences, and the memory-period analysis of a small model."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import moved_weights

from sysa_core import config, model, task
from sysa_core.analysis import dynamics
from sysa_core.analysis.dynamics import RateDynamics

pytestmark = pytest.mark.usefixtures("single_threaded_torch")

TAU = 100.0  # ms
N = 24
#: designed time constants (ms) of the modes other than the line: all faster than 1 s
DESIGNED_MS = np.array([50.0, 80.0, 120.0, 200.0, 300.0, 450.0, 700.0] + [60.0 + 15.0 * i for i in range(N - 8)])


def _orthonormal(n: int, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(n, n)))
    return q


def line_attractor(g: float = 1.5, normal: bool = True, seed: int = 0):
    """A linear network whose Jacobian J = g G - 1 has the eigenvalue 0 along the unit vector
    `line` and -tau / tc for the designed time constants tc. normal=False uses non-orthogonal
    eigenvectors (a non-normal J). Returns (dynamics, line direction, designed eigenvalues)."""
    lam = np.concatenate([[0.0], -TAU / DESIGNED_MS])
    if normal:
        P = _orthonormal(N, seed)
        J = P @ np.diag(lam) @ P.T
    else:
        P = _orthonormal(N, seed) + 0.3 * np.random.default_rng(seed + 1).normal(size=(N, N)) / np.sqrt(N)
        J = P @ np.diag(lam) @ np.linalg.inv(P)
    G = (J + np.eye(N)) / g
    line = P[:, 0] / np.linalg.norm(P[:, 0])
    return RateDynamics(G, g, TAU, "linear"), line, lam


# -- the vector field ----------------------------------------------------------------------------

@pytest.mark.parametrize("nonlinearity", ["tanh", "linear"])
def test_jacobian_and_grad_q_match_finite_differences(nonlinearity):
    g = np.random.default_rng(1)
    dyn = RateDynamics(g.normal(size=(15, 15)) / np.sqrt(15), 1.5, TAU, nonlinearity)
    h = g.normal(size=15)
    eps = 1e-6
    num = np.empty((15, 15))
    for j in range(15):
        e = np.zeros(15)
        e[j] = eps
        num[:, j] = (dyn.velocity(h + e) - dyn.velocity(h - e)) / (2 * eps)
    np.testing.assert_allclose(dyn.jacobian(h), num, atol=1e-8)
    # J_ij = dF_i/dh_j = -delta_ij + g G_ij phi'(h_j): the row-vector convention checked explicitly
    d = dyn.dphi(h)
    assert dyn.jacobian(h)[2, 5] == pytest.approx(1.5 * dyn.G[2, 5] * d[5])
    q, grad = (v.numpy() for v in dynamics._q_and_grad_t(dyn, torch.from_numpy(h[None])))
    num_g = np.array([(dyn.q(h + eps * e) - dyn.q(h - eps * e)) / (2 * eps) for e in np.eye(15)])
    np.testing.assert_allclose(grad[0], num_g, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(grad[0], dyn.jacobian(h).T @ dyn.velocity(h), rtol=1e-12)
    assert q[0] == pytest.approx(0.5 * np.sum(dyn.velocity(h) ** 2))


@pytest.mark.parametrize("nonlinearity", ["tanh", "linear"])
def test_normal_equations_equal_the_explicit_jacobians_products(nonlinearity):
    """J'J and J'F formed from G'G (no N^3 product per state) equal the products of the explicit J."""
    g = np.random.default_rng(2)
    dyn = RateDynamics(g.normal(size=(40, 40)) / np.sqrt(40), 1.5, TAU, nonlinearity)
    h = g.normal(size=(3, 40)) * 2
    JtJ, JtF = (v.numpy() for v in dynamics.normal_equations(dyn, torch.from_numpy(h)))
    for k in range(3):
        J = dyn.jacobian(h[k])
        np.testing.assert_allclose(JtJ[k], J.T @ J, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(JtF[k], J.T @ dyn.velocity(h[k]), rtol=1e-12, atol=1e-13)


def test_normal_equations_have_the_bits_of_the_expression_they_are_formed_from():
    """J'J is formed in place, product by product: the same bits as the expression
    (g^2 d) G'G d - (g d) G' - (g G) d + 1 evaluated as one, left to right (so Newton's refinement,
    and every point it finishes, is what that expression gives)."""
    rng = np.random.default_rng(3)
    dyn = RateDynamics(rng.normal(size=(60, 60)) / np.sqrt(60), 1.5, TAU)
    h = torch.from_numpy(rng.normal(size=(4, 60)) * 2)
    G, g = dyn._G, dyn.g
    d = dyn.dphi(h)
    f = g * (dyn.phi(h) @ G.T) - h
    expected = (g * g) * d[:, :, None] * (G.T @ G)[None] * d[:, None, :]
    expected -= g * d[:, :, None] * G.T[None]
    expected -= g * G[None] * d[:, None, :]
    expected.diagonal(dim1=1, dim2=2).add_(1.0)
    JtJ, JtF = dynamics.normal_equations(dyn, h)
    assert torch.equal(JtJ, expected)
    assert torch.equal(JtF, g * d * (f @ G) - f)


@pytest.mark.parametrize("nonlinearity", ["tanh", "linear"])
def test_q_and_its_gradient_have_the_bits_of_the_expressions_they_are_formed_from(nonlinearity):
    """F and J'F are formed in place from one evaluation of phi: the same bits as
    F = g (phi(h) G') - h and J'F = (g phi'(h)) (F G) - F evaluated as written (so the point search
    finds what those expressions give)."""
    rng = np.random.default_rng(4)
    dyn = RateDynamics(rng.normal(size=(50, 50)) / np.sqrt(50), 1.5, TAU, nonlinearity)
    h = torch.from_numpy(rng.normal(size=(6, 50)) * 2)
    G, g = dyn._G, dyn.g
    f = g * (dyn.phi(h) @ G.T) - h
    q, grad = dynamics._q_and_grad_t(dyn, h)
    assert torch.equal(grad, g * dyn.dphi(h) * (f @ G) - f)
    assert torch.equal(q, 0.5 * (f * f).sum(dim=1))


def test_the_vector_field_keeps_a_private_read_only_copy_of_G():
    G = np.eye(3)
    dyn = RateDynamics(G, 1.0, TAU)
    G[0, 0] = 5.0
    assert dyn.G[0, 0] == 1.0
    with pytest.raises(ValueError):
        dyn.G[0, 0] = 2.0
    with pytest.raises(ValueError):
        RateDynamics(np.ones((2, 3)), 1.0, TAU)
    with pytest.raises(ValueError):
        RateDynamics(np.eye(2), 1.0, TAU, "relu")


# -- the designed line attractor -------------------------------------------------------------------

def _starts(line: np.ndarray, positions, spread: float, seed: int) -> np.ndarray:
    g = np.random.default_rng(seed)
    return np.array([a * line + spread * g.normal(size=N) for a in positions])


def test_slow_points_of_a_line_attractor_lie_on_the_line_where_the_starts_project():
    dyn, line, lam = line_attractor()
    positions = [-3.0, -1.0, 0.5, 2.0, 4.0]
    starts = _starts(line, positions, 1.0, seed=2)
    sp = dynamics.find_points(dyn, starts)
    assert len(sp) == len(positions)  # distinct positions on the line: distinct points
    assert sp.fixed.all() and (sp.q < 1e-12).all()
    # J is normal: the minimiser moves only across the line, so each point is its start's projection
    expected = np.array([(s @ line) * line for s in starts])[sp.start_index]
    np.testing.assert_allclose(sp.h, expected, atol=1e-6)
    for h in sp.h:  # on the line: no component across it
        assert np.linalg.norm(h - (h @ line) * line) < 1e-6


@pytest.mark.parametrize("normal", [True, False])
def test_line_attractor_spectrum_one_marginal_mode_the_others_at_their_designed_time_constants(normal):
    dyn, line, lam = line_attractor(normal=normal, seed=3)
    sp = dynamics.find_points(dyn, _starts(line, [-2.0, 1.0, 3.0], 0.5, seed=4))
    assert len(sp) == 3 and sp.fixed.all() and sp.eigvals.shape == (3, N)
    for i, eig in enumerate(sp.eigvals):
        assert np.abs(eig.imag).max() < 1e-8
        assert abs(eig[0]) < 1e-9  # the line: eigenvalue 0 (sorted first: largest real part)
        np.testing.assert_allclose(np.sort(eig.real[1:]), np.sort(lam[1:]), atol=1e-9)
        modes = sp.modes(i)
        assert modes["n_marginal"] == 1 and len(modes["growth_ms"]) == 0  # the line neither grows nor decays
        np.testing.assert_allclose(modes["decay_ms"], np.sort(DESIGNED_MS)[::-1], rtol=1e-7)
    for rec in sp.records():
        assert rec["fixed"] and rec["n_marginal_modes"] == 1 and rec["n_growth_modes"] == 0
        assert rec["slowest_decay_ms"] == pytest.approx(DESIGNED_MS.max(), rel=1e-7)
        assert rec["fastest_growth_ms"] is None


def test_growing_and_decaying_modes_are_told_apart_at_a_fixed_point():
    """The origin of a linear network J = -1 + G with eigenvalues -0.5 (decay, 200 ms) and +0.25
    (growth, 400 ms), on a 2-unit system."""
    dyn = RateDynamics(np.diag([0.5, 1.25]), 1.0, TAU, "linear")
    sp = dynamics.find_points(dyn, np.zeros((1, 2)))
    assert sp.fixed.all()
    md = sp.modes(0)
    np.testing.assert_allclose(md["decay_ms"], [200.0])
    np.testing.assert_allclose(md["growth_ms"], [400.0])
    rec = sp.records()[0]
    assert (rec["n_growth_modes"], rec["n_decay_modes"], rec["fastest_growth_ms"]) == (1, 1, pytest.approx(400.0))


def test_starts_with_the_same_projection_merge_into_one_point():
    dyn, line, _ = line_attractor(seed=6)
    g = np.random.default_rng(7)
    across = [v - (v @ line) * line for v in g.normal(size=(4, N))]
    starts = np.array([1.5 * line + a for a in across])
    sp = dynamics.find_points(dyn, starts)
    assert len(sp) == 1
    np.testing.assert_allclose(sp.h[0], 1.5 * line, atol=1e-6)


def test_a_ghost_is_a_slow_point_with_its_speed_and_no_time_constants():
    """Unit 2 sits at its fixed point h2 = 3 tanh(h2) and feeds unit 1 a constant bias b = -0.6:
    F1 = -h1 + 2 tanh(h1) - 0.6 has no zero near h1 = acosh(sqrt 2) = 0.8814, where -h1 + 2 tanh(h1)
    peaks at 0.5328 (a saddle-node "ghost"). |F| has a local minimum there, 0.0672, not 0: a slow
    point the state moves through at that speed, for which no time constant is reported."""
    h2 = 3.0
    for _ in range(50):  # Newton for h2 = 3 tanh(h2)
        h2 -= (3 * np.tanh(h2) - h2) / (3 / np.cosh(h2) ** 2 - 1)
    G = np.array([[2.0, -0.6 / np.tanh(h2)], [0.0, 3.0]])
    dyn = RateDynamics(G, 1.0, TAU, "tanh")
    sp = dynamics.find_points(dyn, np.array([[0.5, 2.9], [1.3, 3.05]]), max_iter=3000)
    assert len(sp) == 1 and not sp.fixed[0]
    peak = np.arccosh(np.sqrt(2.0))
    f_min = abs(-peak + 2 * np.tanh(peak) - 0.6)
    # unit 2 is coupled back only through sech^2(h2) ~ 0.01, so the answer holds to about 1 %
    assert sp.h[0, 0] == pytest.approx(peak, rel=0.02) and sp.h[0, 1] == pytest.approx(h2, rel=0.01)
    assert sp.q[0] == pytest.approx(0.5 * f_min ** 2, rel=0.02)
    assert sp.speed_per_s[0] == pytest.approx(np.sqrt(2 * sp.q[0]) / TAU * 1000.0)
    assert sp.eigvals.shape == (0, 2)  # no spectrum at a moving point
    assert sp.records() == [{"fixed": False, "speed_per_s": pytest.approx(f_min / TAU * 1000, rel=0.02),
                             "q": sp.q[0], "norm": pytest.approx(np.linalg.norm(sp.h[0]))}]
    np.testing.assert_allclose(dynamics._q_and_grad_t(dyn, torch.from_numpy(sp.h))[1].numpy(), 0.0, atol=1e-7)


def test_newton_polish_never_increases_q():
    g = np.random.default_rng(8)
    dyn = RateDynamics(g.normal(size=(30, 30)) / np.sqrt(30), 1.5, TAU, "tanh")
    h = 2.0 * g.normal(size=(6, 30))
    q0 = dyn.q(h)
    q1 = dyn.q(dynamics.newton_polish(dyn, h, n_iter=5))
    assert (q1 <= q0).all() and (q1 < q0).any()


def test_minimise_q_reduces_q_and_leaves_its_input_alone():
    g = np.random.default_rng(9)
    dyn = RateDynamics(g.normal(size=(30, 30)) / np.sqrt(30), 1.5, TAU, "tanh")
    h = 2.0 * g.normal(size=(5, 30))
    copy = h.copy()
    x, q, it = dynamics.minimise_q(dyn, h, max_iter=300)
    np.testing.assert_array_equal(h, copy)
    assert (q < dyn.q(h) * 1e-2).all() and 1 <= it <= 300
    np.testing.assert_allclose(q, dyn.q(x), rtol=1e-9, atol=1e-18)


# -- Lyapunov exponents ----------------------------------------------------------------------------

ALPHA, DT = 0.01, 1.0


@pytest.mark.parametrize("blocks", [2, 3, 5, 8, 20])
def test_a_lyapunov_halfwidth_is_students_t_at_blocks_minus_one_times_the_se_plus_the_spread(blocks):
    from scipy.stats import t

    rng = np.random.default_rng(blocks)
    lyap = dynamics.Lyapunov(per_vector=rng.normal(size=3), blocks=rng.normal(size=(3, blocks)),
                             transient_ms=0.0, window_ms=1.0, decorrelation_ms=0.1)
    expected = float(t.ppf(0.975, blocks - 1)) * lyap.se_per_s + lyap.spread_per_s
    assert lyap.halfwidth_per_s == expected


@pytest.mark.parametrize("slowest_ms", [np.inf, 500.0, 200.0])
def test_lyapunov_exponent_of_a_linear_network_is_the_log_growth_of_its_slowest_mode(slowest_ms):
    """For the Euler map of a linear network the tangent map is 1 + alpha J: the exponent is
    ln|1 + alpha lambda_max| / dt, i.e. about lambda_max / tau (per ms), here in 1/s."""
    lam_max = 0.0 if np.isinf(slowest_ms) else -TAU / slowest_ms
    lam = np.concatenate([[lam_max], -TAU / np.array([100.0, 80.0, 60.0, 50.0, 40.0, 30.0])])
    P = _orthonormal(len(lam), 10)
    G = P @ np.diag(lam) @ P.T + np.eye(len(lam))
    dyn = RateDynamics(G, 1.0, TAU, "linear")
    h = np.zeros((2, 3000, len(lam)))  # the states do not enter a linear tangent map
    le = dynamics.lyapunov_max(dyn, h, ALPHA, DT, transient_steps=1000, seed=1)
    expected = np.log(1 + ALPHA * lam_max) / DT * 1000.0
    np.testing.assert_allclose(le, expected, atol=2e-4)
    assert expected == pytest.approx(lam_max / TAU * 1000.0, rel=1e-2, abs=1e-12)


@pytest.mark.parametrize("g", [0.5, 2.5])
def test_lyapunov_sign_of_random_tanh_networks(g):
    """The classic result (Sompolinsky, Crisanti and Sommers 1988): a random tanh network is
    chaotic for g > 1; for g < 1 it decays to h = 0, where the tangent map is 1 + alpha (g G - 1),
    so the exponent is ln(1 + alpha (g max Re eig G - 1)) / dt."""
    n = 200
    G = np.random.default_rng(11).normal(size=(n, n)) / np.sqrt(n)
    dyn = RateDynamics(G, g, TAU, "tanh")
    h0 = np.random.default_rng(12).normal(size=(3, n))
    h = dynamics.simulate_states(dyn, np.zeros(n), h0, np.zeros((3, 10000)), ALPHA, record_from=2000)
    le = dynamics.lyapunov_max(dyn, h, ALPHA, DT, transient_steps=1000)
    if g > 1:
        assert (le > 0.3).all(), le  # about 0.1 / tau = 1 per s
    else:
        expected = np.log(1 + ALPHA * (g * np.linalg.eigvals(G).real.max() - 1)) / DT * 1000.0
        np.testing.assert_allclose(le, expected, atol=0.2)  # slow alignment: eigenvalues crowd the edge


def test_several_tangent_vectors_propagated_together_equal_separate_calls():
    """vectors=V propagates V tangent vectors per trajectory in one product per step; vector j is
    the one a single-vector call with seed + j propagates, so each row equals that call (to the
    rounding of a product with more rows)."""
    n = 100
    G = np.random.default_rng(3).normal(size=(n, n)) / np.sqrt(n)
    chaos = RateDynamics(G, 2.5, TAU, "tanh")
    h = dynamics.simulate_states(chaos, np.zeros(n), np.random.default_rng(4).normal(size=(3, n)),
                                 np.zeros((3, 4000)), ALPHA, record_from=1000)
    both, blocks = dynamics.lyapunov_max(chaos, h, ALPHA, DT, transient_steps=500, seed=7, blocks=4, vectors=2)
    assert both.shape == (2, 3) and blocks.shape == (2, 3, 4)
    for j in range(2):
        one, one_blocks = dynamics.lyapunov_max(chaos, h, ALPHA, DT, transient_steps=500, seed=7 + j, blocks=4)
        np.testing.assert_allclose(both[j], one, rtol=1e-10)
        np.testing.assert_allclose(blocks[j], one_blocks, rtol=1e-10)
    assert not np.allclose(both[0], both[1], rtol=1e-6)  # two vectors, two finite-time values
    with pytest.raises(ValueError, match="vectors"):
        dynamics.lyapunov_max(chaos, h, ALPHA, DT, vectors=0)


def test_lyapunov_blocks_average_to_the_whole_window_and_give_a_standard_error():
    """The blocks' exponents (equal lengths) average to the whole window's; for a linear network the
    growth per step is constant, so every block has the same exponent and the standard error is
    zero, while a chaotic network's blocks scatter (a positive standard error)."""
    lam = -TAU / np.array([500.0, 100.0, 50.0])
    P = _orthonormal(3, 4)
    dyn = RateDynamics(P @ np.diag(lam) @ P.T + np.eye(3), 1.0, TAU, "linear")
    le, blocks = dynamics.lyapunov_max(dyn, np.zeros((1, 3001, 3)), ALPHA, DT, transient_steps=1000, blocks=5)
    np.testing.assert_allclose(blocks.mean(axis=1), le, rtol=1e-12)
    assert dynamics.lyapunov_se(blocks)[0] < 1e-6 * abs(le[0])
    n = 100
    G = np.random.default_rng(3).normal(size=(n, n)) / np.sqrt(n)
    chaos = RateDynamics(G, 2.5, TAU, "tanh")
    h = dynamics.simulate_states(chaos, np.zeros(n), np.random.default_rng(4).normal(size=(1, n)),
                                 np.zeros((1, 21000)), ALPHA, record_from=1000)
    le, blocks = dynamics.lyapunov_max(chaos, h, ALPHA, DT, transient_steps=1000, blocks=5)
    se = dynamics.lyapunov_se(blocks)
    assert se[0] > 0 and np.isclose(se[0], blocks[0].std(ddof=1) / np.sqrt(5))
    assert dynamics.LYAPUNOV_BLOCK_TAUS == 8  # blocks of at least 800 ms at tau = 100 ms, 3 to 5 of them
    assert [dynamics.lyapunov_blocks(w, 100.0) for w in (250, 2500, 3200, 4000, 20000)] == [3, 3, 4, 5, 5]


def test_three_blocks_of_a_memory_window_cover_near_their_nominal_level():
    """On 3,000 series correlated as the log growth along the shipped networks' memory trajectories
    (white noise smoothed by a Gaussian of 130 steps: the autocorrelation 0.86 at 100 ms and 0.4 at
    250 ms), the 95 % t interval from lyapunov_blocks' three blocks of a 2.5 s window covers the mean
    (zero) at least 93 % of the time; five blocks, as blocks of 2 tau gave, cover less."""
    from scipy.signal import fftconvolve
    from scipy.stats import t

    lag = np.arange(-520, 521)
    kernel = np.exp(-0.5 * (lag / 130.0) ** 2)
    noise = np.random.default_rng(0).standard_normal((3000, 2500 + 2 * 520))
    x = fftconvolve(noise, kernel[None], mode="valid", axes=1)  # (3000, 2500), stationary
    assert x.shape == (3000, 2500) and dynamics.lyapunov_blocks(2500, 100.0) == 3

    def coverage(k):
        edges = np.linspace(0, x.shape[1], k + 1).round().astype(int)  # as the exponents' blocks are cut
        blocks = np.stack([x[:, a:b].mean(axis=1) for a, b in zip(edges[:-1], edges[1:])], axis=1)
        return np.mean(np.abs(x.mean(axis=1)) <= t.ppf(0.975, k - 1) * dynamics.lyapunov_se(blocks))

    assert coverage(3) >= 0.93 and coverage(5) < coverage(3), (coverage(3), coverage(5))


def _first_nonpositive_lag(x: np.ndarray) -> int:
    """The first lag k >= 1 at which sum_t (x_t - mean)(x_{t+k} - mean) <= 0, by direct sums."""
    y = x - x.mean()
    return next((k for k in range(1, len(y)) if np.dot(y[:-k], y[k:]) <= 0), len(y))


def test_the_decorrelation_lag_is_the_first_lag_where_the_sample_autocovariance_stops_being_positive():
    """decorrelation_steps against direct sums, for AR(1) series whose correlation time grows with phi
    ((1 + phi) / (1 - phi) steps); a constant series has nothing to lose (1)."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(5)
    rows = np.stack([lfilter([1.0], [1.0, -phi], rng.standard_normal(3000)) for phi in (0.0, 0.5, 0.9, 0.99)])
    lags = dynamics.decorrelation_steps(rows)
    assert lags.tolist() == [_first_nonpositive_lag(r) for r in rows]
    assert lags[0] <= 3 and lags[3] > 3 * lags[2] > 3 and lags[3] > 30
    assert dynamics.decorrelation_steps(np.full((1, 50), 2.5)).tolist() == [1]


def test_the_autonomous_exponent_against_a_numpy_propagation_of_state_and_vectors():
    """lyapunov_autonomous against the Euler map and its tangent map stepped here in numpy: the
    window's states, each vector's exponent and blocks, and the lag after which the vectors' mean
    log growth per step first decorrelates."""
    n, V, transient, window, blocks = 60, 3, 500, 3000, 3
    G = np.random.default_rng(21).normal(size=(n, n)) / np.sqrt(n)
    dyn = RateDynamics(G, 2.5, TAU, "tanh")
    h0 = np.random.default_rng(22).normal(size=n)
    ly, states = dynamics.lyapunov_autonomous(dyn, h0, ALPHA, DT, transient, window, n_vectors=V, blocks=blocks,
                                              seed=4, keep_states=True)
    h, u = h0.copy(), np.random.default_rng(4).standard_normal((V, n))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    logs, kept = [], []
    for t in range(transient + window):
        r = np.tanh(h)
        u = (1 - ALPHA) * u + ALPHA * 2.5 * (u * (1 - r * r)) @ G.T
        h = (1 - ALPHA) * h + ALPHA * 2.5 * r @ G.T
        nrm = np.linalg.norm(u, axis=1)
        if t >= transient:
            logs.append(np.log(nrm))
            kept.append(h)
        u /= nrm[:, None]
    logs = np.array(logs).T  # (V, window)
    np.testing.assert_allclose(states, np.array(kept), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(ly.per_vector, logs.mean(axis=1) * 1000 / DT, rtol=1e-9)
    np.testing.assert_allclose(ly.blocks, logs.reshape(V, blocks, -1).mean(axis=2) * 1000 / DT, rtol=1e-9)
    assert ly.per_s > 0 and ly.transient_ms == transient * DT and ly.window_ms == window * DT
    assert ly.decorrelation_ms == _first_nonpositive_lag(logs.mean(axis=0)) * DT


def test_points_of_one_flow_are_united_and_their_mirrors_found():
    """Two searches of an odd flow find overlapping points: the union keeps each once (the lower
    q), says which searches found it, and pairs h with -h."""
    dyn = RateDynamics(np.eye(4) * 2.0, 1.0, TAU, "tanh")  # F(h) = -h + 2 tanh(h): fixed points 0 and ±1.915
    x = 1.9150080
    a = dynamics.find_points(dyn, np.array([[0.1, 0, 0, 0], [2.0, 2.0, 2.0, 2.0]]))
    b = dynamics.find_points(dyn, np.array([[-2.0, -2.0, -2.0, -2.0], [1.8, 1.8, 1.8, 1.8]]))
    pts, found = dynamics.union_points([a, b])
    norms = sorted(np.round(np.linalg.norm(pts.h, axis=1), 3))
    assert norms == pytest.approx([0.0, 2 * x, 2 * x], abs=1e-3)
    assert found[int(np.argmin(np.linalg.norm(pts.h, axis=1)))] == [0]
    plus = int(np.argmax(pts.h[:, 0]))
    assert found[plus] == [0, 1]  # both searches reached +x
    mirror = pts.mirrors()
    origin = int(np.argmin(np.linalg.norm(pts.h, axis=1)))
    minus = int(np.argmin(pts.h[:, 0]))
    assert mirror[origin] == origin and mirror[plus] == minus and mirror[minus] == plus
    assert len(pts.eigvals) == int(pts.fixed.sum()) == 3
    # a slow region: b and c both lie within the tolerance of -a; only the nearer, b, is a's mirror
    e = np.eye(4)
    tol = dynamics.merge_tolerance(4)
    h = np.array([3 * e[0], -3 * e[0] + 0.2 * tol * e[1], -3 * e[0] + 0.6 * tol * e[1]])
    slow = dynamics.Points(h=h, q=np.array([1e-6, 2e-6, 3e-6]), start_index=np.arange(3),
                           eigvals=np.zeros((0, 4), dtype=complex), tau_ms=TAU, q_fixed=1e-18, zero_tol=1e-9)
    assert np.linalg.norm(h[2] + h[0]) <= tol and slow.mirrors().tolist() == [1, 0, -1]


def test_lyapunov_needs_a_window_after_the_transient():
    dyn = RateDynamics(np.eye(3), 1.0, TAU, "linear")
    with pytest.raises(ValueError):
        dynamics.lyapunov_max(dyn, np.zeros((1, 10, 3)), ALPHA, DT, transient_steps=9)


# -- the model -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cfg():
    return config.resolve("smoke", ["hidden_size=40"])


@pytest.fixture(scope="module")
def sd(cfg):
    return moved_weights(cfg.model, 3, noise_seed=11, dI=0.5)


def test_simulate_states_is_the_models_euler_loop(cfg, sd):
    c64 = config.resolve("smoke", ["hidden_size=40", "dtype=float64"])
    tr = task.fixed_trials(c64, c64.analysis.durations_ms, c64.analysis.mem_onset_ms, c64.analysis.mem_T_ms)
    _, r = model.run(c64, sd, tr.x, return_r=True)
    h = dynamics.simulate_states(RateDynamics.from_model(c64, sd), sd["I"].double().numpy(),
                                 sd["h0"].double().numpy(), tr.x[:, :, 0].numpy(), c64.alpha)
    np.testing.assert_allclose(np.tanh(h), r.numpy(), atol=1e-10)
    np.testing.assert_array_equal(dynamics.memory_states(cfg, sd), h)  # always float64


def test_memory_dynamics_of_a_small_model(cfg, sd):
    snap = {k: v.clone() for k, v in sd.items()}
    md = dynamics.memory_dynamics(cfg, sd, n_starts_per_trial=3, max_iter=300)
    for k in sd:
        assert torch.equal(sd[k], snap[k])
    D = len(cfg.analysis.durations_ms)
    assert md.starts.shape == (3 * D, 40) and md.lyapunov_per_s.shape == (D,)
    assert np.isfinite(md.lyapunov_per_s).all()
    sp = md.points
    assert 1 <= len(sp) <= 3 * D
    dyn = RateDynamics.from_model(cfg, sd)
    # each point is much slower than the states it started from
    np.testing.assert_allclose(sp.q, dyn.q(sp.h), rtol=1e-10)
    assert (sp.q < dyn.q(md.starts).min()).all()
    assert sp.eigvals.shape == (int(sp.fixed.sum()), 40) and np.all(np.diff(sp.eigvals.real, axis=1) <= 0)
    assert len(sp.records()) == len(sp)
    again = dynamics.memory_dynamics(cfg, sd, n_starts_per_trial=3, max_iter=300)
    np.testing.assert_array_equal(again.points.h, sp.h)
    np.testing.assert_array_equal(again.lyapunov_per_s, md.lyapunov_per_s)


def test_the_memory_exponent_is_the_first_vectors_and_its_spread_the_farthest_other_vectors(cfg, sd):
    """memory_lyapunov: the exponent and blocks of the first starting vector (a single-vector call with
    the same seed), and the spread the largest distance of the other vectors' exponents from it."""
    h = dynamics.memory_states(cfg, sd)
    lam, se, n_blocks, spread, lag_ms = dynamics.memory_lyapunov(cfg, sd, h, seed=3)
    dyn = RateDynamics.from_model(cfg, sd)
    steps = cfg.steps(cfg.analysis.mem_start_ms)
    one, one_blocks = dynamics.lyapunov_max(dyn, h, cfg.alpha, cfg.model.dt_ms, transient_steps=steps, seed=3,
                                            blocks=n_blocks)
    np.testing.assert_allclose(lam, one, rtol=1e-12)
    np.testing.assert_allclose(se, dynamics.lyapunov_se(one_blocks), rtol=1e-10)
    V = dynamics.MEMORY_LYAPUNOV_VECTORS
    assert V >= 3
    others = [dynamics.lyapunov_max(dyn, h, cfg.alpha, cfg.model.dt_ms, transient_steps=steps, seed=3 + j)
              for j in range(1, V)]  # vector j is drawn from seed + j
    np.testing.assert_allclose(spread, np.max([np.abs(o - one) for o in others], axis=0), rtol=1e-9, atol=1e-12)
    # the first vector's log growth per step, propagated here in numpy: its decorrelation lag in ms
    G, g, alpha = sd["G"].double().numpy(), cfg.model.g_G, cfg.alpha
    for b in range(len(h)):
        u = np.random.default_rng(3).standard_normal((len(h), dyn.n))[b]
        u /= np.linalg.norm(u)
        logs = []
        for t in range(h.shape[1] - 1):
            u = (1 - alpha) * u + alpha * g * (u * (1 - np.tanh(h[b, t]) ** 2)) @ G.T
            logs.append(np.log(np.linalg.norm(u)))
            u /= np.linalg.norm(u)
        assert lag_ms[b] == _first_nonpositive_lag(np.array(logs[steps:])) * cfg.model.dt_ms


def test_the_nearest_fixed_point_beyond_the_origin_skips_it_and_any_slow_point():
    """Fixed points at the origin, at 3 e_0 (1 unstable mode) and at -5 e_1 (2), and a slow point at
    e_0: a state at 0.5 e_0 is nearest the origin, and beyond it nearest 3 e_0; the slow point is
    never a candidate. With the origin alone there is nothing beyond it (NaN, index -1)."""
    n = 4
    e = np.eye(n)
    h = np.array([0 * e[0], 3 * e[0], -5 * e[1], e[0]])
    q = np.array([0.0, 1e-30, 1e-30, 1.0])
    eig = np.array([[-1.0] * n, [0.5, -1, -1, -1], [0.5, 0.2, -1, -1]], dtype=complex)
    pts = dynamics.Points(h, q, np.arange(4), eig, tau_ms=100.0, q_fixed=1e-20)
    states = np.array([0.5 * e[0], -4 * e[1]])
    near = dynamics.nearest_fixed_points(pts, states)
    np.testing.assert_array_equal(near["index"], [0, 2])
    np.testing.assert_allclose(near["relative_distance"], [1.0, 0.25])
    beyond = dynamics.nearest_fixed_points(pts, states, beyond_origin=True)
    np.testing.assert_array_equal(beyond["index"], [1, 2])
    np.testing.assert_allclose(beyond["distance"], [2.5, 1.0])
    np.testing.assert_allclose(beyond["norm"], [3.0, 5.0])
    np.testing.assert_array_equal(beyond["n_unstable"], [1, 2])
    alone = dynamics.Points(h[:1], q[:1], np.arange(1), eig[:1], tau_ms=100.0, q_fixed=1e-20)
    none = dynamics.nearest_fixed_points(alone, states, beyond_origin=True)
    assert (none["index"] == -1).all() and np.isnan(none["relative_distance"]).all()
