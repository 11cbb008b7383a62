"""Seeds as a batch dimension (issue 4, acceptance 3): training seeds 1 and 2 as one computation
gives the same weights as training them one at a time, within 1e-5 relative, after a few epochs
of the smoke profile; with the shared seed-compatible G (one product for all rows) and with a G
per seed (one product per seed block)."""
from __future__ import annotations

import pytest
import torch

from sysa_core import config, engine, task, training
from sysa_core.model import DTYPES, init_weights

EPOCHS = 4  # 4 x 4 Adam steps


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


@pytest.mark.parametrize("overrides", [[], ["init=independent", "G_per_seed=true"]],
                         ids=["shared_G", "G_per_seed"])
def test_two_seeds_batched_equal_separate_training(overrides):
    cfg = config.resolve("smoke", [f"epochs={EPOCHS}", *overrides])
    together = training.train_seeds(cfg, [1, 2], batch_seeds=True, progress=False)
    apart = {s: training.train_seeds(cfg, [s], batch_seeds=False, progress=False)[s] for s in (1, 2)}
    init = {s: training._new_state(cfg, s, None).weights for s in (1, 2)}
    if overrides:  # the variant really has a G per seed
        assert not torch.equal(together[1]["G"], together[2]["G"])
    for s in (1, 2):
        for k in ("I", "w"):
            assert not torch.equal(apart[s][k], init[s][k]), f"seed {s} {k} did not train"
            err = _rel(together[s][k], apart[s][k])
            assert err < 1e-5, f"seed {s} {k}: batched vs separate rel err {err:.2e}"
        for k in ("G", "h0"):
            assert torch.equal(together[s][k], apart[s][k])
    # the two seeds are different models, not copies of one
    assert _rel(together[1]["w"], together[2]["w"]) > 0.1


@pytest.mark.parametrize("dtype,tol", [("float32", 1e-5), ("float64", 1e-12)])
@pytest.mark.parametrize("per_seed_G", [False, True], ids=["shared_G", "G_per_seed"])
def test_row_streams_equal_one_stream(monkeypatch, dtype, tol, per_seed_G):
    """The CPU engine's row streams (the trials of a batch split over threads) give the result
    of one stream, for stacked seeds with h0 = 0 and h0 != 0, and leave torch's thread count as
    it was."""
    overrides = [f"dtype={dtype}", "perc=0.3"] + (["init=independent", "G_per_seed=true"] if per_seed_G else [])
    cfg = config.resolve("smoke", overrides)
    dt = DTYPES[dtype]
    wts = [{k: v.to(dt) for k, v in init_weights(cfg.model, s).items()} for s in (1, 2, 3)]
    wts[1]["h0"] = 0.5 * torch.randn(cfg.model.hidden_size, generator=torch.Generator().manual_seed(5)).to(dt)
    G = torch.stack([w["G"] for w in wts]) if per_seed_G else wts[0]["G"]
    args = (G, torch.stack([w["I"] for w in wts]), torch.stack([w["w"] for w in wts]),
            torch.stack([w["h0"] for w in wts]),
            [task.draw_trials(cfg, 12, torch.Generator().manual_seed(s)) for s in range(3)], cfg.alpha, cfg.model.g_G)
    monkeypatch.setattr(engine, "MIN_ROWS_PER_STREAM", 1)
    monkeypatch.setattr(engine, "CPU_STREAMS", 1)
    one = engine.adjoint_step(*args)
    threads = torch.get_num_threads()
    for P in (2, 3):
        monkeypatch.setattr(engine, "CPU_STREAMS", P)
        many = engine.adjoint_step(*args)
        assert torch.get_num_threads() == threads
        for name in ("loss", "dI", "dw"):
            err = _rel(getattr(many, name), getattr(one, name))
            assert err < tol, f"{P} streams, {name}: {err:.2e}"


def test_row_streams_with_seeds_of_one_trial(monkeypatch):
    """Streams that would get no rows (G per seed, one pulse trial per seed) are left out."""
    cfg = config.resolve("smoke", ["init=independent", "G_per_seed=true", "perc=0.0"])
    wts = [init_weights(cfg.model, s) for s in (1, 2, 3)]
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
