"""Population statistics that are right at small n: each per-model measure against precision.

* Spearman's rho with its two-sided p from the permutation distribution: exact (every pairing
  enumerated) while n! <= N_RESAMPLES, Monte Carlo with N_RESAMPLES seeded permutations beyond
  (scipy.stats.permutation_test). At n = 4 the smallest possible p is 2/24 = 1/12.
* Holm's step-down adjustment across every test of a table, shown beside the raw p.
* A 95 % interval for rho only where its coverage holds: Fisher's z with the Bonett-Wright
  variance (1 + rho^2 / 2) / (n - 3), shown from MIN_N_INTERVAL seeds on (its coverage at n = 8
  and n = 20 is checked on synthetic data in the tests); below that no interval is shown.
* What the data could detect: the smallest |rho| with p < 0.05 at this n, the |rho| detectable
  with 80 % power, and the seeds needed to detect rho = 0.5 (Fisher z, variance 1.06 / (n - 3)).
* Pooling ensembles: a partial Spearman correlation with the ensemble as covariate (ranks
  centred within each ensemble), its p from permutations within the ensembles.
* Two ensembles compared on one measure: the Mann-Whitney U with its two-sided permutation p
  (exact while the splits number at most N_RESAMPLES; at 4 and 4 seeds the smallest p is
  2/70), and the probability that a seed of the first ensemble exceeds one of the second.

A sentence claims a relationship only when its Holm-adjusted p is below ALPHA.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd


def _st():
    """scipy.stats, imported by the first test or quantile computed here: its import costs about half
    a second of CPU, which the processes that only train or analyse models never need."""
    from scipy import stats

    return stats


#: permutations: exact while n! is at most this, Monte Carlo with this many beyond
N_RESAMPLES = 50_000
#: the family-wise error rate of the sentences
ALPHA = 0.05
#: intervals are shown from this many complete pairs on
MIN_N_INTERVAL = 8
#: the variance factor of Fisher's z for Spearman's rho (Fieller, Hartley and Pearson)
SPEARMAN_Z_VARIANCE = 1.06


def _pairs(x, y) -> tuple[np.ndarray, np.ndarray]:
    """x and y as float64 arrays with the pairs where either is missing (None / NaN) dropped."""
    x = pd.to_numeric(pd.Series(list(x)), errors="coerce").to_numpy(dtype=np.float64)
    y = pd.to_numeric(pd.Series(list(y)), errors="coerce").to_numpy(dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in length ({len(x)} vs {len(y)})")
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def _rho_of_ranks(rx: np.ndarray, ry: np.ndarray, axis: int = -1) -> np.ndarray:
    """Pearson's r of (already ranked) x and y along an axis: Spearman's rho."""
    rx = rx - rx.mean(axis=axis, keepdims=True)
    ry = ry - ry.mean(axis=axis, keepdims=True)
    num = (rx * ry).sum(axis=axis)
    den = np.sqrt((rx * rx).sum(axis=axis) * (ry * ry).sum(axis=axis))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def spearman(x, y, seed: int = 0) -> tuple[float, float]:
    """Spearman's rho over the complete pairs and its two-sided permutation p (exact while
    n! <= N_RESAMPLES, else Monte Carlo, seeded); (nan, nan) with fewer than 3 pairs or a constant."""
    x, y = _pairs(x, y)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan")
    rx, ry = _st().rankdata(x), _st().rankdata(y)
    # one sample permuted against the other fixed: n! pairings, all of them while n! <= N_RESAMPLES
    res = _st().permutation_test((ry,), lambda b, axis=-1: _rho_of_ranks(np.broadcast_to(rx, b.shape), b, axis),
                                 vectorized=True, permutation_type="pairings", n_resamples=N_RESAMPLES,
                                 alternative="two-sided", random_state=np.random.default_rng(seed))
    return float(res.statistic), float(res.pvalue)


def exact(n: int) -> bool:
    """Whether the p of n pairs comes from every pairing (else from a Monte Carlo sample)."""
    return math.factorial(n) <= N_RESAMPLES


def holm(p) -> np.ndarray:
    """Holm's step-down adjusted p-values (same order as p; NaN stays NaN)."""
    p = np.asarray(p, dtype=np.float64)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    running = 0.0
    for rank, i in enumerate(ok[np.argsort(p[ok], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def interval(rho: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Fisher's z interval with the Bonett-Wright variance, (nan, nan) below MIN_N_INTERVAL pairs."""
    if n < MIN_N_INTERVAL or not np.isfinite(rho):
        return float("nan"), float("nan")
    z = np.arctanh(np.clip(rho, -0.999999, 0.999999))
    se = math.sqrt((1.0 + rho * rho / 2.0) / (n - 3))
    q = _st().norm.ppf(0.5 + level / 2.0)
    return float(np.tanh(z - q * se)), float(np.tanh(z + q * se))


def critical_rho(n: int, alpha: float = ALPHA) -> float | None:
    """The smallest |rho| with a two-sided p below alpha at n pairs (no ties): from every pairing
    while exact(n), else from the t approximation; None when no rho can reach it (n <= 4)."""
    if n < 3:
        return None
    if exact(n):
        null = _null_exact(n)
        vals = np.unique(np.round(np.abs(null), 12))
        for r in vals:
            if np.mean(np.abs(null) >= r - 1e-12) < alpha:
                return float(r)
        return None
    t = _st().t.ppf(1 - alpha / 2, n - 2)
    return float(t / math.sqrt(n - 2 + t * t))


def _null_exact(n: int) -> np.ndarray:
    """Spearman's rho of every pairing of n distinct ranks."""
    base = np.arange(n, dtype=np.float64)
    perms = np.array(list(itertools.permutations(range(n))), dtype=np.float64)
    return _rho_of_ranks(np.broadcast_to(base, perms.shape), perms)


def detectable_rho(n: int, power: float = 0.8, alpha: float = ALPHA) -> float | None:
    """The |rho| a two-sided test at alpha detects with this power at n pairs (Fisher z); None
    where no rho can reach p < alpha (n <= 4)."""
    if critical_rho(n, alpha) is None or n <= 3:
        return None
    z = (_st().norm.ppf(1 - alpha / 2) + _st().norm.ppf(power)) * math.sqrt(SPEARMAN_Z_VARIANCE / (n - 3))
    return float(min(np.tanh(z), 1.0))


def seeds_needed(rho: float = 0.5, power: float = 0.8, alpha: float = ALPHA) -> int:
    """The pairs needed to detect |rho| with this power in a two-sided test at alpha (Fisher z)."""
    z = (_st().norm.ppf(1 - alpha / 2) + _st().norm.ppf(power)) / np.arctanh(rho)
    return int(math.ceil(3 + SPEARMAN_Z_VARIANCE * z * z))


def partial_spearman(x, y, groups, seed: int = 0) -> tuple[float, float, int]:
    """Spearman's rho of x and y with the group (ensemble) as covariate: the ranks over all pairs,
    centred within each group, correlated; its two-sided p from permutations of y within the
    groups (every one while their number is at most N_RESAMPLES, else a seeded sample).
    Returns (rho, p, n)."""
    xs = pd.to_numeric(pd.Series(list(x)), errors="coerce").to_numpy(dtype=np.float64)
    ys = pd.to_numeric(pd.Series(list(y)), errors="coerce").to_numpy(dtype=np.float64)
    ok = np.isfinite(xs) & np.isfinite(ys)
    xs, ys, g = xs[ok], ys[ok], np.asarray(list(groups), dtype=object)[ok]
    n = len(xs)
    if n < 4 or np.ptp(xs) == 0 or np.ptp(ys) == 0:
        return float("nan"), float("nan"), n
    rx, ry = _st().rankdata(xs), _st().rankdata(ys)
    idx = [np.flatnonzero(g == k) for k in dict.fromkeys(g.tolist())]
    for ix in idx:
        rx[ix] -= rx[ix].mean()
        ry[ix] -= ry[ix].mean()
    rho = float(_rho_of_ranks(rx, ry))
    count = math.prod(math.factorial(len(ix)) for ix in idx)
    if count <= N_RESAMPLES:
        orders = itertools.product(*(itertools.permutations(ix) for ix in idx))
        perms = np.array([np.concatenate(o) for o in orders])
        base = np.concatenate(idx)
    else:
        rng = np.random.default_rng(seed)
        base = np.concatenate(idx)
        perms = np.array([np.concatenate([rng.permutation(ix) for ix in idx]) for _ in range(N_RESAMPLES)])
    ry_perm = np.empty((len(perms), n))
    ry_perm[:, base] = ry[perms]
    null = _rho_of_ranks(np.broadcast_to(rx, ry_perm.shape), ry_perm)
    hits = int(np.sum(np.abs(null) >= abs(rho) - 1e-12))
    # every pairing: the share of them; a sample: (hits + 1) / (B + 1), the observed pairing counted, never 0
    p = hits / len(perms) if count <= N_RESAMPLES else (hits + 1) / (len(perms) + 1)
    return rho, float(min(1.0, p)), n


def against(df: pd.DataFrame, measures, targets=("precision",), seed: int = 0, pool_by: str | None = None) -> pd.DataFrame:
    """Each measure (a column of df, one row per model) against each target: n (complete pairs),
    rho, p (exact or Monte Carlo, see `exact`), p_holm (Holm across every row of the table),
    ci_low / ci_high (None below MIN_N_INTERVAL pairs) and significant (p_holm < ALPHA).
    pool_by: a column (e.g. "ensemble") to pool over as a covariate (partial_spearman)."""
    rows = []
    for t in targets:
        for i, m in enumerate(measures):
            if pool_by is None:
                x, y = _pairs(df[m], df[t])
                rho, p = spearman(x, y, seed=seed + i)
                n = len(x)
            else:
                rho, p, n = partial_spearman(df[m], df[t], df[pool_by], seed=seed + i)
            lo, hi = interval(rho, n) if pool_by is None else (float("nan"), float("nan"))
            rows.append({"measure": m, "target": t, "n": int(n), "rho": rho, "p": p, "exact": exact(n) if pool_by is None
                         else None, "ci_low": lo, "ci_high": hi})
    out = pd.DataFrame(rows, columns=["measure", "target", "n", "rho", "p", "exact", "ci_low", "ci_high"])
    out["p_holm"] = holm(out["p"].to_numpy())
    out["significant"] = out["p_holm"] < ALPHA
    return out


def correlation_matrix(df: pd.DataFrame, columns) -> pd.DataFrame:
    """Spearman's rho between every pair of the columns (pairwise complete rows)."""
    return df[list(columns)].apply(pd.to_numeric, errors="coerce").corr(method="spearman")


def power_summary(n: int, m: int) -> dict:
    """What a table of m tests at n seeds could detect: critical_rho, detectable_rho (80 % power) of
    one test at ALPHA, the same at ALPHA / m (critical_rho_holm, detectable_rho_holm: what the first
    claim under Holm's correction across m tests needs), and the seeds needed to detect rho = 0.5
    with 80 % power, alone and at ALPHA / m."""
    a = ALPHA / max(m, 1)
    return {"n": n, "tests": m, "critical_rho": critical_rho(n), "detectable_rho": detectable_rho(n),
            "critical_rho_holm": critical_rho(n, a), "detectable_rho_holm": detectable_rho(n, alpha=a),
            "seeds_for_0.5": seeds_needed(0.5), "seeds_for_0.5_holm": seeds_needed(0.5, alpha=a)}


def smallest_p(n: int) -> float:
    """The smallest two-sided p any Spearman rho can reach at n pairs (no ties): 2 / n! while exact,
    else 2 / (N_RESAMPLES + 1), the least a Monte Carlo permutation p can be."""
    return 2.0 / math.factorial(n) if exact(n) else 2.0 / (N_RESAMPLES + 1)


def p_text(p: float, n: int, name: str = "p", p_raw: float | None = None) -> str:
    """'p = 0.25', or 'p ≤ 4e-05' where the Spearman p of n pairs is the least its permutations can
    give (smallest_p), which bounds p rather than estimating it. For an adjusted p, p_raw is the
    p it adjusts (the bound carries over)."""
    at_floor = (p if p_raw is None else p_raw) <= smallest_p(n) * (1 + 1e-9)
    return f"{name} {'≤' if at_floor and not exact(n) else '='} {p:.2g}"


def mann_whitney(x, y, seed: int = 0) -> dict:
    """Two independent samples (missing values dropped): n_x, n_y, the Mann-Whitney U of x, its
    two-sided permutation p (every split of the pooled values while their number is at most
    N_RESAMPLES, else a seeded sample), exact, and prob_greater = U / (n_x n_y), the probability that
    a value of x exceeds one of y (ties count half; 0.5: no difference). Beyond N_RESAMPLES splits, p
    is the exact Mann-Whitney p when no value repeats (the null distribution of U is known then)."""
    x = pd.to_numeric(pd.Series(list(x)), errors="coerce").dropna().to_numpy(dtype=np.float64)
    y = pd.to_numeric(pd.Series(list(y)), errors="coerce").dropna().to_numpy(dtype=np.float64)
    out = {"n_x": len(x), "n_y": len(y), "U": float("nan"), "p": float("nan"), "exact": None, "prob_greater": float("nan")}
    if len(x) < 2 or len(y) < 2:
        return out

    def u_stat(a, b, axis=-1):
        return (np.sign(a[..., :, None] - b[..., None, :]) + 1).sum(axis=(-1, -2)) / 2.0

    u = float(u_stat(x, y))
    splits = math.comb(len(x) + len(y), len(x))
    if splits > N_RESAMPLES and len(np.unique(np.concatenate([x, y]))) == len(x) + len(y):
        # too many splits to enumerate, but without ties U's null distribution is known exactly
        p = float(_st().mannwhitneyu(x, y, alternative="two-sided", method="exact").pvalue)
        out.update(U=u, p=p, exact=True, prob_greater=u / (len(x) * len(y)))
        return out
    centre = len(x) * len(y) / 2.0
    res = _st().permutation_test((x, y), lambda a, b, axis=-1: np.abs(u_stat(a, b) - centre), vectorized=True,
                                 permutation_type="independent", n_resamples=N_RESAMPLES, alternative="greater",
                                 random_state=np.random.default_rng(seed))
    out.update(U=u, p=float(res.pvalue), exact=splits <= N_RESAMPLES, prob_greater=u / (len(x) * len(y)))
    return out


def compare_groups(a: pd.DataFrame, b: pd.DataFrame, measures, seed: int = 0) -> pd.DataFrame:
    """Each measure compared between two ensembles (mann_whitney, a against b), with Holm's
    adjustment across the measures: columns measure, n_a, n_b, median_a, median_b, U, p, exact,
    prob_greater, p_holm, significant."""
    rows = []
    for i, m in enumerate(measures):
        r = mann_whitney(a[m], b[m], seed=seed + i)
        rows.append({"measure": m, "n_a": r["n_x"], "n_b": r["n_y"],
                     "median_a": float(pd.to_numeric(a[m], errors="coerce").median()),
                     "median_b": float(pd.to_numeric(b[m], errors="coerce").median()),
                     "U": r["U"], "p": r["p"], "exact": r["exact"], "prob_greater": r["prob_greater"]})
    out = pd.DataFrame(rows, columns=["measure", "n_a", "n_b", "median_a", "median_b", "U", "p", "exact",
                                      "prob_greater"])
    out["p_holm"] = holm(out["p"].to_numpy())
    out["significant"] = out["p_holm"] < ALPHA
    return out
