"""sysa_core.analysis.plateau: drift slopes, and the duration sweep with its hold time checked against an
independent computation on a network with a closed form (no recurrence: every unit integrates
the pulse and then decays with tau)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sysa_core import config
from sysa_core.analysis import plateau
from sysa_core.analysis.precision import Evaluation

pytestmark = pytest.mark.usefixtures("single_threaded_torch")

N = 10
A = 0.5  # input weight of every unit


@pytest.fixture(scope="module")
def cfg():
    return config.resolve("smoke", [f"hidden_size={N}", "g_G=0", "dtype=float64"])


@pytest.fixture(scope="module")
def sd():
    """g_G = 0 and identical units: y = tanh(h) with the scalar h <- h + alpha (-h + x A)."""
    return {"G": torch.zeros(N, N), "I": torch.full((N, 1), A), "w": torch.full((N, 1), 1.0 / N),
            "h0": torch.zeros(N)}


def _closed_form(cfg, durations, T):
    """y (D, T) of the scalar unit, in float64 numpy, independently of the package's simulation."""
    onset = cfg.steps(cfg.analysis.eval_onset_ms)
    h = np.zeros(len(durations))
    y = np.empty((len(durations), T))
    dur = np.array([cfg.steps(d) for d in durations])
    for t in range(T):
        x = np.where((t >= onset) & (t <= onset + dur), cfg.task.sig, 0.0)
        h = h + cfg.alpha * (-h + x * A)
        y[:, t] = np.tanh(h)
    return y


def test_generalisation_and_hold_time_match_the_closed_form(cfg, sd):
    horizon = 1500
    g = plateau.generalisation(cfg, sd, horizon_ms=horizon, tolerance=0.1)
    ds = plateau.sweep_durations(cfg)
    # smoke: onset 150, cost onset 350, so pulses of 10 .. 190 ms end before cost onset
    assert ds == tuple(range(10, 200, 10))
    np.testing.assert_array_equal(g.durations_ms, ds)
    cost, nt = cfg.steps(cfg.task.cost_onset_ms), cfg.steps(cfg.task.Nt_ms)
    T = cost + horizon
    y = _closed_form(cfg, ds, T)
    np.testing.assert_allclose(g.y, y, atol=1e-12)
    target = cfg.task.thresh * np.array(ds)
    np.testing.assert_allclose(g.target, target)
    np.testing.assert_allclose(g.plateau, y[:, cost:nt].mean(1), atol=1e-12)
    np.testing.assert_allclose(g.error, y[:, cost:nt].mean(1) - target, atol=1e-12)
    np.testing.assert_allclose(g.rmse, np.sqrt(((y[:, cost:nt] - target[:, None]) ** 2).mean(1)), atol=1e-12)
    # hold: the first step after cost onset at which |y - y(cost onset)| > 10 % of the target
    for i in range(len(ds)):
        dev = np.abs(y[i, cost:] - y[i, cost]) > 0.1 * target[i]
        expected = np.argmax(dev) * cfg.model.dt_ms if dev.any() else horizon
        assert g.hold_ms[i] == expected and g.held[i] == (not dev.any())
    assert 0 < g.hold_ms.min() < horizon  # the decay leaves the band for some durations
    # the trained range of the smoke profile is [20, 100) ms
    np.testing.assert_array_equal(g.in_training_range, [(20 <= d < 100) for d in ds])


def test_a_constant_output_holds_for_the_whole_horizon(cfg, sd):
    flat = {**sd, "I": torch.zeros(N, 1)}  # no input: y = 0 throughout
    g = plateau.generalisation(cfg, flat, durations_ms=(20, 50), horizon_ms=800)
    assert g.held.all() and (g.hold_ms == 800).all()
    np.testing.assert_allclose(g.error, -g.target)


def test_sweep_keeps_only_pulses_that_end_before_cost_onset(cfg):
    assert plateau.sweep_durations(cfg, (10, 199, 200, 400)) == (10, 199)
    with pytest.raises(ValueError):
        plateau.sweep_durations(cfg, (300,))
    paper = config.resolve("paper")
    assert plateau.sweep_durations(paper) == tuple(range(10, 401, 10))


def test_slope_and_plateau_drift():
    t = np.arange(0.0, 2000.0)
    assert plateau.slope_per_s(t, 0.3 + 0.002 * t) == pytest.approx(2.0)
    assert plateau.slope_per_s(t, np.full_like(t, 5.0)) == 0.0
    target = np.where(t >= 1000, 1.0, -1.0)
    y = np.stack([0.1 + 1e-4 * t, 2.0 - 3e-4 * np.maximum(t - 1000, 0)])
    ev = Evaluation((50, 150), t, np.zeros((2, len(t))), y, np.stack([target, target]), {}, {})
    drift = plateau.plateau_drift(ev)
    assert drift == {50: pytest.approx(0.1), 150: pytest.approx(-0.3)}
