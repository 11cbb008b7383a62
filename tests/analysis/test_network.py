"""sysa_core.analysis.network: what G alone determines, analysed once per G: the spontaneous PCs
(against analysis.pca) and the points of the odd flow (the origin, and points in +- pairs). Its
cache: tests/pipeline/test_store.py."""
from __future__ import annotations

import os

import numpy as np
import pytest

from conftest import assert_same_arrays, record_calls, recorded_calls

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


def test_the_exponent_computed_beside_the_census_is_the_bits_of_one_thread(small_cfg, monkeypatch, tmp_path):
    """analyse_network computes the Lyapunov exponent and the regime in a forked child process
    beside the census (beside=True); in one thread every array and number is the same bits (all
    that the run folder keeps of it: store.save_network's arrays and metrics)."""
    from sysa_core.pipeline import store

    G = model.init_weights(small_cfg.model, 1)["G"]
    log = tmp_path / "calls"
    record_calls(monkeypatch, network, "_spontaneous_dynamics", log)
    net = network.analyse_network(small_cfg, G, beside=True)
    alone = network.analyse_network(small_cfg, G, beside=False)
    in_child, here = (pid for _, pid, _ in recorded_calls(log))
    assert in_child != os.getpid() and here == os.getpid()  # beside, then alone
    for name, n in (("beside", net), ("alone", alone)):
        store.save_network(n, tmp_path / name)
    saved = {name: dict(np.load(next((tmp_path / name).glob("*.npz")))) for name in ("beside", "alone")}
    assert len(saved["beside"]) > 10
    assert_same_arrays(saved["beside"], saved["alone"])
    assert (next((tmp_path / "beside").glob("*.json")).read_text()
            == next((tmp_path / "alone").glob("*.json")).read_text())


def test_the_points_of_the_odd_flow(net):
    p = net.points
    assert p.fixed[0] and np.linalg.norm(p.h[0]) == 0.0  # the origin, always a fixed point
    assert p.fixed.sum() + (~p.fixed).sum() == len(p)
    for i in range(1, len(p)):  # F(-h) = -F(h): every other point has its mirror image
        assert np.min(np.linalg.norm(p.h + p.h[i], axis=1)) < 1e-6 * max(1.0, np.linalg.norm(p.h[i]))
    assert np.isfinite(net.lyapunov.per_s)


def test_the_spontaneous_exponent_of_seed_1_does_not_depend_on_the_starting_vector(reference_dir, reference_full):
    """Ten other starting tangent vectors, aligned over the same transient, each give a value
    inside the interval `sysa evaluate` states for the original's seed-1 G."""
    from sysa_core import files
    from sysa_core.analysis import dynamics

    m = reference_full
    path = reference_dir / "sys_A1_state.pth"
    cfg = files.for_checkpoint(path)
    dyn = dynamics.RateDynamics.from_model(cfg, files.load_checkpoint(path)["state_dict"])
    a = cfg.analysis
    other = dynamics.lyapunov_autonomous(dyn, np.full(dyn.n, a.spont_h0), cfg.alpha, cfg.model.dt_ms,
                                         cfg.steps(a.lyap_transient_ms), cfg.steps(a.lyap_window_ms),
                                         n_vectors=10, seed=1)
    lam, half = m["network_lyapunov_spontaneous_per_s"], m["network_lyapunov_spontaneous_halfwidth_per_s"]
    assert np.all(np.abs(other.per_vector - lam) < half), (other.per_vector, lam, half)
    assert other.per_vector.max() - other.per_vector.min() < half
    assert m["network_regime"] == "chaos" and lam - half > 0


def test_the_quick_G_is_a_limit_cycle():
    """The quick profile's G (seed 1): its spontaneous activity returns to its state, a limit cycle,
    with an exponent whose interval holds zero."""
    from sysa_core import config

    cfg = config.resolve("quick", ["analysis.census_starts=8"], seed=1)  # the regime does not depend on the census
    net = network.analyse_network(cfg, model.init_weights(cfg.model, 1)["G"])
    assert net.regime.kind == "limit cycle"
    assert net.regime.period_ms == pytest.approx(3790, abs=40)
    assert abs(net.lyapunov.per_s) <= net.lyapunov.halfwidth_per_s
