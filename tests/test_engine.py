"""sysa_core.engine: the hand-written adjoint against autograd, and its CPU row streams against one
stream.

Setting: hidden 64, a 600 ms timeline (the smoke task), catch trials and varied onsets in every
batch, h0 = 0 and h0 != 0, the shared seed-1 G and a G per seed, several seeds stacked.
"""
from __future__ import annotations

import pytest
import torch

from conftest import Net1, moved_weights

from sysa_core import config, engine, model, task
from sysa_core.model import generator

pytestmark = pytest.mark.usefixtures("single_threaded_torch")

TOL = {"float32": 1e-4, "float64": 1e-9}


def _cfg(dtype, *extra):
    return config.resolve("smoke", ["hidden_size=64", f"dtype={dtype}", "perc=0.3", *extra])


def _batch(cfg, seed, n=8):
    tr = task.draw_trials(cfg, n, generator(1000 + seed))
    assert tr.catch.any() and (~tr.catch).any(), "the batch must mix catch and pulse trials"
    assert len(set(tr.onset_step[~tr.catch].tolist())) >= 2, "onsets must vary"
    return tr


def _reference(cfg, wts, trials):
    """Loss and gradients from Net1's plain loop (model.py) and autograd, independently of engine."""
    net = Net1(cfg, wts)
    y = net(trials.x)
    loss = task.training_loss(y, trials.target)
    dI, dw = torch.autograd.grad(loss, (net.I, net.w))
    return loss.detach(), dI, dw


def _rel(a, b):
    return float((a - b).norm() / b.norm())


def _check(cfg, seeds, wts_list, batches, shared_G):
    dtype = model.DTYPES[cfg.model.dtype]
    G = wts_list[0]["G"].to(dtype) if shared_G else torch.stack([w["G"].to(dtype) for w in wts_list])
    I = torch.stack([w["I"].to(dtype) for w in wts_list])
    w = torch.stack([w["w"].to(dtype) for w in wts_list])
    h0 = torch.stack([w["h0"].to(dtype) for w in wts_list])
    res = engine.adjoint_step(G, I, w, h0, batches, cfg.alpha, cfg.model.g_G)
    ag = engine.autograd_step(G, I, w, h0, batches, cfg.alpha, cfg.model.g_G)
    fwd = engine.forward_loss(G, I, w, h0, batches, cfg.alpha, cfg.model.g_G)
    tol = TOL[cfg.model.dtype]
    assert fwd.shape == (len(seeds),) and fwd.dtype == dtype
    assert res.loss.shape == (len(seeds),) and res.dI.shape == I.shape and res.dw.shape == w.shape
    assert res.loss.dtype == dtype
    for k, s in enumerate(seeds):
        loss, dI, dw = _reference(cfg, wts_list[k], batches[k])
        assert float(res.loss[k]) == pytest.approx(float(loss), rel=tol), f"seed {s} loss"
        assert float(fwd[k]) == pytest.approx(float(loss), rel=tol), f"seed {s} forward_loss"
        assert _rel(res.dI[k], dI) < tol, f"seed {s} dI: {_rel(res.dI[k], dI)}"
        assert _rel(res.dw[k], dw) < tol, f"seed {s} dw: {_rel(res.dw[k], dw)}"
        # the engine's own autograd reference agrees too
        assert float(ag.loss[k]) == pytest.approx(float(loss), rel=tol)
        assert _rel(ag.dI[k], dI) < tol and _rel(ag.dw[k], dw) < tol


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_adjoint_matches_autograd_one_seed(dtype):
    cfg = _cfg(dtype)
    wts = moved_weights(cfg.model, 1, 1 + 77, dI=0.5, dw=0.1)
    _check(cfg, [1], [wts], [_batch(cfg, 1)], shared_G=True)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_adjoint_matches_autograd_seeds_stacked(dtype):
    cfg = _cfg(dtype)
    seeds = [1, 2, 3]
    wts = [moved_weights(cfg.model, s, s + 77, dI=0.5, dw=0.1) for s in seeds]
    _check(cfg, seeds, wts, [_batch(cfg, s) for s in seeds], shared_G=True)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_adjoint_matches_autograd_nonzero_h0(dtype):
    cfg = _cfg(dtype, "h0_zero=false")
    seeds = [1, 2]
    wts = [model.init_weights(cfg.model, s) for s in seeds]
    assert all((w["h0"] != 0).any() for w in wts)
    _check(cfg, seeds, wts, [_batch(cfg, s) for s in seeds], shared_G=True)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_adjoint_matches_autograd_independent_init_G_per_seed(dtype):
    """A G per seed, mixed h0 (zero for one seed, random for the other) in one stacked step."""
    cfg = _cfg(dtype, "init=independent", "G_per_seed=true")
    cfg_h = _cfg(dtype, "init=independent", "G_per_seed=true", "h0_zero=false")
    wts = [model.init_weights(cfg.model, 4), model.init_weights(cfg_h.model, 5)]
    assert not torch.equal(wts[0]["G"], wts[1]["G"])
    _check(cfg, [4, 5], wts, [_batch(cfg, 4), _batch(cfg, 5)], shared_G=False)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shared_G", [True, False], ids=["shared_G", "G_per_seed"])
