"""sysa_core.analysis.alignment on covariances with known answers: a rank-3 covariance (eigenvalues 10, 5, 1)
in N = 60 dimensions, vectors built from its PCs, the null distribution against its exact law
(the top-k fraction of an isotropic vector is Beta(k/2, (N-k)/2)), and the float32/float64
spread on a small model."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from sysa_core import config, model
from sysa_core.analysis import alignment
from sysa_core.analysis import pca as pcam

pytestmark = pytest.mark.usefixtures("single_threaded_torch")

N = 60
LAM = np.array([10.0, 5.0, 1.0])  # explained: 0.625, 0.9375, 1.0


@pytest.fixture(scope="module")
def basis():
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(N, N)))
    return q


@pytest.fixture(scope="module")
def pca(basis):
    """PCA of the covariance U diag(10, 5, 1) U' (rank 3) in N dimensions."""
    U = basis[:, :3]
    return pcam.pca_of(U @ np.diag(LAM) @ U.T)


def test_k_is_set_by_explained_variance(pca):
    assert alignment.n_components(pca.eigvals, 0.90) == 2  # 0.9375 >= 0.90 > 0.625
    assert alignment.n_components(pca.eigvals, 0.95) == 3  # 0.9375 < 0.95
    assert alignment.n_components(pca.eigvals, 0.99) == 3
    assert alignment.n_components(pca.eigvals, 0.5) == 1
    assert alignment.n_components([1.0, 1.0, 1.0, 1.0], 0.75) == 3  # exactly reached counts
    assert alignment.n_components([1.0, 3.0, -1e-15], 0.7) == 1  # any order, rounding negatives are 0
    with pytest.raises(ValueError):
        alignment.n_components(pca.eigvals, 0.0)
    assert [alignment.level_key(x) for x in (0.9, 0.95, 0.99, 0.999)] == ["90", "95", "99", "99.9"]


def test_vectors_built_from_the_pcs_have_known_fractions_and_alignment(pca, basis):
    u1, u2, u3, u9 = basis[:, 0], basis[:, 1], basis[:, 2], basis[:, 9]
    cases = {  # v: (top-2 fraction, top-3 fraction, v'Cv / (lambda_max |v|^2))
        "u1": (3.0 * u1, 1.0, 1.0, 1.0),
        "u3": (u3, 0.0, 1.0, 0.1),
        "u1+u2": (u1 + u2, 1.0, 1.0, 0.75),
        "u1+u9": (u1 - u9, 0.5, 0.5, 0.5),
        "outside": (u9, 0.0, 0.0, 0.0),
    }
    for name, (v, f2, f3, va) in cases.items():
        a = alignment.alignment(v, pca, n_null=500, seed=1)
        assert a["topk90_k"] == 2 and a["topk95_k"] == 3 and a["topk99_k"] == 3, name
        assert a["topk90_fraction"] == pytest.approx(f2, abs=1e-12), name
        assert a["topk95_fraction"] == pytest.approx(f3, abs=1e-12), name
        assert a["var_alignment"] == pytest.approx(va, abs=1e-12), name
        assert alignment.variance_alignment(v, pca) == pytest.approx(va, abs=1e-12), name
        assert alignment.topk_fraction(v, pca.eigvecs, 2) == pytest.approx(f2, abs=1e-12), name
    # a vector inside the top-k PCs beats every random vector; one outside them beats none
    top = alignment.alignment(u1 + u2, pca, n_null=500)
    assert top["topk90_null_pct"] == 100.0 and top["var_alignment_null_pct"] == 100.0
    out = alignment.alignment(u9, pca, n_null=500)
    assert out["topk90_null_pct"] == 0.0 and out["var_alignment_null_pct"] == 0.0


