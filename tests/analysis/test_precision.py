"""sysa_core.analysis.precision: the test trials and precision against an independent computation,
the split into the trained range and extrapolation, the I-w cosine, and the initialisation
confound on weights with known answers."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from conftest import Net1

from sysa_core import config, model, task
from sysa_core.analysis import precision

pytestmark = pytest.mark.usefixtures("single_threaded_torch")


def _np_precision(y, target):
    mask = target > 0
    return ((mask * (y - target) ** 2).sum(1) / mask.sum(1))


def test_precision_agrees_with_an_independent_computation(small_cfg, moved_sd):
    ev = precision.evaluate(small_cfg, moved_sd)
    nt = small_cfg.steps(small_cfg.task.Nt_ms)
    assert ev.y.shape == (3, nt + small_cfg.steps(small_cfg.analysis.eval_extra_ms))
    tr = task.fixed_trials(small_cfg, T_ms=small_cfg.task.Nt_ms)
    with torch.no_grad():
        y = Net1(small_cfg, moved_sd)(tr.x)[:, :, 0].double().numpy()
    per = _np_precision(y, tr.target[:, :, 0].double().numpy())
    got = np.array([ev.precision_by_duration[d] for d in small_cfg.analysis.durations_ms])
    np.testing.assert_allclose(got, per, rtol=1e-4)
    assert ev.precision == pytest.approx(per.mean(), rel=1e-4)
    assert ev.precision == pytest.approx(got.mean(), rel=1e-6)  # float32 mean
    # the first Nt ms of the long evaluation run are the trials of length Nt
    np.testing.assert_allclose(ev.y[:, :nt], y, rtol=1e-4, atol=1e-6)


def test_precision_in_float64_follows_float32(small_cfg, moved_sd):
    ev32 = precision.evaluate(small_cfg, moved_sd)
    ev64 = precision.evaluate(config.resolve("smoke", ["hidden_size=40", "dtype=float64"]), moved_sd)
    assert ev64.precision == pytest.approx(ev32.precision, rel=1e-3)


def test_weight_correlation_is_the_uncentred_cosine():
    g = np.random.default_rng(0)
    I, w = g.normal(size=(50, 1)) + 3.0, g.normal(size=(50, 1))
    expected = float((I * w).sum() / np.linalg.norm(I) / np.linalg.norm(w))
    assert precision.weight_correlation(torch.tensor(I), torch.tensor(w)) == pytest.approx(expected, rel=1e-12)
    assert precision.weight_correlation(torch.tensor(I), torch.tensor(2 * I)) == pytest.approx(1.0, abs=1e-12)


def test_precision_is_split_into_the_trained_range_and_extrapolation(small_cfg, moved_sd):
    """The smoke profile trains 20-99 ms pulses; its test durations are 30, 60 (inside) and 100 ms
    (outside)."""
    ev = precision.evaluate(small_cfg, moved_sd)
    by = ev.precision_by_duration
    assert ev.in_range == {30: True, 60: True, 100: False}
    assert ev.precision_trained_range == pytest.approx((by[30] + by[60]) / 2, rel=1e-12)
    assert ev.precision_extrapolation == pytest.approx(by[100], rel=1e-12)
    assert ev.precision == pytest.approx((by[30] + by[60] + by[100]) / 3, rel=1e-12)
    inside = precision.evaluate(config.resolve("smoke", ["hidden_size=40", "durations_ms=30,60"]), moved_sd)
    assert inside.precision_extrapolation is None and inside.precision == inside.precision_trained_range



# -- the initialisation confound ---------------------------------------------------------

@pytest.fixture(scope="module")
def cfg200():
    return config.resolve("smoke", ["hidden_size=200"], seed=4)


def test_seed_compatible_initialisation_starts_with_cosine_one(cfg200):
    for seed in (1, 4, 17):
        c = dataclasses.replace(cfg200, seed=seed)
        init = model.init_weights(c.model, seed)
        out = precision.init_confound(c, init)
        assert out["weight_correlation_init"] == pytest.approx(1.0, abs=1e-6)
        # untrained: nothing moved
        assert out["input_drift_cosine"] == pytest.approx(1.0, abs=1e-12)
        assert out["output_drift_cosine"] == pytest.approx(1.0, abs=1e-12)
        assert out["input_drift_norm"] == 0.0 and out["output_drift_norm"] == 0.0
        assert precision.weight_correlation(init["I"], init["w"]) == pytest.approx(out["weight_correlation_init"],
                                                                                    abs=1e-12)


def test_independent_initialisation_does_not(cfg200):
    c = config.resolve("smoke", ["hidden_size=200", "init=independent"], seed=4)
    out = precision.init_confound(c, model.init_weights(c.model, 4))
    assert abs(out["weight_correlation_init"]) < 0.3  # ~ N(0, 1/200)


def test_drift_of_known_moves(cfg200):
    init = model.init_weights(cfg200.model, cfg200.seed)
    I0, w0 = init["I"].double(), init["w"].double()
    g = np.random.default_rng(0)
    # I moved by a vector orthogonal to I0 of the same norm: cosine 1/sqrt(2), relative move 1
    d = torch.tensor(g.normal(size=I0.shape))
    d = d - (d * I0).sum() / (I0 * I0).sum() * I0
    d = d * I0.norm() / d.norm()
    moved_sd = {**init, "I": (I0 + d).float(), "w": (-2.0 * w0).float()}
    out = precision.init_confound(cfg200, moved_sd)
    assert out["input_drift_cosine"] == pytest.approx(1 / np.sqrt(2), abs=1e-6)
    assert out["input_drift_norm"] == pytest.approx(1.0, abs=1e-6)
    assert out["output_drift_cosine"] == pytest.approx(-1.0, abs=1e-6)  # reversed
    assert out["output_drift_norm"] == pytest.approx(3.0, abs=1e-6)
    assert precision.weight_correlation(moved_sd["I"], moved_sd["w"]) == pytest.approx(-1 / np.sqrt(2), abs=1e-6)
    assert init["I"].dtype == torch.float32  # the caller's tensors untouched
    assert torch.equal(moved_sd["w"], (-2.0 * w0).float())


def test_the_cosine_of_two_vectors():
    assert precision.weight_correlation(torch.tensor([1.0, 0.0]), torch.tensor([3.0, 3.0])) == pytest.approx(2 ** -0.5)
