"""Population statistics: each per-model measure against precision.

For n models (seeds) the question is whether a measure predicts precision, and how sure that
answer is at this n: Spearman's rank correlation with its p-value, a bootstrap confidence
interval (seeds resampled with replacement, percentile interval), the correlation matrix
between measures, and one sentence saying what the data support.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as _st

#: default number of bootstrap resamples
N_BOOT = 2000


def _pairs(x, y) -> tuple[np.ndarray, np.ndarray]:
    """x and y as float64 arrays with the pairs where either is missing (None / NaN) dropped."""
    x = pd.to_numeric(pd.Series(list(x)), errors="coerce").to_numpy(dtype=np.float64)
    y = pd.to_numeric(pd.Series(list(y)), errors="coerce").to_numpy(dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in length ({len(x)} vs {len(y)})")
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def spearman(x, y) -> tuple[float, float]:
    """Spearman's rho and its two-sided p-value (scipy.stats.spearmanr) over the complete pairs;
    (nan, nan) with fewer than 3 pairs or a constant variable."""
    x, y = _pairs(x, y)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan")
    res = _st.spearmanr(x, y)
    return float(res.statistic), float(res.pvalue)


def spearman_rows(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row pair of X and Y (B, n), vectorised: the Pearson correlation
    of the rows' ranks (ties averaged). nan for a row where either variable is constant."""
    rx = _st.rankdata(np.asarray(X, dtype=np.float64), axis=1)
    ry = _st.rankdata(np.asarray(Y, dtype=np.float64), axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    num = (rx * ry).sum(axis=1)
    den = np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def bootstrap_rho(x, y, n_boot: int = N_BOOT, seed: int | np.random.Generator = 0) -> np.ndarray:
    """Spearman's rho of n_boot resamples of the complete pairs (drawn with replacement, seeded
    numpy Generator): (n_boot,), nan for the resamples in which a variable is constant."""
    x, y = _pairs(x, y)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))
    return spearman_rows(x[idx], y[idx])


def bootstrap_ci(x, y, n_boot: int = N_BOOT, level: float = 0.95,
                 seed: int | np.random.Generator = 0) -> tuple[float, float]:
    """Percentile bootstrap interval (lo, hi) of Spearman's rho at the given level; resamples
    with a constant variable are left out. (nan, nan) with fewer than 3 pairs."""
    x, y = _pairs(x, y)
    if len(x) < 3:
        return float("nan"), float("nan")
    b = bootstrap_rho(x, y, n_boot, seed)
    b = b[np.isfinite(b)]
    if len(b) == 0:
        return float("nan"), float("nan")
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(b, [a, 1.0 - a])
    return float(lo), float(hi)


def against(df: pd.DataFrame, measures, target: str = "precision", n_boot: int = N_BOOT,
            level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """For each measure (a column of df, one row per model) against `target`: n (complete
    pairs), rho, p, ci_low, ci_high (the bootstrap interval at `level`, seeded per measure from
    `seed` and its position) and excludes_zero (the interval lies entirely above or below 0).
    One row per measure, in the order given."""
    rows = []
    for i, m in enumerate(measures):
        x, y = _pairs(df[m], df[target])
        rho, p = spearman(x, y)
        lo, hi = bootstrap_ci(x, y, n_boot, level, np.random.default_rng([seed, i]))
        rows.append({"measure": m, "n": int(len(x)), "rho": rho, "p": p, "ci_low": lo, "ci_high": hi,
                     "excludes_zero": bool(np.isfinite(lo) and (lo > 0 or hi < 0))})
    return pd.DataFrame(rows, columns=["measure", "n", "rho", "p", "ci_low", "ci_high", "excludes_zero"])


def correlation_matrix(df: pd.DataFrame, columns) -> pd.DataFrame:
    """Spearman's rho between every pair of the columns (pairwise complete rows)."""
    return df[list(columns)].apply(pd.to_numeric, errors="coerce").corr(method="spearman")


def _n_text(ns) -> str:
    ns = sorted({int(n) for n in ns})
    return f"n = {ns[0]}" if len(ns) == 1 else f"n = {ns[0]}-{ns[-1]}"


def summary_sentence(table: pd.DataFrame, target: str = "precision", level: float = 0.95) -> str:
    """One plain-English sentence stating what a table from `against` supports: which measures'
    intervals exclude 0 (with rho and the interval), or that none does."""
    pct = f"{100 * level:g} %"
    if len(table) == 0:
        return f"No measure was compared with {target}."
    n = _n_text(table["n"])
    hits = table[table["excludes_zero"]]
    if len(hits) == 0:
        return (f"At {n}, no measure correlates with {target}: every {pct} interval of Spearman's rho "
                f"includes 0.")
    parts = [f"{r.measure} (rho = {r.rho:.2f}, {pct} interval [{r.ci_low:.2f}, {r.ci_high:.2f}])"
             for r in hits.itertuples()]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    rest = len(table) - len(hits)
    tail = (f"; the intervals of the other {rest} measure{'s' if rest != 1 else ''} include 0" if rest else "")
    verb = "correlates" if len(hits) == 1 else "correlate"
    return f"At {n}, {listed} {verb} with {target} (interval excludes 0){tail}."
