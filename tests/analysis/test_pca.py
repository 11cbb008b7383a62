"""sysa_core.analysis.pca (README, Definitions 5): covariances and PCs against numpy, the spontaneous and
memory-period activity against the reference loop, and participation ratios on synthetic
covariances with known answers."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from conftest import Net1

from sysa_core import model, task
from sysa_core.analysis import pca

pytestmark = pytest.mark.usefixtures("single_threaded_torch")


def test_covariance_and_pca():
    x = np.random.default_rng(1).normal(size=(200, 12)) @ np.random.default_rng(2).normal(size=(12, 12))
    for ddof in (0, 1):
        np.testing.assert_allclose(pca.covariance(x, ddof), np.cov(x, rowvar=False, ddof=ddof), rtol=1e-12)
    p = pca.pca_of(pca.covariance(x, 1))
    assert np.all(np.diff(p.eigvals) <= 0)
    np.testing.assert_allclose(p.eigvecs @ np.diag(p.eigvals) @ p.eigvecs.T, pca.covariance(x, 1), atol=1e-10)


def test_spontaneous_activity_is_the_autonomous_network_from_spont_h0(small_cfg, moved_sd):
    a = small_cfg.analysis
    r = pca.spontaneous_rates(small_cfg, moved_sd)
    T, start = small_cfg.steps(a.spont_T_ms), small_cfg.steps(a.spont_start_ms)
    with torch.no_grad():
        _, r_ref = Net1(small_cfg, moved_sd)(torch.zeros(1, T, 1), h0=torch.full((40,), a.spont_h0), return_r=True)
    r_ref = r_ref[0, start:].numpy()
    assert r.shape == r_ref.shape
    np.testing.assert_allclose(r, r_ref, atol=1e-4)
    p = pca.spontaneous_pca(small_cfg, moved_sd)
    cov = p.eigvecs @ np.diag(p.eigvals) @ p.eigvecs.T
    np.testing.assert_allclose(cov, np.cov(r_ref, rowvar=False, ddof=1), atol=1e-6)


def test_memory_pca_averages_per_trial_covariances(small_cfg, moved_sd):
    a = small_cfg.analysis
    start = small_cfg.steps(a.mem_start_ms)
    covs = []
    for d in a.durations_ms:
        _, r = model.run(small_cfg, moved_sd, task.fixed_trials(small_cfg, (d,), a.mem_onset_ms, a.mem_T_ms).x,
                         return_r=True)
        covs.append(np.cov(r[0, start:].numpy(), rowvar=False, ddof=0))
    p = pca.memory_pca(small_cfg, moved_sd)
    np.testing.assert_allclose(p.eigvecs @ np.diag(p.eigvals) @ p.eigvecs.T, np.mean(covs, axis=0), atol=1e-7)


def test_w_s_variance_on_the_memory_pcs_is_the_outputs_variance_within_the_window(small_cfg, moved_sd):
    """w'Cw of the memory covariance equals the output's variance within each trial's window, averaged
    over the trials; the variance between the trials' plateaus is the variance of their means."""
    a = small_cfg.analysis
    traj = pca.memory_trajectories(small_cfg, moved_sd)
    w = moved_sd["w"].double().numpy().reshape(-1)
    y = traj[:, small_cfg.steps(a.mem_start_ms):].astype(np.float64) @ w  # (D, T)
    p = pca.memory_pca(small_cfg, moved_sd, traj)
    C = p.eigvecs @ np.diag(p.eigvals) @ p.eigvecs.T
    within, between = pca.readout_variances(y)
    assert within == pytest.approx(w @ C @ w, rel=1e-9)
    assert within == pytest.approx(np.mean([np.var(yi) for yi in y]), rel=1e-12)
    assert between == pytest.approx(np.var([np.mean(yi) for yi in y]), rel=1e-12)
    assert between > 0


