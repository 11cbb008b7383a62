"""How a weight vector (I or w) lies in the space of an activity covariance's principal
components, measured so that the answer does not depend on rounding (README, Definitions 6), each
next to a null distribution of random vectors of the same norm.

* top-k fraction: the share of |v|^2 in the k leading PCs, k the smallest number of PCs that
  explain a given share (90 / 95 / 99 %) of the variance;
* variance-weighted alignment: v'Cv / (lambda_max |v|^2), the variance along v relative to the
  largest possible (1 when v is the first PC, 0 when v is orthogonal to all activity);
* the participation ratios over all N eigenvectors (pca.participation_ratios), reported with
  their spread between float32 and float64 simulation of the same model.

All functions are pure and work in float64; a vector v is any array of N numbers.
"""
from __future__ import annotations

import functools

import numpy as np
import torch
from scipy.special import betainc, gammaln

from .pca import PCA, participation_ratios

#: explained-variance levels that set k for the top-k fractions
LEVELS = (0.90, 0.95, 0.99)
#: default number of random vectors in a null distribution
N_NULL = 1000


def _vec(v) -> np.ndarray:
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu().double().numpy()
    return np.array(v, dtype=np.float64).reshape(-1)


def level_key(level: float) -> str:
    """'90' for 0.90, '99' for 0.99, '99.9' for 0.999: the suffix of the metric names."""
    return f"{100 * level:.10g}"


def n_components(eigvals, level: float) -> int:
    """The smallest k such that the k largest eigenvalues explain at least `level` (0..1] of
    the total variance (negative rounding eigenvalues count as 0). eigvals: (N,), any order."""
    if not 0 < level <= 1:
        raise ValueError(f"level must be in (0, 1], got {level}")
    lam = np.sort(np.clip(np.asarray(eigvals, dtype=np.float64), 0, None))[::-1]
    total = lam.sum()
    if total <= 0:
        raise ValueError("the covariance has no variance")
    cum = np.cumsum(lam) / total
    # a tolerance of a few ulps so that e.g. eigenvalues (10, 5, 1) reach 0.99 at k = 3 exactly
    return int(min(np.searchsorted(cum, level - 1e-12, side="left") + 1, len(lam)))


def topk_fraction(v, eigvecs: np.ndarray, k: int) -> float:
    """|E_k' v|^2 / |v|^2: the share of |v|^2 in the span of the first k columns of eigvecs
    (orthonormal columns, leading first). 0..1, scale-invariant."""
    v = _vec(v)
    c = np.asarray(eigvecs, dtype=np.float64)[:, :k].T @ v
    return float(c @ c / (v @ v))


def variance_alignment(v, pca: PCA) -> float:
    """v'Cv / (lambda_max |v|^2) for the covariance C of `pca` (0..1, scale-invariant), from its
    eigen-decomposition: v'Cv = sum_i lambda_i (e_i . v)^2."""
    v = _vec(v)
    c = np.asarray(pca.eigvecs, dtype=np.float64).T @ v
    lam = np.asarray(pca.eigvals, dtype=np.float64)
    return float(c * c @ lam / (max(lam[0], 0.0) * (v @ v)))


def null_vectors(n: int, norm: float, n_draws: int = N_NULL, seed: int | np.random.Generator = 0) -> np.ndarray:
    """n_draws random vectors (n_draws, n) of Euclidean norm `norm`, isotropic (normalised
    Gaussian draws from a seeded numpy Generator)."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    z = rng.standard_normal((n_draws, n))
    return z * (norm / np.linalg.norm(z, axis=1, keepdims=True))


def participation_null(n: int, n_draws: int = N_NULL, seed: int = 0) -> dict:
    """The participation ratios l1 and l2 (pca.ratios_of_coefficients) of n_draws random directions
    in n dimensions: {"l1": (n_draws,), "l2": (n_draws,)}. On any orthonormal basis the coefficients
    of a random direction are a random direction, so this is the chance level of a vector's ratios
    over all n eigenvectors of any covariance (about 2n / pi and n / 3)."""
    c = null_vectors(n, 1.0, n_draws, seed)
    c2 = c * c
    return {"l1": np.abs(c).sum(axis=1) ** 2 / c2.sum(axis=1), "l2": c2.sum(axis=1) ** 2 / (c2 * c2).sum(axis=1)}


@functools.lru_cache(maxsize=8)
def participation_chance(n: int, n_draws: int = N_NULL, seed: int = 0) -> dict:
    """{"l1": (median, 2.5th, 97.5th percentile), "l2": (...)} of participation_null(n, n_draws, seed):
    a random direction's ratios and the range of their middle 95 % (computed once per n)."""
    return {k: tuple(float(x) for x in np.percentile(v, [50, 2.5, 97.5]))
            for k, v in participation_null(n, n_draws, seed).items()}


def percentile(value: float, null: np.ndarray) -> float:
    """The percentile (0..100) of value within the null sample: the share of null values below
    it, ties counted half."""
    null = np.asarray(null, dtype=np.float64)
    return float(100.0 * (np.mean(null < value) + 0.5 * np.mean(null == value)))


