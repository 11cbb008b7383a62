"""sysa_core.analysis.network: what G alone determines, analysed once per G: the spontaneous PCs
(against analysis.pca) and the points of the odd flow (the origin, and points in +- pairs). Its
cache: tests/pipeline/test_store.py."""
from __future__ import annotations


import numpy as np
import pytest

from sysa_core import model
from sysa_core.analysis import network, pca

pytestmark = pytest.mark.usefixtures("single_threaded_torch")


@pytest.fixture(scope="module")
def net(small_cfg):
    return network.analyse_network(small_cfg, model.init_weights(small_cfg.model, 1)["G"])


def test_the_spontaneous_pcs_are_those_of_any_model_with_this_G(small_cfg, net):
    moved_sd = model.init_weights(small_cfg.model, 7)  # another seed's I and w: the same G (seed 1), the same PCs
    ref = pca.spontaneous_pca(small_cfg, moved_sd)
    np.testing.assert_array_equal(net.spontaneous.eigvals, ref.eigvals)
    assert net.spontaneous_f64.dimensionality == pytest.approx(ref.dimensionality, rel=1e-3)
    m = net.metrics()
    assert m["network_dim_spontaneous"] == ref.dimensionality and m["network_key"] == net.key
    assert m["network_G"] == network.G_digest(moved_sd["G"]) == net.G_digest


def test_the_points_of_the_odd_flow(net):
    p = net.points
    assert p.fixed[0] and np.linalg.norm(p.h[0]) == 0.0  # the origin, always a fixed point
    assert p.fixed.sum() + (~p.fixed).sum() == len(p)
    for i in range(1, len(p)):  # F(-h) = -F(h): every other point has its mirror image
        assert np.min(np.linalg.norm(p.h + p.h[i], axis=1)) < 1e-6 * max(1.0, np.linalg.norm(p.h[i]))
    assert np.isfinite(net.lyapunov_per_s)
