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
    last = onset + dur - (0 if cfg.task.pulse_includes_end else 1)  # the original's rule includes the end step
    for t in range(T):
        x = np.where((t >= onset) & (t <= last), cfg.task.sig, 0.0)
        h = h + cfg.alpha * (-h + x * A)
        y[:, t] = np.tanh(h)
    return y


def test_generalisation_and_hold_time_match_the_closed_form(cfg, sd):
    horizon = 1500
    g = plateau.generalisation(cfg, sd, horizon_ms=horizon)
    ds = plateau.sweep_durations(cfg)
    # smoke: onset 150, cost onset 350, so pulses of 10 .. 190 ms end before cost onset
    assert ds == tuple(range(10, 200, 10))
    np.testing.assert_array_equal(g.durations_ms, ds)
    cost, nt = cfg.steps(cfg.task.cost_onset_ms), cfg.steps(cfg.task.Nt_ms)
    y = _closed_form(cfg, ds, cost + horizon)
    target = cfg.task.thresh * np.array(ds)
    np.testing.assert_allclose(g.target, target)
    np.testing.assert_allclose(g.plateau, y[:, cost:nt].mean(1), atol=1e-12)
    np.testing.assert_allclose(g.rmse, np.sqrt(((y[:, cost:nt] - target[:, None]) ** 2).mean(1)), atol=1e-12)
    # hold: the first step after cost onset at which |y - target| > 10 % of the target
    for i in range(len(ds)):
        out = np.abs(y[i, cost:] - target[i]) > 0.1 * target[i]
        expected = np.argmax(out) * cfg.model.dt_ms if out.any() else horizon
        assert g.hold_ms[i] == expected
        assert g.held_trained_window[i] == (expected >= cfg.task.Nt_ms - cfg.task.cost_onset_ms)
    assert g.trained_window_ms == 250.0
    # the trained range of the smoke profile is [20, 100) ms
    np.testing.assert_array_equal(g.in_training_range, [(20 <= d < 100) for d in ds])


def test_hold_of_the_test_trials_against_their_targets(cfg):
    """Outputs built by hand: on target throughout, on target then leaving the band 100 ms after the
    cost onset, and steady but 20 % off target from the start."""
    nt, cost = cfg.steps(cfg.task.Nt_ms), cfg.steps(cfg.task.cost_onset_ms)
    T = nt + cfg.steps(cfg.analysis.eval_extra_ms)
    ds = (30, 60, 100)
    target = cfg.task.thresh * np.array(ds, dtype=float)
    y = np.zeros((3, T))
    y[0, cost:] = target[0]
    y[1, cost:] = target[1]
    y[1, cost + 100:] = 2 * target[1]
    y[2, cost:] = 1.2 * target[2]
    t = np.arange(T) * cfg.model.dt_ms
    ev = Evaluation(ds, t, np.zeros((3, T)), y, np.where(t >= cfg.task.cost_onset_ms, target[:, None], -1.0), {}, {})
    h = plateau.hold(cfg, ev)
    assert h.hold_ms == {30: float(T - cost), 60: 100.0, 100: 0.0}
    assert h.held_trained_window == {30: True, 60: False, 100: False}
    assert h.steady_trained_window == {30: True, 60: False, 100: True}  # steady, off target
    # none of them changes sign: the sign is kept to the end of the run
    assert h.run_ms == (T - cost) * cfg.model.dt_ms
    assert h.sign_kept_ms == {30: h.run_ms, 60: h.run_ms, 100: h.run_ms}


def test_the_time_an_output_keeps_its_targets_sign():
    """Hand-built outputs (dt 10 ms): crossing 0 at step 7, touching 0 without crossing, never
    crossing, and a negative target whose output turns positive at step 2."""
    y = np.array([[1.0] * 7 + [-0.5] * 3, [1.0] * 4 + [0.0] * 2 + [1.0] * 4, [0.2] * 10, [-1.0] * 2 + [0.1] * 8])
    target = np.array([1.0, 1.0, 1.0, -1.0])
    np.testing.assert_array_equal(plateau.sign_kept_ms(y, target, 10.0), [70.0, 100.0, 100.0, 20.0])


