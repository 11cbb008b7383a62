"""sysa_core.model: initialisation (README, Definitions 1), the reference forward pass against float64
numpy, and the fast no-gradient simulation against the reference."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import Net1, moved_weights

from sysa_core import config, model, task
from sysa_core.analysis.precision import weight_correlation

pytestmark = pytest.mark.usefixtures("single_threaded_torch")


def _mcfg(*overrides, profile="paper"):
    return config.resolve(profile, list(overrides)).model


# -- seed-compatible initialisation ------------------------------------------------------

def test_G_is_the_reference_G_bit_for_bit(reference_dir):
    """Every seed shares G, the seed-1 draw of the original, stored in both published files."""
    for seed in (1, 2):
        ref = torch.load(reference_dir / f"sys_A{seed}_state.pth", weights_only=True)["state_dict"]
        init = model.init_weights(_mcfg(), seed)
        assert init["G"].dtype == ref["G"].dtype == torch.float32
        assert torch.equal(init["G"], ref["G"])
        assert torch.equal(init["h0"], ref["h0"])  # zeros, never trained


def test_reference_I_and_w_started_from_this_draw(reference_dir):
    """README, Definitions 6: after training, cos(I, I_init) ~ 0.998 and cos(w, w_init) ~ 0.88 (seed 1);
    an unrelated start would give |cos| ~ 1/sqrt(500) ~ 0.045."""
    ref = torch.load(reference_dir / "sys_A1_state.pth", weights_only=True)["state_dict"]
    init = model.init_weights(_mcfg(), 1)
    assert weight_correlation(ref["I"], init["I"]) == pytest.approx(0.998, abs=0.002)
    assert weight_correlation(ref["w"], init["w"]) == pytest.approx(0.88, abs=0.01)


def test_G_follows_the_documented_draw():
    n = 500
    expected = torch.empty(n, n).normal_(std=n ** -0.5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(model.init_weights(_mcfg(), 3)["G"], expected)


@pytest.mark.parametrize("seed", [1, 2, 17])
def test_I_equals_sqrt_N_times_w_at_init(seed):
    wt = model.init_weights(_mcfg(), seed)
    n = 500
    assert wt["I"].shape == (n, 1) and wt["w"].shape == (n, 1) and wt["h0"].shape == (n,)
    torch.testing.assert_close(wt["I"], math.sqrt(n) * wt["w"], rtol=1e-6, atol=1e-6)
    assert weight_correlation(wt["I"], wt["w"]) == pytest.approx(1.0, abs=1e-9)
    assert (wt["h0"] == 0).all()
    # w ~ N(0, 1/N): sample variance near 1/N
    assert float(wt["w"].var()) * n == pytest.approx(1.0, abs=0.2)


def test_seeds_draw_different_I_and_w():
    a, b = model.init_weights(_mcfg(), 1), model.init_weights(_mcfg(), 2)
    assert not torch.equal(a["w"], b["w"]) and not torch.equal(a["I"], b["I"])
    assert torch.equal(a["G"], b["G"])


# -- independent initialisation ----------------------------------------------------------

def test_independent_init_decouples_I_and_w():
    m = _mcfg("init=independent")
    wt = model.init_weights(m, 1)
    assert abs(weight_correlation(wt["I"], wt["w"])) < 0.2  # ~ N(0, 1/500)
    assert torch.equal(wt["G"], model.init_weights(_mcfg(), 1)["G"])  # G still the shared seed-1 draw
    again = model.init_weights(m, 1)
    assert all(torch.equal(wt[k], again[k]) for k in wt)
    other = model.init_weights(m, 2)
    assert not torch.equal(wt["I"], other["I"]) and not torch.equal(wt["w"], other["w"])


def test_G_per_seed():
    m = _mcfg("init=independent", "G_per_seed=true")
    g1, g1b, g2 = (model.init_weights(m, s)["G"] for s in (1, 1, 2))
    assert torch.equal(g1, g1b) and not torch.equal(g1, g2)
    assert not torch.equal(g1, model.init_weights(_mcfg(), 1)["G"])
    assert float(g1.var()) * 500 == pytest.approx(1.0, abs=0.01)


def test_random_h0_is_seeded():
    m = _mcfg("h0_zero=false")
    h1, h1b, h2 = (model.init_weights(m, s)["h0"] for s in (1, 1, 2))
    assert torch.equal(h1, h1b) and not torch.equal(h1, h2)
    assert float(h1.std()) == pytest.approx(1.0, abs=0.15)


# -- Net1 --------------------------------------------------------------------------------

def _numpy_forward(wt, x_btd, alpha, g):
    """README, Definitions 1 in float64 numpy: h <- h + alpha(-h + g tanh(h) G' + x I'); y = tanh(h) w."""
    G, I, w, h0 = (wt[k].double().numpy() for k in ("G", "I", "w", "h0"))
    x = x_btd.double().numpy()
    B, T, _ = x.shape
    h = np.broadcast_to(h0, (B, h0.shape[0])).copy()
    ys, hs = [], []
    for t in range(T):
        h = h + alpha * (-h + g * np.tanh(h) @ G.T + x[:, t] @ I.T)
        hs.append(h)
        ys.append(np.tanh(h) @ w)
    return np.stack(ys, 1), np.stack(hs, 1)


@pytest.mark.parametrize("dt", [1.0, 5.0])
def test_forward_matches_numpy_reference(dt):
    cfg = config.resolve("smoke", ["hidden_size=20", "dtype=float64", "h0_zero=false", f"dt_ms={dt}",
                                   "tau_ms=50"])
    net = Net1(cfg)
    x = torch.randn(3, 40, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y, h, r = net(x, return_h=True, return_r=True)
    y_ref, h_ref = _numpy_forward(net.state_dict(), x, dt / 50, 1.5)
    assert y.shape == (3, 40, 1) and h.shape == r.shape == (3, 40, 20)
    np.testing.assert_allclose(y.detach().numpy(), y_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h.detach().numpy(), h_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(r.detach().numpy(), np.tanh(h_ref), rtol=1e-12, atol=1e-12)


def test_only_I_and_w_are_trainable_and_dtype_follows_config():
    net = Net1(config.resolve("smoke", ["dtype=float64"]))
    assert {n for n, p in net.named_parameters() if p.requires_grad} == {"I", "w"}
    assert [n for n, _ in net.named_parameters()] == ["G", "I", "w", "h0"]  # the original's order
    assert all(p.dtype == torch.float64 for p in net.parameters())
    assert set(net.state_dict()) == {"G", "I", "w", "h0"}


# -- simulate ------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("h0_zero", [True, False])
def test_simulate_gives_the_reference_loops_bits(dtype, h0_zero):
    """model.simulate (in place, no autograd; with h0 = 0 it fills in the silent steps before the
    first input instead of simulating them) against Net1's autograd-friendly loop: the same rates
    and states to the bit, the same outputs up to the readout's summation order."""
    cfg = config.resolve("smoke", ["hidden_size=40", f"dtype={dtype}", f"h0_zero={h0_zero}"])
    net = Net1(cfg, moved_weights(cfg.model, 2, 2, dI=0.3, dw=0.3))
    tr = task.fixed_trials(cfg, (30, 60), onset_ms=100, T_ms=400)
    with torch.no_grad():
        y_ref, h_ref, r_ref = net(tr.x.to(net.G.dtype), return_h=True, return_r=True)
    p = {k: v.detach() for k, v in net.state_dict().items()}
    y, r, h = model.simulate(p["G"], p["I"], p["w"], p["h0"], tr.x, cfg.alpha, cfg.model.g_G,
                             return_r=True, return_h=True)
    assert torch.equal(r, r_ref) and torch.equal(h, h_ref)
    torch.testing.assert_close(y, y_ref[:, :, 0], rtol=1e-6 if dtype == "float32" else 1e-13, atol=0)
    if h0_zero:
        assert not r[:, :100].any() and not y[:, :100].any()  # the silent start, exactly 0
    y_only = model.simulate(p["G"], p["I"], p["w"], p["h0"], tr.x, cfg.alpha, cfg.model.g_G)
    assert torch.equal(y_only, y)


def test_simulate_records_from_a_step_and_run_leaves_the_model_alone():
    cfg = config.resolve("smoke", ["hidden_size=30"])
    sd = moved_weights(cfg.model, 4, 4, dI=0.3, dw=0.3)
    before = {k: v.clone() for k, v in sd.items()}
    tr = task.fixed_trials(cfg, (30,), onset_ms=50, T_ms=300)
    y, r, h = model.run(cfg, sd, tr.x, return_r=True, return_h=True)
    y2, r2, h2 = model.run(cfg, sd, tr.x, return_r=True, return_h=True, record_from=120)
    assert torch.equal(y, y2) and torch.equal(r[:, 120:], r2) and torch.equal(h[:, 120:], h2)
    assert all(torch.equal(sd[k], before[k]) for k in sd)