def test_the_loss_of_what_is_not_simulated_is_added_in_closed_form(dtype, shared_G):
    """Targets that are not 0 where the engine does not simulate (the steps before the batch's first
    input, catch trials): the loss, forward_loss's included, is still the reference's."""
    cfg = _cfg(dtype, *([] if shared_G else ["init=independent", "G_per_seed=true"]))
    seeds = [1, 2, 3]
    wts = [moved_weights(cfg.model, s, s + 77, dI=0.5, dw=0.1) for s in seeds]
    batches = []
    for s in seeds:
        tr = _batch(cfg, s)
        assert int(tr.onset_step[~tr.catch].min()) > 10
        target = tr.target.clone()
        target[:, :10] = 0.3
        target[tr.catch] = 0.2
        batches.append(task.Trials(tr.x, target, tr.onset_step, tr.duration_ms))
    _check(cfg, seeds, wts, batches, shared_G=shared_G)


def test_all_catch_batch_has_zero_gradient():
    cfg = _cfg("float64")
    wts = model.init_weights(cfg.model, 1)
    tr = task.build_trials(cfg, torch.full((4,), -1), torch.zeros(4), cfg.steps(cfg.task.Nt_ms))
    loss, dI, dw = _reference(cfg, wts, tr)
    res = engine.adjoint_step(wts["G"].double(), wts["I"].double()[None], wts["w"].double()[None],
                              wts["h0"].double()[None], [tr], cfg.alpha, cfg.model.g_G)
    assert float(loss) == 0.0 and float(res.loss[0]) == 0.0
    assert float(engine.forward_loss(wts["G"].double(), wts["I"].double()[None], wts["w"].double()[None],
                                     wts["h0"].double()[None], [tr], cfg.alpha, cfg.model.g_G)[0]) == 0.0
    assert not res.dI.any() and not res.dw.any() and not dI.any() and not dw.any()