def test_sweep_keeps_only_pulses_that_end_before_cost_onset(cfg):
    assert plateau.sweep_durations(cfg, (10, 199, 200, 400)) == (10, 199)
    with pytest.raises(ValueError):
        plateau.sweep_durations(cfg, (300,))
    paper = config.resolve("paper")
    assert plateau.sweep_durations(paper) == tuple(range(10, 401, 10))


def test_slope_and_the_plateaus_drift(cfg):
    t = np.arange(0.0, 2000.0)
    assert plateau.slope_per_s(t, 0.3 + 0.002 * t) == pytest.approx(2.0)
    assert plateau.slope_per_s(t, np.full_like(t, 5.0)) == 0.0
    nt, cost = cfg.steps(cfg.task.Nt_ms), cfg.steps(cfg.task.cost_onset_ms)
    T = nt + cfg.steps(cfg.analysis.eval_extra_ms)
    tt = np.arange(T) * cfg.model.dt_ms
    y = np.stack([0.1 + 1e-4 * tt, 2.0 - 3e-4 * np.maximum(tt - cost, 0)])
    ev = Evaluation((30, 60), tt, np.zeros((2, T)), y, np.zeros((2, T)), {}, {})
    assert plateau.hold(cfg, ev).drift_per_s == {30: pytest.approx(0.1), 60: pytest.approx(-0.3)}


def test_an_output_off_its_target_leaves_the_band_at_once(cfg):
    """A readout of silent units: the output stays 0, outside every target's band from the cost onset."""
    flat = {"G": torch.zeros(N, N), "I": torch.zeros(N, 1), "w": torch.ones(N, 1), "h0": torch.zeros(N)}
    g = plateau.generalisation(cfg, flat, durations_ms=(20, 50), horizon_ms=800)
    assert (g.hold_ms == 0).all() and not g.held_trained_window.any()
    np.testing.assert_allclose(g.plateau, 0.0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_sweep_stops_once_every_plateau_has_left_its_band(monkeypatch, sd, dtype):
    """The decaying units of `sd` leave a wide band (99.9 % of the target) a few hundred ms after the
    trained window: the sweep continued in chunks of a few steps and stopped once every output has
    left gives the bits of one simulation over the whole horizon."""
    from sysa_core.model import run
    from sysa_core.task import build_trials

    c = config.resolve("smoke", [f"hidden_size={N}", "g_G=0", f"dtype={dtype}"])
    net = sd
    monkeypatch.setattr(plateau, "SWEEP_CHUNK_STEPS", 7)
    monkeypatch.setattr(plateau, "HOLD_TOLERANCE", 0.999)
    horizon = 3000
    calls = []
    real_run = plateau.run
    monkeypatch.setattr(plateau, "run", lambda *a, **kw: calls.append(a[2].shape[1]) or real_run(*a, **kw))
    g = plateau.generalisation(c, net, horizon_ms=horizon)
    ds = plateau.sweep_durations(c)
    cost, nt = c.steps(c.task.cost_onset_ms), c.steps(c.task.Nt_ms)
    onset = c.steps(c.analysis.eval_onset_ms)
    tr = build_trials(c, torch.full((len(ds),), onset), torch.tensor([c.steps(d) for d in ds]), cost + horizon)
    y = run(c, net, tr.x).double().numpy()  # the whole horizon in one simulation
    target = c.task.thresh * np.asarray(ds, dtype=np.float64)
    assert len(calls) > 1 and sum(calls) < cost + horizon  # it continued in chunks, and stopped early
    want = plateau.hold_ms(y[:, cost:], target, c.model.dt_ms, 0.999)
    assert (want > nt - cost).all() and (want < horizon).all()  # held past the trained window, left before the end
    np.testing.assert_array_equal(g.hold_ms, want)
    np.testing.assert_array_equal(g.plateau, y[:, cost:nt].mean(1))
    np.testing.assert_array_equal(g.rmse, np.sqrt(((y[:, cost:nt] - target[:, None]) ** 2).mean(1)))