def test_the_coding_direction_is_the_slope_of_the_window_means_on_the_duration(small_cfg):
    """Rates whose window means move along a known direction v in proportion to the duration give
    u = v / |v|; what varies within the window or before it does not move u; rates that do not
    change with the duration give None."""
    a = small_cfg.analysis
    D, T, n = len(a.durations_ms), small_cfg.steps(a.mem_T_ms), 40
    start = small_cfg.steps(a.mem_start_ms)
    g = np.random.default_rng(3)
    v, base = g.normal(size=n), g.normal(size=n)
    d = np.asarray(a.durations_ms, dtype=np.float64)
    traj = np.broadcast_to(base, (D, T, n)).copy()
    traj += (0.01 * d)[:, None, None] * v  # the coding
    wiggle = g.normal(size=(T - start, n))
    traj[:, start:] += wiggle - wiggle.mean(axis=0)  # zero mean over the window: leaves the means alone
    traj[:, :start] += g.normal(size=(D, start, n))  # before the window: not counted
    np.testing.assert_allclose(pca.coding_direction(small_cfg, traj), v / np.linalg.norm(v), atol=1e-12)
    assert pca.coding_direction(small_cfg, np.broadcast_to(base, (D, T, n))) is None
    # fitted to the in-range trials only: a trial outside the trained range does not move it
    outside = [i for i in range(D) if i not in small_cfg.in_range_indices]
    assert outside and pca.coding_fit(small_cfg) == small_cfg.in_range_indices
    moved = traj.copy()
    moved[outside] += 5 * g.normal(size=n)
    np.testing.assert_allclose(pca.coding_direction(small_cfg, moved), v / np.linalg.norm(v), atol=1e-12)
    # with fewer than two in-range test pulses it is fitted to all of them
    one_inside = replace(small_cfg, analysis=replace(small_cfg.analysis, durations_ms=(30, 150, 200)))
    assert one_inside.in_range_indices == [0] and pca.coding_fit(one_inside) == [0, 1, 2]


# -- participation ratios and dimensionality on synthetic covariances ----------------------

N = 30


@pytest.fixture(scope="module")
def eig():
    """Eigenvectors (columns) of a random symmetric covariance with distinct eigenvalues."""
    g = np.random.default_rng(5)
    q, _ = np.linalg.qr(g.normal(size=(N, N)))
    lam = np.linspace(5.0, 0.1, N)
    return pca.pca_of(q @ np.diag(lam) @ q.T)


@pytest.mark.parametrize("i", [0, 7, N - 1])
def test_a_vector_equal_to_one_eigenvector_gives_1(eig, i):
    pr = pca.participation_ratios(3.0 * eig.eigvecs[:, i], eig.eigvecs)
    assert pr["l1"] == pytest.approx(1.0, abs=1e-9) and pr["l2"] == pytest.approx(1.0, abs=1e-9)


def test_equal_loadings_on_all_N_give_N(eig):
    signs = np.random.default_rng(6).choice([-1.0, 1.0], size=N)
    pr = pca.participation_ratios(eig.eigvecs @ signs, eig.eigvecs)
    assert pr["l1"] == pytest.approx(N, rel=1e-9) and pr["l2"] == pytest.approx(N, rel=1e-9)


def test_eigenvector_signs_change_nothing(eig):
    g = np.random.default_rng(7)
    v = g.normal(size=N)
    base = pca.participation_ratios(v, eig.eigvecs)
    signed = set()
    for _ in range(5):
        flipped = eig.eigvecs * g.choice([-1.0, 1.0], size=N)  # each column's sign is arbitrary
        pr = pca.participation_ratios(v, flipped)
        assert pr["l1"] == pytest.approx(base["l1"], rel=1e-12)
        assert pr["l2"] == pytest.approx(base["l2"], rel=1e-12)
        signed.add(round(pr["signed"], 6))
    assert len(signed) > 1  # the original's formula does depend on the signs (README, Definitions 5)


def test_participation_ratio_bounds_and_order(eig):
    v = np.random.default_rng(8).normal(size=N)
    pr = pca.participation_ratios(v, eig.eigvecs)
    assert 1 <= pr["l2"] <= pr["l1"] <= N  # (sum|c|)^2/sum c^2 >= (sum c^2)^2/sum c^4 for any c


def test_dimensionality_counts_equal_eigenvalues():
    assert pca.dimensionality([2.0, 2.0, 2.0, 0.0, 0.0]) == pytest.approx(3.0)
    assert pca.dimensionality(np.ones(17)) == pytest.approx(17.0)
    assert pca.dimensionality([1.0, 0.0, -1e-12]) == pytest.approx(1.0)  # rounding negatives clipped
    x = np.random.default_rng(9).normal(size=(5000, 4)) @ np.eye(4, 20)  # rank-4 isotropic data
    assert pca.pca_of(pca.covariance(x, 1)).dimensionality == pytest.approx(4.0, rel=0.05)
