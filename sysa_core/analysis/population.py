"""The seeds of a run as a population, read from their folders (nothing is retrained or
recomputed): the table of per-seed metrics, which measures are per-seed predictors, the network
G's analysis (once when the seeds share G), the duration -> plateau curves, the error over time,
the overlap of the seeds' memory subspaces, and the plain-words answer to the original question.
"""
from __future__ import annotations


import numpy as np
import pandas as pd

from . import dynamics, stats
from .network import NetworkAnalysis
from .mechanism import subspace_overlap

#: the table's leading columns (every other scalar metric follows)
COLUMNS = ["seed", "precision", "precision_trained_range", "precision_extrapolation", "precision_untrained",
           "converged", "plateau_held_trained_window", "memory_mechanism", "weight_correlation", "pr_input_l1",
           "pr_input_l2", "pr_output_l1", "pr_output_l2", "dim_spontaneous", "dim_memory"]

#: measures of one trained model (they depend on its I and w) tested against in-range precision,
#: with labels
PREDICTORS = {
    "weight_correlation": "I–w cosine (dimensionless)",
    "input_var_alignment": "variance alignment of I, spont. (0–1)",
    "output_var_alignment": "variance alignment of w, memory (0–1)",
    "dim_memory": "memory dimensionality (PCs)",
    "plateau_state_speed_per_s": "relative state speed |dh/dt|/|h| in hold (1/s)",
    "readout_pcs_needed": "PCs the readout needs (PCs)",
}
#: measures shown beside precision but not tested, and why
UNTESTED = {
    "the participation ratios of I and w (l1, l2)": "they run over all N eigenvectors, most of them in a near-null space whose "
                   "directions rounding decides: simulated in float32 and float64 the same model's ratios differ "
                   "(see the largest difference below) and can swap the seeds' order, so a rank test on them would "
                   "test rounding; the variance alignment v'Cv / (λ_max |v|²), which is tested instead, weighs each "
                   "PC by its variance and needs no cut-off",
    "the share of |I|² and |w|² in the top-k PCs": "k is set per seed by its explained variance, so in general "
                                                  "seeds are compared over different numbers of PCs",
    "the memory-period finite-time Lyapunov exponent": "the memory window is seconds long, too short for the "
                   "value to forget its starting tangent vector: other starting vectors give other values (each "
                   "seed's report gives how far apart), so the value is not a property of the network to rank "
                   "seeds by",
    "cos(w, w at initialisation)": "it repeats the I–w cosine in the seed-compatible ensemble, "
                           "where I starts as √N·w",
}
#: measures of the network G alone: predictors only when the seeds do not share G
NETWORK_MEASURES = {
    "network_dim_spontaneous": "spontaneous dimensionality (PCs)",
    "network_lyapunov_spontaneous_per_s": "spontaneous finite-time Lyapunov exp. (1/s)",
    "network_n_fixed_points": "fixed points of G's flow (count)",
}
#: the precision every measure is tested against (the original's precision, over every test
#: duration, extrapolation included, is shown but not tested)
TARGETS = ("precision_trained_range",)
#: what the two ensembles are compared on (exact Mann-Whitney, Holm across these)
ENSEMBLE_MEASURES = {"weight_correlation": "I–w cosine", "precision_trained_range": "in-range precision (MSE, a.u.²)"}
#: the range of values a measure can take (fitted lines are clipped to it)
BOUNDS = {"weight_correlation": (-1, 1), "input_var_alignment": (0, 1), "output_var_alignment": (0, 1),
          "dim_memory": (1, None), "readout_pcs_needed": (0, None), "plateau_state_speed_per_s": (0, None),
          "network_dim_spontaneous": (1, None), "network_n_fixed_points": (0, None)}


def combine(tables: dict) -> pd.DataFrame:
    """Stack the tables of several ensembles with an `ensemble` column."""
    return pd.concat([t.assign(ensemble=name) for name, t in tables.items()], ignore_index=True)


def shares_G(df: pd.DataFrame) -> bool:
    """Whether every seed of the table has the same G (network_G: G's own digest, which, unlike the
    analysis's cache key, does not change with the code that analysed it)."""
    return df["network_G"].nunique(dropna=False) == 1


def predictors(df: pd.DataFrame) -> dict:
    """The measures set against precision: PREDICTORS, and NETWORK_MEASURES when the seeds do not
    share G; those present with at least two distinct values."""
    cand = dict(PREDICTORS) if shares_G(df) else {**PREDICTORS, **NETWORK_MEASURES}
    return {k: v for k, v in cand.items() if k in df and df[k].nunique(dropna=True) > 1}


