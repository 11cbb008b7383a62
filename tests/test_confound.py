"""sysa_core.confound: the I-w cosine at initialisation and how far each vector moved, on
weights with known answers."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from sysa_core import config, confound, model


@pytest.fixture(scope="module")
def cfg():
    return config.resolve("smoke", ["hidden_size=200"], seed=4)


def test_seed_compatible_initialisation_starts_with_cosine_one(cfg):
    for seed in (1, 4, 17):
        c = dataclasses.replace(cfg, seed=seed)
        out = confound.init_confound(c, model.init_weights(c.model, seed))
        assert out["weight_correlation_init"] == pytest.approx(1.0, abs=1e-6)
        # untrained: nothing moved
        assert out["input_drift_cosine"] == pytest.approx(1.0, abs=1e-12)
        assert out["output_drift_cosine"] == pytest.approx(1.0, abs=1e-12)
        assert out["input_drift_norm"] == 0.0 and out["output_drift_norm"] == 0.0
        assert out["weight_correlation"] == pytest.approx(out["weight_correlation_init"], abs=1e-12)


def test_independent_initialisation_does_not(cfg):
    c = config.resolve("smoke", ["hidden_size=200", "init=independent"], seed=4)
    out = confound.init_confound(c, model.init_weights(c.model, 4))
    assert abs(out["weight_correlation_init"]) < 0.3  # ~ N(0, 1/200)


def test_drift_of_known_moves(cfg):
    init = model.init_weights(cfg.model, cfg.seed)
    I0, w0 = init["I"].double(), init["w"].double()
    g = np.random.default_rng(0)
    # I moved by a vector orthogonal to I0 of the same norm: cosine 1/sqrt(2), relative move 1
    d = torch.tensor(g.normal(size=I0.shape))
    d = d - (d * I0).sum() / (I0 * I0).sum() * I0
    d = d * I0.norm() / d.norm()
    sd = {**init, "I": (I0 + d).float(), "w": (-2.0 * w0).float()}
    out = confound.init_confound(cfg, sd)
    assert out["input_drift_cosine"] == pytest.approx(1 / np.sqrt(2), abs=1e-6)
    assert out["input_drift_norm"] == pytest.approx(1.0, abs=1e-6)
    assert out["output_drift_cosine"] == pytest.approx(-1.0, abs=1e-6)  # reversed
    assert out["output_drift_norm"] == pytest.approx(3.0, abs=1e-6)
    assert out["weight_correlation"] == pytest.approx(-1 / np.sqrt(2), abs=1e-6)
    assert init["I"].dtype == torch.float32  # the caller's tensors untouched
    assert torch.equal(sd["w"], (-2.0 * w0).float())


def test_the_cosine_it_uses():
    from sysa_core.analysis import weight_correlation

    assert weight_correlation(torch.tensor([1.0, 0.0]), torch.tensor([3.0, 3.0])) == pytest.approx(2 ** -0.5)