# -- row streams ----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype,tol", [("float32", 1e-5), ("float64", 1e-12)])
@pytest.mark.parametrize("per_seed_G", [False, True], ids=["shared_G", "G_per_seed"])
def test_row_streams_equal_one_stream(monkeypatch, dtype, tol, per_seed_G):
    """The CPU engine's row streams (the trials of a batch split over threads) give the result
    of one stream, for stacked seeds with h0 = 0 and h0 != 0, and leave torch's thread count as
    it was."""
    overrides = [f"dtype={dtype}", "perc=0.3"] + (["init=independent", "G_per_seed=true"] if per_seed_G else [])
    cfg = config.resolve("smoke", overrides)
    dt = model.DTYPES[dtype]
    wts = [{k: v.to(dt) for k, v in model.init_weights(cfg.model, s).items()} for s in (1, 2, 3)]
    wts[1]["h0"] = 0.5 * torch.randn(cfg.model.hidden_size, generator=torch.Generator().manual_seed(5)).to(dt)
    G = torch.stack([w["G"] for w in wts]) if per_seed_G else wts[0]["G"]
    args = (G, torch.stack([w["I"] for w in wts]), torch.stack([w["w"] for w in wts]),
            torch.stack([w["h0"] for w in wts]),
            [task.draw_trials(cfg, 12, torch.Generator().manual_seed(s)) for s in range(3)], cfg.alpha, cfg.model.g_G)
    monkeypatch.setattr(engine, "MIN_ROWS_PER_STREAM", 1)
    monkeypatch.setattr(engine, "CPU_STREAMS", 1)
    one = engine.adjoint_step(*args)
    fwd_one = engine.forward_loss(*args)
    threads = torch.get_num_threads()
    for P in (2, 3):
        monkeypatch.setattr(engine, "CPU_STREAMS", P)
        many = engine.adjoint_step(*args)
        assert torch.get_num_threads() == threads
        for name in ("loss", "dI", "dw"):
            err = _rel(getattr(many, name), getattr(one, name))
            assert err < tol, f"{P} streams, {name}: {err:.2e}"
        assert _rel(engine.forward_loss(*args), fwd_one) < tol
        assert torch.get_num_threads() == threads


def test_row_streams_with_seeds_of_one_trial(monkeypatch):
    """Streams that would get no rows (G per seed, one pulse trial per seed) are left out."""
    cfg = config.resolve("smoke", ["init=independent", "G_per_seed=true", "perc=0.0"])
    wts = [model.init_weights(cfg.model, s) for s in (1, 2, 3)]
    args = (torch.stack([w["G"] for w in wts]), torch.stack([w["I"] for w in wts]), torch.stack([w["w"] for w in wts]),
            torch.stack([w["h0"] for w in wts]),
            [task.draw_trials(cfg, 1, torch.Generator().manual_seed(s)) for s in range(3)], cfg.alpha, cfg.model.g_G)
    monkeypatch.setattr(engine, "MIN_ROWS_PER_STREAM", 1)
    monkeypatch.setattr(engine, "CPU_STREAMS", 1)
    one = engine.adjoint_step(*args)
    monkeypatch.setattr(engine, "CPU_STREAMS", 3)
    many = engine.adjoint_step(*args)
    for name in ("loss", "dI", "dw"):
        assert _rel(getattr(many, name), getattr(one, name)) < 1e-6


@pytest.mark.parametrize("dtype,tol", [("float32", 1e-5), ("float64", 1e-9)])
def test_adjoint_matches_autograd_a_default_batch_of_seeds(dtype, tol):
    """As many seeds as training steps together by default (training.MODELS_PER_BATCH, at least 8)
    stacked on the shared G: each seed's loss and gradients agree with its own autograd reference."""
    from sysa_core.training import MODELS_PER_BATCH

    cfg = config.resolve("smoke", ["hidden_size=32", f"dtype={dtype}", "perc=0.3"])
    seeds = list(range(1, max(8, MODELS_PER_BATCH) + 1))
    dt = model.DTYPES[dtype]
    wts = [{k: v.to(dt) for k, v in moved_weights(cfg.model, s, s + 77, dI=0.5, dw=0.1).items()} for s in seeds]
    batches = [_batch(cfg, s, n=6) for s in seeds]
    args = (wts[0]["G"], torch.stack([w["I"] for w in wts]), torch.stack([w["w"] for w in wts]),
            torch.stack([w["h0"] for w in wts]), batches, cfg.alpha, cfg.model.g_G)
    res = engine.adjoint_step(*args)
    for k, s in enumerate(seeds):
        loss, dI, dw = _reference(cfg, wts[k], batches[k])
        assert float(res.loss[k]) == pytest.approx(float(loss), rel=tol), f"seed {s} loss"
        assert _rel(res.dI[k], dI) < tol, f"seed {s} dI: {_rel(res.dI[k], dI):.2e}"
        assert _rel(res.dw[k], dw) < tol, f"seed {s} dw: {_rel(res.dw[k], dw):.2e}"
