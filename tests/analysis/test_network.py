"""sysa_core.analysis.network: what G alone determines, analysed once and cached per G: the
spontaneous PCs (against analysis.pca), the points of the odd flow (the origin, and points in
+- pairs), the cache round trip, and the key that decides when it is recomputed."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from sysa_core import config, model
from sysa_core.analysis import network, pca, population
from sysa_core.pipeline import store

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


def test_the_cache_round_trip_and_its_key(small_cfg, net, tmp_path):
    G = model.init_weights(small_cfg.model, 1)["G"]
    store.save_network(net, tmp_path)
    back = store.load_network(tmp_path, net.key)
    assert back.metrics() == net.metrics()
    np.testing.assert_array_equal(back.points.eigvals, net.points.eigvals)
    np.testing.assert_array_equal(back.spontaneous.eigvecs, net.spontaneous.eigvecs)
    assert store.load_or_analyse_network(small_cfg, G, tmp_path).metrics() == net.metrics()  # read, not recomputed
    assert store.load_network(tmp_path, "0" * 16) is None
    other = config.resolve("smoke", ["hidden_size=40", "spont_h0=0.2"])
    assert network.network_key(other, G) != net.key
    assert network.network_key(config.resolve("smoke", ["hidden_size=40", "lr=0.5"]), G) == net.key  # training
    assert network.network_key(small_cfg, G + 1e-3 * torch.ones_like(G)) != net.key


def test_one_G_analysed_under_two_code_versions_is_one_network(net, tmp_path):
    """Seeds analysed by two versions of the code cache the same G under two keys: the population
    report shows it once."""
    older = replace(net, key="0123456789abcdef")
    store.save_network(net, tmp_path)
    store.save_network(older, tmp_path)
    table = pd.DataFrame({"seed": [1, 2], "network_key": [older.key, net.key], "network_G": [net.G_digest] * 2})
    assert population.shares_G(table)
    (only,) = store.networks(tmp_path, table)
    assert only.G_digest == net.G_digest
