"""sysa_core.analysis.mechanism on constructed systems with known answers, through the whole
per-model analysis (analysis.metrics.analyse): a designed line attractor (the state rests while
the output holds: "attractor") and a readout fitted to decaying transients ("transient"); and
each measure on data built by hand."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sysa_core import config, model, task
from sysa_core.analysis import mechanism, metrics

pytestmark = pytest.mark.usefixtures("single_threaded_torch")

N = 40


@pytest.fixture(scope="module")
def cfg():
    """The smoke task (trained pulses 20-99 ms; test durations 30, 60 (inside) and 100 ms; memory
    window = the trained plateau window, 200-450 ms after the pulse's onset) with 40 units."""
    return config.resolve("smoke", [f"hidden_size={N}"])


@pytest.fixture(scope="module")
def line_attractor(cfg):
    """g G = u u' along a unit vector u of entries +-1/sqrt(N): along u the recurrence cancels the
    leak (up to tanh's curvature, small at these amplitudes), across it every direction decays with
    tau. I = u / 2 integrates the pulse along u (c = sig * D / (2 tau)), w = u reads c: y = 0.01 D,
    the smoke target thresh * D."""
    u = torch.tensor(np.where(np.arange(N) % 2, 1.0, -1.0) / np.sqrt(N), dtype=torch.float32)
    return {"G": torch.outer(u, u) / cfg.model.g_G, "I": (0.5 * u)[:, None], "w": u[:, None].clone(),
            "h0": torch.zeros(N)}


@pytest.fixture(scope="module")
def transient(cfg):
    """Units that each decay with their own time constant (100 ms .. 1 s) after the pulse, and a
    readout fitted by least squares to hold the targets over the memory window: the output holds
    while the state keeps moving."""
    taus = np.geomspace(100.0, 1000.0, N)
    G = torch.diag(torch.tensor((1.0 - cfg.model.tau_ms / taus) / cfg.model.g_G, dtype=torch.float32))
    I = torch.tensor(np.random.default_rng(0).uniform(0.2, 0.6, N), dtype=torch.float32)[:, None]
    sd = {"G": G, "I": I, "w": torch.zeros(N, 1), "h0": torch.zeros(N)}
    a = cfg.analysis
    ds = mechanism.in_range_durations(cfg)
    _, r = model.run(cfg, sd, task.fixed_trials(cfg, ds, a.mem_onset_ms, a.mem_T_ms).x, return_r=True)
    win = slice(cfg.steps(a.mem_start_ms), cfg.steps(a.mem_T_ms))
    X = torch.cat([r[i, win] for i in range(len(ds))]).double().numpy()
    y = np.concatenate([np.full(win.stop - win.start, cfg.task.thresh * d) for d in ds])
    sd["w"] = torch.tensor(np.linalg.solve(X.T @ X + 1e-6 * np.eye(N), X.T @ y), dtype=torch.float32)[:, None]
    return sd


def test_a_designed_line_attractor_is_an_attractor(cfg, line_attractor):
    m = metrics.analyse(cfg, line_attractor).metrics
    assert m["precision_trained_range"] < 1e-3 < m["precision_untrained_trained_range"]
    assert m["plateau_held_trained_window"] == 1.0
    assert m["plateau_state_speed_per_s"] < 0.05 and m["state_travel"] < 0.02  # the state rests
    assert m["readout_pcs_needed"] == 1  # the line tells the two in-range plateaus apart
    assert m["memory_mechanism"] == "attractor"


def test_a_readout_fitted_to_decaying_transients_is_a_transient(cfg, transient):
    m = metrics.analyse(cfg, transient).metrics
    assert m["precision_trained_range"] < 1e-4 and m["plateau_held_trained_window"] == 1.0
    assert m["plateau_state_speed_per_s"] > 1.0 and m["state_travel"] > 0.3  # the state keeps moving
    assert m["memory_mechanism"] == "transient"


def test_noise_degrades_precision_and_is_seeded(cfg, line_attractor):
    p = [mechanism.noise_precision(cfg, line_attractor, s) for s in mechanism.NOISE_SIGMAS]
    assert p[0] < p[1] < p[2]
    assert mechanism.noise_precision(cfg, line_attractor, 0.03) == p[1]
    # the levels in one simulation: each level's rows get the draws of its own simulation
    together = mechanism.noise_precisions(cfg, line_attractor)
    assert list(together) == list(mechanism.NOISE_SIGMAS)
    assert list(together.values()) == pytest.approx(p, rel=1e-6)


def test_state_speed_of_known_trajectories(cfg):
    T = cfg.steps(cfg.analysis.mem_T_ms)
    still = np.ones((1, T, N))
    # |h| = 1 everywhere, moving by 0.001 of its norm per 1 ms step: relative speed 1 /s
    angle = 0.001 * np.arange(T)
    circle = np.zeros((1, T, N))
    circle[0, :, 0], circle[0, :, 1] = np.cos(angle), np.sin(angle)
    speed = mechanism.state_speed_per_s(cfg, np.concatenate([still, circle]))
    assert speed[0] == 0.0 and speed[1] == pytest.approx(1.0, rel=1e-3)
    assert mechanism.state_travel(cfg, 1.0) == pytest.approx(0.25)  # the 250 ms memory window


def test_the_mechanism_rule():
    assert mechanism.mechanism(100.0, 0.05) == "attractor"
    assert mechanism.mechanism(100.0, 0.5) == "transient"
    assert mechanism.mechanism(5.0, 0.05) == "no memory"
    assert mechanism.mechanism(None, 0.05) == "undetermined"


def test_subspace_overlap():
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(100, 100)))
    A, B = q[:, :3], q[:, 3:6]
    assert mechanism.subspace_overlap(A, A) == pytest.approx(1.0)
    assert mechanism.subspace_overlap(A, A @ np.linalg.qr(np.random.default_rng(2).normal(size=(3, 3)))[0]) == \
        pytest.approx(1.0)  # another basis of the same subspace
    assert mechanism.subspace_overlap(A, B) == pytest.approx(0.0, abs=1e-12)
    mixed = np.linalg.qr(np.c_[A[:, :1], B[:, :2]])[0]
    assert mechanism.subspace_overlap(A, mixed) == pytest.approx(1 / 3)