def test_the_null_distribution_follows_its_exact_law(pca, basis):
    """|E_k' z|^2 / |z|^2 of an isotropic z is Beta(k/2, (N-k)/2): mean k/N, and the percentile
    of any value is 100 x its CDF. A vector whose top-2 fraction is f has percentile
    100 * Beta.cdf(f) up to the Monte Carlo error of 2000 draws (about 1 %)."""
    k = 2
    for f in (0.01, 0.05, 0.12):
        v = np.sqrt(f) * basis[:, 0] + np.sqrt(1 - f) * basis[:, 20]
        a = alignment.alignment(v, pca, n_null=2000, seed=3)
        assert a["topk90_fraction"] == pytest.approx(f, rel=1e-10)
        assert a["topk90_null_mean"] == pytest.approx(k / N, rel=0.06)
        assert a["topk90_null_pct"] == pytest.approx(100 * stats.beta.cdf(f, k / 2, (N - k) / 2), abs=3.0)
    # variance alignment of an isotropic vector: E = sum(lambda) / (N lambda_max) = 16 / 600
    assert a["var_alignment_null_mean"] == pytest.approx(LAM.sum() / (N * LAM[0]), rel=0.06)


def test_null_vectors_have_the_given_norm_and_are_reproducible():
    z = alignment.null_vectors(40, 2.5, 300, seed=7)
    assert z.shape == (300, 40)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 2.5)
    np.testing.assert_array_equal(z, alignment.null_vectors(40, 2.5, 300, seed=7))
    assert not np.array_equal(z, alignment.null_vectors(40, 2.5, 300, seed=8))
    # isotropic: the mean outer product is |v|^2 / n times the identity
    np.testing.assert_allclose(z.T @ z / 300, np.eye(40) * 2.5 ** 2 / 40, atol=0.06)


def test_percentile_counts_ties_half():
    null = np.array([1.0, 2.0, 2.0, 3.0])
    assert alignment.percentile(2.0, null) == 50.0
    assert alignment.percentile(0.0, null) == 0.0 and alignment.percentile(9.0, null) == 100.0
    assert alignment.percentile(2.5, null) == 75.0


def test_measures_ignore_scale_sign_and_eigenvector_signs(pca):
    v = np.random.default_rng(4).normal(size=N)
    base = alignment.alignment(v, pca, seed=5)
    assert alignment.alignment(-7.0 * v, pca, seed=5) == pytest.approx(base, rel=1e-9)
    flipped = pcam.PCA(pca.eigvals, pca.eigvecs * np.where(np.arange(N) % 2, -1.0, 1.0))
    assert alignment.alignment(v, flipped, seed=5) == pytest.approx(base, rel=1e-9)
    assert alignment.alignment(torch.tensor(v).reshape(N, 1), pca, seed=5) == pytest.approx(base, rel=1e-12)


def test_alignment_leaves_its_inputs_alone(pca):
    v = np.random.default_rng(6).normal(size=(N, 1))
    snap = (v.copy(), pca.eigvals.copy(), pca.eigvecs.copy())
    alignment.alignment(v, pca)
    for a, b in zip((v, pca.eigvals, pca.eigvecs), snap):
        np.testing.assert_array_equal(a, b)


def test_relative_spread():
    assert alignment.relative_spread(105.0, 100.0) == pytest.approx(0.05)
    assert alignment.relative_spread(95.0, 100.0) == pytest.approx(0.05)
    assert alignment.relative_spread(0.0, 0.0) == 0.0


def test_dtype_spread_compares_float32_and_float64_simulations():
    cfg = config.resolve("smoke", ["hidden_size=40"])
    sd = model.init_weights(cfg.model, 2)
    sd["w"] = sd["w"] + 0.1 * torch.randn(sd["w"].shape, generator=model.generator(3))
    c64 = cfg.with_dtype("float64")
    pcas = {dt: (pcam.spontaneous_pca(c, sd), pcam.memory_pca(c, sd)) for dt, c in (("float32", cfg), ("float64", c64))}
    s = alignment.dtype_spread(pcas, sd["I"], sd["w"])
    pr64 = pcam.participation_ratios(sd["I"].numpy(), pcas["float64"][0].eigvecs)
    pr32 = pcam.participation_ratios(sd["I"].numpy(), pcas["float32"][0].eigvecs)
    assert s["input"]["l1"]["f64"] == pytest.approx(pr64["l1"], rel=1e-12)
    assert s["input"]["l1"]["f32"] == pytest.approx(pr32["l1"], rel=1e-12)
    assert s["input"]["l1"]["spread"] == pytest.approx(abs(pr32["l1"] - pr64["l1"]) / pr64["l1"], rel=1e-9)
    for name in ("input", "output"):
        assert set(s[name]) == {"l1", "l2", "var_alignment", "topk90_fraction", "topk95_fraction", "topk99_fraction"}
        for k, d in s[name].items():
            assert d["spread"] >= 0
        # the measures restricted to the PCs that carry variance hardly move with the precision
        for k in ("var_alignment", "topk90_fraction", "topk95_fraction"):
            assert s[name][k]["spread"] < 1e-3, (name, k, s[name][k])


