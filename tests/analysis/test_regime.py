"""The regime of a trajectory (sysa_core.analysis.regime) on systems whose regime is known: a
decay to a fixed point, a limit cycle whose period is measured independently (the spacing of its
upward zero crossings), and a chaotic random network (positive Lyapunov exponent)."""
from __future__ import annotations

import numpy as np
import pytest

from sysa_core.analysis import dynamics, regime
from sysa_core.pipeline import prose

DT, TAU = 1.0, 100.0


def _run(G, g, h0, T):
    dyn = dynamics.RateDynamics(G, g, TAU, "tanh")
    return dyn, dynamics.simulate_states(dyn, np.zeros(len(G)), h0, np.zeros((1, T)), DT / TAU)[0]


def test_a_decay_is_a_fixed_point(single_threaded_torch):
    rng = np.random.default_rng(0)
    G = rng.standard_normal((50, 50)) / np.sqrt(50)
    _, h = _run(G, 0.5, rng.standard_normal(50), 8000)
    r = regime.classify(h[2000:], DT, TAU)
    assert r.kind == "fixed point" and r.period_ms is None


@pytest.mark.parametrize("theta", [np.pi / 4, np.pi / 6])
def test_a_hopf_oscillator_is_a_limit_cycle_with_its_period(theta, single_threaded_torch):
    c, s = np.cos(theta), np.sin(theta)
    G = 2.0 * np.array([[c, -s], [s, c]])  # the origin spirals out (Re = 2 cos theta - 1 > 0); tanh bounds it
    _, h = _run(G, 1.0, np.array([0.1, 0.0]), 20000)
    h = h[5000:]
    up = np.nonzero((h[:-1, 0] < 0) & (h[1:, 0] >= 0))[0]
    frac = -h[up, 0] / (h[up + 1, 0] - h[up, 0])  # linear interpolation of each crossing
    period = float(np.diff(up + frac).mean()) * DT
    r = regime.classify(h, DT, TAU)
    assert r.kind == "limit cycle"
    assert r.period_ms == pytest.approx(period, rel=2e-3)
    assert r.return_error < regime.RETURN_TOL
    assert prose.regime_phrase(r).startswith(f"a limit cycle of period {r.period_ms / 1000:.3g} s")


def test_a_strongly_coupled_random_network_is_chaos(single_threaded_torch):
    rng = np.random.default_rng(1)
    n = 200
    G = rng.standard_normal((n, n)) / np.sqrt(n)
    dyn, h = _run(G, 2.5, rng.standard_normal(n), 6000)
    lam, blocks = dynamics.lyapunov_max(dyn, h[None], DT / TAU, DT, transient_steps=1000, blocks=5)
    half = 2 * float(dynamics.lyapunov_se(blocks)[0])
    r = regime.classify(h[1000:], DT, TAU, float(lam[0]), half)
    assert r.kind == "chaos" and r.lyapunov_per_s > half > 0
    unresolved = regime.classify(h[1000:], DT, TAU)  # without an exponent nothing is claimed
    assert unresolved.kind == "unresolved"
