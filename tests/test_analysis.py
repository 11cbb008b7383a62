"""sysa_core.analysis (SPEC section 5): purity, agreement with independent computations, and
participation ratios on synthetic covariances with known answers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import moved_weights
from sysa_core import analysis, config, model, task

pytestmark = pytest.mark.usefixtures("single_threaded_torch")

KEYS = {"precision", "precision_by_duration", "weight_correlation", "pr_input_l1", "pr_input_l2",
        "pr_output_l1", "pr_output_l2", "dim_spontaneous", "dim_memory"}


@pytest.fixture(scope="module")
def cfg():
    return config.resolve("smoke", ["hidden_size=40"])


@pytest.fixture(scope="module")
def sd(cfg):
    """A smoke-sized model with I and w moved away from their coupled init."""
    return moved_weights(cfg.model, 3, noise_seed=11, dI=0.5, dw=0.2)


def _snapshot(d):
    return {k: (v, v.clone(), v.dtype, v.requires_grad) for k, v in d.items()}


def _unchanged(d, snap):
    assert set(d) == set(snap)
    for k, (obj, copy, dtype, rg) in snap.items():
        assert d[k] is obj and d[k].dtype == dtype and d[k].requires_grad == rg
        assert torch.equal(d[k], copy), f"{k} was modified"


def test_analyses_leave_the_model_unchanged(cfg, sd):
    net = model.Net1(cfg, sd)
    for weights in (sd, dict(net.named_parameters()), {k: v.double() for k, v in sd.items()}):
        snap = _snapshot(weights)
        m = analysis.metrics(cfg, weights)
        analysis.signals(cfg, weights, onset_ms=100, T_ms=300, duration_ms=50)
        analysis.spontaneous_pca(cfg, weights)
        analysis.memory_pca(cfg, weights)
        analysis.weight_correlation(weights["I"], weights["w"])
        analysis.run(cfg, weights, task.fixed_trials(cfg).x)
        _unchanged(weights, snap)
        assert set(m) >= KEYS
    # the spontaneous run starts from h = spont_h0 without touching the model's h0 (the original's bug)
    assert (sd["h0"] == 0).all()
    m1, m2 = analysis.metrics(cfg, sd), analysis.metrics(cfg, sd)
    assert m1 == m2


def test_metrics_are_in_range(cfg, sd):
    m = analysis.metrics(cfg, sd)
    n = cfg.model.hidden_size
    assert set(m["precision_by_duration"]) == {str(d) for d in cfg.analysis.durations_ms}
    for k in ("pr_input_l1", "pr_input_l2", "pr_output_l1", "pr_output_l2", "dim_spontaneous", "dim_memory"):
        assert 1.0 <= m[k] <= n + 1e-9, k
    assert -1 <= m["weight_correlation"] <= 1


def _np_precision(y, target):
    mask = target > 0
    return ((mask * (y - target) ** 2).sum(1) / mask.sum(1))


def test_precision_agrees_with_an_independent_computation(cfg, sd):
    ev = analysis.evaluate(cfg, sd)
    nt = cfg.steps(cfg.task.Nt_ms)
    assert ev.y.shape == (3, nt + cfg.steps(cfg.analysis.eval_extra_ms))
    tr = task.fixed_trials(cfg, T_ms=cfg.task.Nt_ms)
    with torch.no_grad():
        y = model.Net1(cfg, sd)(tr.x)[:, :, 0].double().numpy()
    per = _np_precision(y, tr.target[:, :, 0].double().numpy())
    got = np.array([ev.precision_by_duration[d] for d in cfg.analysis.durations_ms])
    np.testing.assert_allclose(got, per, rtol=1e-4)
    assert ev.precision == pytest.approx(per.mean(), rel=1e-4)
    assert ev.precision == pytest.approx(got.mean(), rel=1e-6)  # float32 mean
    # the first Nt ms of the long evaluation run are the trials of length Nt
    np.testing.assert_allclose(ev.y[:, :nt], y, rtol=1e-4, atol=1e-6)


def test_precision_in_float64_follows_float32(cfg, sd):
    ev32 = analysis.evaluate(cfg, sd)
    ev64 = analysis.evaluate(config.resolve("smoke", ["hidden_size=40", "dtype=float64"]), sd)
    assert ev64.precision == pytest.approx(ev32.precision, rel=1e-3)


def test_weight_correlation_is_the_uncentred_cosine():
    g = np.random.default_rng(0)
    I, w = g.normal(size=(50, 1)) + 3.0, g.normal(size=(50, 1))
    expected = float((I * w).sum() / np.linalg.norm(I) / np.linalg.norm(w))
    assert analysis.weight_correlation(torch.tensor(I), torch.tensor(w)) == pytest.approx(expected, rel=1e-12)
    assert analysis.weight_correlation(torch.tensor(I), torch.tensor(2 * I)) == pytest.approx(1.0, abs=1e-12)


def test_covariance_and_pca():
    x = np.random.default_rng(1).normal(size=(200, 12)) @ np.random.default_rng(2).normal(size=(12, 12))
    for ddof in (0, 1):
        np.testing.assert_allclose(analysis.covariance(x, ddof), np.cov(x, rowvar=False, ddof=ddof), rtol=1e-12)
    p = analysis.pca_of(analysis.covariance(x, 1))
    assert np.all(np.diff(p.eigvals) <= 0)
    np.testing.assert_allclose(p.eigvecs @ np.diag(p.eigvals) @ p.eigvecs.T, p.cov, atol=1e-10)
    assert p.explained.sum() == pytest.approx(1.0)


def test_spontaneous_activity_is_the_autonomous_network_from_spont_h0(cfg, sd):
    a = cfg.analysis
    r = analysis.spontaneous_rates(cfg, sd)
    T, start = cfg.steps(a.spont_T_ms), cfg.steps(a.spont_start_ms)
    with torch.no_grad():
        _, r_ref = model.Net1(cfg, sd)(torch.zeros(1, T, 1), h0=torch.full((40,), a.spont_h0), return_r=True)
    r_ref = r_ref[0, start:].numpy()
    assert r.shape == r_ref.shape
    np.testing.assert_allclose(r, r_ref, atol=1e-4)
    p = analysis.spontaneous_pca(cfg, sd)
    np.testing.assert_allclose(p.cov, np.cov(r_ref, rowvar=False, ddof=1), atol=1e-6)


def test_memory_pca_averages_per_trial_covariances(cfg, sd):
    a = cfg.analysis
    start = cfg.steps(a.mem_start_ms)
    covs = []
    for d in a.durations_ms:
        r, _ = analysis.signals(cfg, sd, onset_ms=a.mem_onset_ms, T_ms=a.mem_T_ms, duration_ms=d)
        covs.append(np.cov(r[start:], rowvar=False, ddof=0))
    np.testing.assert_allclose(analysis.memory_pca(cfg, sd).cov, np.mean(covs, axis=0), atol=1e-7)


# -- participation ratios and dimensionality on synthetic covariances ----------------------

N = 30


@pytest.fixture(scope="module")
def eig():
    """Eigenvectors (columns) of a random symmetric covariance with distinct eigenvalues."""
    g = np.random.default_rng(5)
    q, _ = np.linalg.qr(g.normal(size=(N, N)))
    lam = np.linspace(5.0, 0.1, N)
    return analysis.pca_of(q @ np.diag(lam) @ q.T)


@pytest.mark.parametrize("i", [0, 7, N - 1])
def test_a_vector_equal_to_one_eigenvector_gives_1(eig, i):
    pr = analysis.participation_ratios(3.0 * eig.eigvecs[:, i], eig.eigvecs)
    assert pr["l1"] == pytest.approx(1.0, abs=1e-9) and pr["l2"] == pytest.approx(1.0, abs=1e-9)


def test_equal_loadings_on_all_N_give_N(eig):
    signs = np.random.default_rng(6).choice([-1.0, 1.0], size=N)
    pr = analysis.participation_ratios(eig.eigvecs @ signs, eig.eigvecs)
    assert pr["l1"] == pytest.approx(N, rel=1e-9) and pr["l2"] == pytest.approx(N, rel=1e-9)


def test_eigenvector_signs_change_nothing(eig):
    g = np.random.default_rng(7)
    v = g.normal(size=N)
    base = analysis.participation_ratios(v, eig.eigvecs)
    signed = set()
    for _ in range(5):
        flipped = eig.eigvecs * g.choice([-1.0, 1.0], size=N)  # each column's sign is arbitrary
        pr = analysis.participation_ratios(v, flipped)
        assert pr["l1"] == pytest.approx(base["l1"], rel=1e-12)
        assert pr["l2"] == pytest.approx(base["l2"], rel=1e-12)
        signed.add(round(pr["signed"], 6))
    assert len(signed) > 1  # the original's formula does depend on the signs (SPEC section 5)


def test_participation_ratio_bounds_and_order(eig):
    v = np.random.default_rng(8).normal(size=N)
    pr = analysis.participation_ratios(v, eig.eigvecs)
    assert 1 <= pr["l2"] <= pr["l1"] <= N  # (sum|c|)^2/sum c^2 >= (sum c^2)^2/sum c^4 for any c


def test_dimensionality_counts_equal_eigenvalues():
    assert analysis.dimensionality([2.0, 2.0, 2.0, 0.0, 0.0]) == pytest.approx(3.0)
    assert analysis.dimensionality(np.ones(17)) == pytest.approx(17.0)
    assert analysis.dimensionality([1.0, 0.0, -1e-12]) == pytest.approx(1.0)  # rounding negatives clipped
    x = np.random.default_rng(9).normal(size=(5000, 4)) @ np.eye(4, 20)  # rank-4 isotropic data
    assert analysis.pca_of(analysis.covariance(x, 1)).dimensionality == pytest.approx(4.0, rel=0.05)
