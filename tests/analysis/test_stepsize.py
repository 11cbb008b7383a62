"""The test trials again at a finer Euler step (analysis.stepsize), against a hand-written float64
Euler loop of the same trials in ms."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sysa_core import config
from sysa_core.analysis import plateau, precision, stepsize


def _reference(cfg, sd, dt_ms: float, pulse_ms: float, duration_ms: int) -> dict:
    """Plateau mean, relative error and hold (ms, capped at the window) of one test trial simulated
    with step dt_ms in float64 by the plain loop: the input sig for the pulse's pulse_ms from the
    evaluation onset, the output read after each step."""
    G, I, w = (sd[k].double().numpy() for k in ("G", "I", "w"))
    I, w = I[:, 0], w[:, 0]
    a, t = dt_ms / cfg.model.tau_ms, cfg.task
    n_on, n_pulse = round(cfg.analysis.eval_onset_ms / dt_ms), round(pulse_ms / dt_ms)
    cost, end = round(t.cost_onset_ms / dt_ms), round(t.Nt_ms / dt_ms)
    h, y = np.zeros(len(I)), np.empty(end)
    for k in range(end):
        x = t.sig if n_on <= k < n_on + n_pulse else 0.0
        h = h + a * (-h + cfg.model.g_G * (G @ np.tanh(h)) + I * x)
        y[k] = w @ np.tanh(h)
    target = t.thresh * duration_ms
    win = y[cost:end]
    out = np.abs(win - target) > plateau.HOLD_TOLERANCE * target
    return {"plateau": win.mean(), "relative_error": np.sqrt(np.mean((win - target) ** 2)) / target,
            "hold_ms": (np.argmax(out) if out.any() else len(win)) * dt_ms}


def _integrator(cfg) -> dict:
    """A hand-built integrator: G = u u' / g, so that along u the recurrence cancels the leak where
    tanh is linear; I and w along u. Its plateaus hold for a while and then leave their band as
    tanh's curvature makes them decay: hold times inside the window."""
    n = cfg.model.hidden_size
    u = torch.ones(n, 1) / n ** 0.5
    return {"G": u @ u.T / cfg.model.g_G, "I": 0.5 * u, "w": u.clone(), "h0": torch.zeros(n)}


@pytest.mark.parametrize("includes_end", [False, True])
def test_both_steps_match_a_float64_euler_loop_of_the_same_pulses_in_ms(includes_end):
    cfg = config.resolve("quick", ["model.hidden_size=40", "model.dtype=float64",
                                   f"task.pulse_includes_end={includes_end}"], seed=3)
    sd = _integrator(cfg)
    got = stepsize.step_check(cfg, sd, precision.evaluate(cfg, sd))
    assert got.dt_ms == 10.0 and got.fine_dt_ms == stepsize.FINE_DT_MS == 1.0
    for d in cfg.analysis.durations_ms:
        pulse_ms = d + (10.0 if includes_end else 0.0)  # the pulse the model was trained on, in ms, at both steps
        for step in (10.0, 1.0):
            ref = _reference(cfg, sd, step, pulse_ms, d)
            assert got.plateau[step][d] == pytest.approx(ref["plateau"], rel=1e-9)
            assert got.relative_error[step][d] == pytest.approx(ref["relative_error"], rel=1e-9)
            assert got.on_target_ms[step][d] == ref["hold_ms"]
    # not vacuous: a plateau leaves its band inside the window, at different times at the two steps
    assert 0 < got.on_target_ms[1.0][300] < cfg.trained_window_ms and got.on_target_ms[1.0][300] != got.on_target_ms[10.0][300]


def test_the_models_own_step_gives_the_evaluations_numbers():
    cfg = config.resolve("quick", ["model.hidden_size=40", "model.dtype=float64"], seed=2)
    sd = _integrator(cfg)
    ev = precision.evaluate(cfg, sd)
    got = stepsize.step_check(cfg, sd, ev)
    hold = plateau.hold(cfg, ev)
    for d in cfg.analysis.durations_ms:
        assert got.relative_error[10.0][d] == pytest.approx(ev.relative_error_by_duration[d], rel=1e-9)
        assert got.on_target_ms[10.0][d] == min(hold.hold_ms[d], cfg.trained_window_ms)


def test_the_metrics_summarise_the_in_range_plateaus_at_the_fine_step():
    cfg = config.resolve("quick", ["model.hidden_size=40"], seed=1)
    sd = _integrator(cfg)
    got = stepsize.step_check(cfg, sd, precision.evaluate(cfg, sd))
    m = got.metrics()
    inside = [d for d in cfg.analysis.durations_ms if cfg.in_trained_range(d)]
    assert inside == [50, 150]
    assert m["fine_step_dt_ms"] == 1.0 and set(m["fine_step_hold_ms_by_duration"]) == {"50", "150", "300"}
    assert m["fine_step_trained_step_plateau_by_duration"] == {str(d): got.plateau[10.0][d] for d in got.durations_ms}
    assert m["fine_step_held_trained_window"] == np.mean([got.on_target_ms[1.0][d] >= 2000 for d in inside])
    assert m["fine_step_relative_error_trained_range"] == pytest.approx(
        np.sqrt(np.mean([got.relative_error[1.0][d] ** 2 for d in inside])))


@pytest.mark.parametrize("profile, overrides, applies", [
    ("paper", [], False), ("smoke", [], False), ("smoke", ["model.dt_ms=1.5"], False), ("smoke", ["model.dt_ms=2"], True),
    ("quick", [], True)])
def test_the_check_applies_to_a_step_coarser_than_the_papers_and_whole_milliseconds(profile, overrides, applies):
    cfg = config.apply_overrides(config.profile(profile), overrides)
    assert stepsize.applies(cfg) is applies
    if not applies:
        assert stepsize.step_check(cfg, {}, None) is None  # before any simulation


def test_the_in_range_summaries_count_a_plateau_held_to_the_windows_end_and_no_other():
    """Hand-made numbers: held means on target for the whole window (>=), out-of-range durations
    left out, and each step's numbers kept apart."""
    check = stepsize.StepCheck(
        10.0, 1.0, (50, 150, 300), {50: True, 150: True, 300: False}, 2000.0,
        plateau={10.0: {50: .35, 150: 1.05, 300: 2.1}, 1.0: {50: .3, 150: 1.2, 300: 2.0}},
        relative_error={10.0: {50: .03, 150: .04, 300: .5}, 1.0: {50: .3, 150: .4, 300: 0.0}},
        on_target_ms={10.0: {50: 2000.0, 150: 2000.0, 300: 0.0}, 1.0: {50: 1999.0, 150: 2000.0, 300: 2000.0}})
    assert check.held_in_range(10.0) == 1.0 and check.held_in_range(1.0) == 0.5
    assert check.relative_error_in_range(10.0) == pytest.approx(0.05 / 2 ** 0.5)
    assert check.relative_error_in_range(1.0) == pytest.approx(0.5 / 2 ** 0.5)
    m = check.metrics()
    assert m["fine_step_trained_step_plateau_by_duration"] == {"50": .35, "150": 1.05, "300": 2.1}
    assert m["fine_step_plateau_by_duration"] == {"50": .3, "150": 1.2, "300": 2.0}
    assert m["fine_step_held_trained_window"] == 0.5