def null_p(pct: float, n_draws: int = N_NULL) -> float:
    """The two-sided Monte Carlo p of a value at percentile `pct` (percentile) among n_draws null
    values: 2 (min(below, above) + 1) / (n_draws + 1), at most 1 (its least value is 2 / (n_draws + 1))."""
    below = round(pct / 100.0 * n_draws)
    return min(1.0, 2.0 * (min(below, n_draws - below) + 1) / (n_draws + 1))


def cosine_chance(n: int) -> float:
    """The mean |cos| between a fixed vector and a uniformly random direction in n dimensions:
    Gamma(n/2) / (sqrt(pi) Gamma((n+1)/2)), about sqrt(2 / (pi n))."""
    return float(np.exp(gammaln(n / 2) - gammaln((n + 1) / 2)) / np.sqrt(np.pi))


def cosine_null_p(c: float, n: int) -> float:
    """The two-sided p of a cosine c between a fixed vector and one of n dimensions, against a
    uniformly random direction: P(|cos| >= |c|). cos^2 of a random direction is Beta(1/2, (n-1)/2),
    so p = I_{1-c^2}((n-1)/2, 1/2), exact at any n."""
    return float(betainc((n - 1) / 2, 0.5, max(0.0, 1.0 - c * c)))


def _coefficients(vs: np.ndarray, eigvecs: np.ndarray) -> np.ndarray:
    """c = E' v for rows vs (M, N): (M, N) coefficients on the eigenvectors (one product)."""
    return (torch.from_numpy(np.ascontiguousarray(vs)) @ torch.from_numpy(np.ascontiguousarray(eigvecs))).numpy()


def alignment(v, pca: PCA, levels=LEVELS, n_null: int = N_NULL, seed: int | np.random.Generator = 0) -> dict:
    """The top-k fractions and the variance-weighted alignment of v on `pca`, each with the
    mean of its null distribution (n_null random vectors of |v|'s norm, seeded) and the
    percentile of v within it. A flat dict:

    topk{L}_k (int), topk{L}_fraction, topk{L}_null_mean, topk{L}_null_pct for each level L
    (L = 90, 95, 99 for 0.90, 0.95, 0.99); var_alignment, var_alignment_null_mean,
    var_alignment_null_pct. Under the null the top-k fraction is Beta(k/2, (N-k)/2), mean k/N.
    """
    v = _vec(v)
    n = len(v)
    E = np.asarray(pca.eigvecs, dtype=np.float64)
    lam = np.asarray(pca.eigvals, dtype=np.float64)
    vs = np.vstack([v[None, :], null_vectors(n, float(np.linalg.norm(v)), n_null, seed)])
    c2 = _coefficients(vs, E) ** 2  # (1 + M, N)
    norm2 = (vs * vs).sum(axis=1)
    cum = np.cumsum(c2, axis=1) / norm2[:, None]  # share of |v|^2 in the first k PCs, all k
    out: dict = {}
    for level in levels:
        k = n_components(lam, level)
        key = f"topk{level_key(level)}"
        frac = cum[:, k - 1]
        out[f"{key}_k"] = k
        out[f"{key}_fraction"] = float(frac[0])
        out[f"{key}_null_mean"] = float(frac[1:].mean())
        out[f"{key}_null_pct"] = percentile(frac[0], frac[1:])
    va = (c2 @ lam) / (max(lam[0], 0.0) * norm2)  # v'Cv = sum lambda_i c_i^2 in C's eigenbasis
    out["var_alignment"] = float(va[0])
    out["var_alignment_null_mean"] = float(va[1:].mean())
    out["var_alignment_null_pct"] = percentile(va[0], va[1:])
    return out


# -- float32 vs float64 ------------------------------------------------------------------------

def relative_spread(a: float, b: float) -> float:
    """|a - b| / |b|: the relative difference of a value a from a reference b (b: float64)."""
    return float(abs(a - b) / abs(b)) if b != 0 else float(abs(a - b))


def dtype_spread(pcas: dict, I, w, levels=LEVELS) -> dict:
    """The participation ratios (l1, l2) of I on the spontaneous PCs and of w on the memory-period
    PCs, the top-k fractions and the variance alignment, from the PCAs of the model simulated in
    float32 and in float64, with the relative spread |x32 - x64| / |x64| of each.

    pcas: {"float32": (spontaneous PCA, memory PCA), "float64": (...)}. Returns {"input": {...},
    "output": {...}}, each {"l1": {"f32", "f64", "spread"}, "l2": {...}, "topk90_fraction": {...},
    ..., "var_alignment": {...}}.
    """
    vecs = {"input": (_vec(I), 0), "output": (_vec(w), 1)}
    out: dict = {}
    for name, (v, which) in vecs.items():
        vals = {}
        for dt in ("float32", "float64"):
            p = pcas[dt][which]
            pr = participation_ratios(v, p.eigvecs)
            d = {"l1": pr["l1"], "l2": pr["l2"], "var_alignment": variance_alignment(v, p)}
            for level in levels:
                d[f"topk{level_key(level)}_fraction"] = topk_fraction(v, p.eigvecs, n_components(p.eigvals, level))
            vals[dt] = d
        out[name] = {k: {"f32": vals["float32"][k], "f64": vals["float64"][k],
                         "spread": relative_spread(vals["float32"][k], vals["float64"][k])}
                     for k in vals["float32"]}
    return out
