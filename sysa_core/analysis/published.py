"""The study's seeds beside the original's published table (sysa_core.original): row by row, and as
distributions with an exact two-sample test per measure.

What can match: the initial weights are the same draw (seed-compatible initialisation: I = sqrt(N) w,
so the I-w cosine at initialisation is 1 by construction in both). The original's training trials
came from an unseeded generator, so a trained seed cannot reproduce its published row exactly:
precision and the I-w cosine are compared as two samples (Mann-Whitney), and seed by seed
(Spearman's rho over the seeds in both: the shared initial draw can make a seed's value follow its
published one beyond their distributions). The original's participation ratios
depend on the signs its eigen-solver gave the eigenvectors, so only their ranges are shown beside
sysa's sign-free ratios, untested."""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import stats

#: published column -> (sysa's metric, whether the two are the same quantity and are tested)
MEASURES = {
    "precision": ("precision", True),
    "weight_correlation": ("weight_correlation", True),
    "I_participation_ratio": ("pr_input_l1", False),
    "w_participation_ratio": ("pr_output_l1", False),
}
#: why a measure is shown but not tested
UNTESTED_WHY = ("the original's ratio depends on the signs of its eigenvectors (a rounding accident), "
                "sysa's does not: the ranges are shown, the values are not comparable")


def side_by_side(published: dict[int, dict], main: pd.DataFrame) -> pd.DataFrame:
    """One row per seed in both: seed, then for each measure its published and sysa's value."""
    ours = main.set_index("seed")
    rows = []
    for s in sorted(set(published) & set(ours.index)):
        row = {"seed": int(s)}
        for col, (metric, _) in MEASURES.items():
            row[f"{col}_published"] = published[s][col]
            row[f"{col}_sysa"] = float(ours.loc[s, metric])
        rows.append(row)
    return pd.DataFrame(rows)


def distributions(published: dict[int, dict], main: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Per measure: the number of seeds, range and median of each sample, and for the measures that
    are the same quantity in both, the exact two-sided Mann-Whitney test with Holm's adjustment
    across the tested measures, and seed by seed over the seeds in both: Spearman's rho of sysa's
    values against the published ones, its two-sided permutation p (stats.spearman) with Holm's
    adjustment across the tested measures. Columns: measure, sysa_metric, n_published, n_sysa,
    min/median/max of each, tested, U, p, exact, prob_greater (P(sysa > published)), p_holm,
    why_untested, n_paired, rho_paired, p_paired, exact_paired, p_paired_holm."""
    ours = main.set_index("seed")
    both = sorted(set(published) & set(ours.index))
    rows = []
    for i, (col, (metric, tested)) in enumerate(MEASURES.items()):
        a = pd.to_numeric(main[metric], errors="coerce").dropna().to_numpy(dtype=np.float64)
        b = np.array([r[col] for r in published.values()], dtype=np.float64)
        row = {"measure": col, "sysa_metric": metric, "n_published": len(b), "n_sysa": len(a),
               "published_min": b.min(), "published_median": float(np.median(b)), "published_max": b.max(),
               "sysa_min": a.min() if len(a) else np.nan, "sysa_median": float(np.median(a)) if len(a) else np.nan,
               "sysa_max": a.max() if len(a) else np.nan, "tested": tested,
               "U": np.nan, "p": np.nan, "exact": None, "prob_greater": np.nan,
               "why_untested": "" if tested else UNTESTED_WHY}
        if tested:
            r = stats.mann_whitney(a, b, seed=seed + i)
            row.update(U=r["U"], p=r["p"], exact=r["exact"], prob_greater=r["prob_greater"])
            if not np.isfinite(r["p"]):
                row.update(tested=False, why_untested="fewer than 2 seeds")
        row.update(n_paired=len(both), rho_paired=np.nan, p_paired=np.nan, exact_paired=None)
        if row["tested"]:
            rho, p = stats.spearman([float(ours.loc[k, metric]) for k in both], [published[k][col] for k in both],
                                    seed=seed + 100 + i)
            row.update(rho_paired=rho, p_paired=p, exact_paired=stats.exact(len(both)))
        rows.append(row)
    out = pd.DataFrame(rows)
    for p_col, holm_col in (("p", "p_holm"), ("p_paired", "p_paired_holm")):
        out[holm_col] = np.nan
        t = out["tested"].to_numpy(dtype=bool) & np.isfinite(out[p_col].to_numpy(dtype=np.float64))
        if t.any():
            out.loc[t, holm_col] = stats.holm(out.loc[t, p_col].to_numpy())
    return out


def init_cosines(main: pd.DataFrame) -> pd.Series:
    """The I-w cosine at initialisation of each seed (1 for the original's draw), by seed."""
    return main.set_index("seed")["weight_correlation_init"].astype(float)