def test_null_p_is_the_two_sided_monte_carlo_p_of_a_percentile():
    assert alignment.null_p(0.0, 1000) == pytest.approx(2 / 1001)
    assert alignment.null_p(100.0, 1000) == pytest.approx(2 / 1001)
    assert alignment.null_p(7.1, 1000) == pytest.approx(2 * 72 / 1001)  # 71 of the nulls below it
    assert alignment.null_p(92.9, 1000) == pytest.approx(2 * 72 / 1001)  # 71 above it
    assert alignment.null_p(50.0, 1000) == 1.0
    rng = np.random.default_rng(0)  # a null value's p is uniform on the grid: P(p <= 0.05) is about 0.05
    nulls = rng.normal(size=(2000, 1001))
    ps = [alignment.null_p(alignment.percentile(row[0], row[1:]), 1000) for row in nulls]
    assert np.mean(np.array(ps) <= 0.05) == pytest.approx(0.05, abs=0.015)


@pytest.mark.parametrize("n", [3, 40, 500])
def test_a_cosines_null_is_that_of_uniformly_random_directions(n):
    """cosine_chance is a random direction's mean |cos| with a fixed vector, cosine_null_p the share
    of random directions at least as far from orthogonal: both against 200 000 draws."""
    rng = np.random.default_rng(1)
    x0 = rng.normal(size=200_000)  # a Gaussian vector's first coordinate, and its squared norm: x0² plus
    cos = x0 / np.sqrt(x0 ** 2 + rng.chisquare(n - 1, size=x0.size))  # the other n - 1 squares' chi-square sum
    assert alignment.cosine_chance(n) == pytest.approx(np.abs(cos).mean(), rel=0.01)
    for c in (0.02, 0.1, 0.3, -0.3, 0.9):
        expected = np.mean(np.abs(cos) >= abs(c))
        assert alignment.cosine_null_p(c, n) == pytest.approx(expected, abs=4 * np.sqrt(expected * (1 - expected) / 2e5) + 1e-5)
    assert alignment.cosine_null_p(0.0, n) == 1.0 and alignment.cosine_null_p(1.0, n) == 0.0
    if n == 500:
        assert alignment.cosine_chance(n) == pytest.approx(np.sqrt(2 / (np.pi * n)), rel=1e-3)


def test_a_random_directions_participation_ratios_are_near_2n_over_pi_and_n_over_3():
    n = 500
    null = alignment.participation_null(n)
    assert np.median(null["l1"]) == pytest.approx(2 * n / np.pi, rel=0.01)
    assert np.median(null["l2"]) == pytest.approx(n / 3, rel=0.03)
    direct = [pcam.ratios_of_coefficients(v) for v in alignment.null_vectors(n, 1.0)[:5]]
    np.testing.assert_allclose(null["l1"][:5], [r["l1"] for r in direct], rtol=1e-12)
    np.testing.assert_allclose(null["l2"][:5], [r["l2"] for r in direct], rtol=1e-12)
    chance = alignment.participation_chance(n)
    for k in ("l1", "l2"):
        np.testing.assert_allclose(chance[k], np.percentile(null[k], [50, 2.5, 97.5]), rtol=1e-12)
