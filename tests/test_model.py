"""sysa_core.model: initialisation (SPEC section 1) and the reference forward pass."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from sysa_core import analysis, config, model

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
    """SPEC section 6: after training, cos(I, I_init) ~ 0.998 and cos(w, w_init) ~ 0.88 (seed 1);
    an unrelated start would give |cos| ~ 1/sqrt(500) ~ 0.045."""
    ref = torch.load(reference_dir / "sys_A1_state.pth", weights_only=True)["state_dict"]
    init = model.init_weights(_mcfg(), 1)
    assert analysis.weight_correlation(ref["I"], init["I"]) == pytest.approx(0.998, abs=0.002)
    assert analysis.weight_correlation(ref["w"], init["w"]) == pytest.approx(0.88, abs=0.01)


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
    assert analysis.weight_correlation(wt["I"], wt["w"]) == pytest.approx(1.0, abs=1e-9)
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
    assert abs(analysis.weight_correlation(wt["I"], wt["w"])) < 0.2  # ~ N(0, 1/500)
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
    """SPEC section 1 in float64 numpy: h <- h + alpha(-h + g tanh(h) G' + x I'); y = tanh(h) w."""
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
    net = model.Net1(cfg)
    x = torch.randn(3, 40, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y, h, r = net(x, return_h=True, return_r=True)
    y_ref, h_ref = _numpy_forward(net.weights(), x, dt / 50, 1.5)
    assert y.shape == (3, 40, 1) and h.shape == r.shape == (3, 40, 20)
    np.testing.assert_allclose(y.detach().numpy(), y_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h.detach().numpy(), h_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(r.detach().numpy(), np.tanh(h_ref), rtol=1e-12, atol=1e-12)


def test_only_I_and_w_are_trainable_and_dtype_follows_config():
    net = model.Net1(config.resolve("smoke", ["dtype=float64"]))
    assert {n for n, p in net.named_parameters() if p.requires_grad} == {"I", "w"}
    assert [n for n, _ in net.named_parameters()] == ["G", "I", "w", "h0"]  # the original's order
    assert all(p.dtype == torch.float64 for p in net.parameters())
    assert set(net.state_dict()) == {"G", "I", "w", "h0"}