def statistics(df: pd.DataFrame, seed: int = 0, pool_by: str | None = None) -> tuple[pd.DataFrame, dict]:
    """Every predictor against in-range precision (stats.against, Holm across the table), with what
    a table of this size could detect (stats.power_summary)."""
    meas = predictors(df)
    t = stats.against(df, list(meas), TARGETS, seed=seed, pool_by=pool_by)
    n = int(t["n"].max()) if len(t) else len(df)
    return t, stats.power_summary(n, len(t))


def compare_ensembles(main: pd.DataFrame, control: pd.DataFrame | None, seed: int = 0) -> pd.DataFrame | None:
    """The two ensembles compared on ENSEMBLE_MEASURES (stats.compare_groups, main against control),
    or None without a control ensemble."""
    if control is None or not len(control):
        return None
    return stats.compare_groups(main, control, list(ENSEMBLE_MEASURES), seed=seed)


def points_of_G(net: NetworkAnalysis, both: pd.DataFrame, runs: dict) -> tuple:
    """Every point of G's flow the run found, united (dynamics.union_points): those of G's own
    analysis and those near the memory trajectories of every seed (of either ensemble) with this G.
    Returns (Points, found_from, mirror): per point, where it was found (text) and the index of its
    mirror point -h (-1: none found)."""
    parts, labels = [net.points], [("G", None)]
    for ens, seeds in runs.items():
        Gs = both[both["ensemble"] == ens].set_index("seed")["network_G"]
        for s, arrays in seeds.items():
            if Gs.get(s) == net.G_digest:
                parts.append(dynamics.Points.from_arrays(arrays))
                labels.append((ens, s))
    kept = [i for i, p in enumerate(parts) if len(p)]
    pts, found = dynamics.union_points([parts[i] for i in kept])
    text = []
    for fs in found:
        where = [labels[kept[i]] for i in fs]
        bits = ["G's census"] if ("G", None) in where else []
        for ens in runs:
            ss = [str(s) for e, s in where if e == ens]
            if ss:
                bits.append(f"{ens} seed{'s' if len(ss) > 1 else ''} {', '.join(ss)}")
        text.append("; ".join(bits))
    return pts, text, pts.mirrors()


def plateau_curves(runs: dict) -> pd.DataFrame:
    """The duration sweep of every seed: columns ensemble, seed, duration_ms, plateau, target,
    in_range (runs: {ensemble: {seed: the seed's analysis arrays}}, as pipeline.store.runs reads them)."""
    rows = []
    for ens, seeds in runs.items():
        for s, a in seeds.items():
            rows.append(pd.DataFrame({"ensemble": ens, "seed": s, "duration_ms": a["gen_durations_ms"],
                                      "plateau": a["gen_plateau"], "target": a["gen_target"],
                                      "in_range": a["gen_in_range"]}))
    return pd.concat(rows, ignore_index=True)


def error_over_time(runs: dict, cfg) -> pd.DataFrame:
    """|output - target| / target of the in-range test trials from the cost onset to the end of the
    evaluation run, every seed: columns ensemble, seed, duration_ms, time_s (since the pulse's
    onset), rel_error."""
    rows = []
    for ens, seeds in runs.items():
        for s, a in seeds.items():
            t = a["eval_t_ms"]
            after = t >= cfg.task.cost_onset_ms
            for d, y in zip(a["eval_durations_ms"], a["eval_y"]):
                if not cfg.in_trained_range(float(d)):
                    continue
                target = cfg.task.thresh * float(d)
                rows.append(pd.DataFrame({"ensemble": ens, "seed": s, "duration_ms": int(d),
                                          "time_s": (t[after] - cfg.analysis.eval_onset_ms) / 1000.0,
                                          "rel_error": np.abs(y[after] - target) / target}))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        columns=["ensemble", "seed", "duration_ms", "time_s", "rel_error"])


def subspace_overlaps(runs: dict) -> pd.DataFrame:
    """The overlap (mean squared cosine of the principal angles, mechanism.subspace_overlap) of the
    leading memory PCs of every pair of seeds of every ensemble; labels "<ensemble> <seed>"."""
    pcs = {f"{ens} {s}": a["mem_pcs"] for ens, seeds in runs.items() for s, a in seeds.items()}
    labels = list(pcs)
    m = np.array([[subspace_overlap(pcs[a], pcs[b]) for b in labels] for a in labels])
    return pd.DataFrame(m, index=labels, columns=labels)
