"""The seeds of a run as a population, read from their folders (nothing is retrained or
recomputed): the table of per-seed metrics, which measures are per-seed predictors, the network
G's analysis (once when the seeds share G), the duration -> plateau curves, the error over time,
the overlap of the seeds' memory subspaces, and the plain-words answer to the original question.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from . import dynamics, stats
from .network import NetworkAnalysis
from .mechanism import subspace_overlap
from .metrics import IDENTITY_KEYS

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
    "lyapunov_in_range_per_s": "memory finite-time Lyapunov exp., in-range mean (1/s)",
    "plateau_state_speed_per_s": "relative state speed |dh/dt|/|h| in hold (1/s)",
    "readout_pcs_needed": "PCs the readout needs (PCs)",
}
#: measures shown beside precision but not tested, and why
UNTESTED = {
    "the participation ratios of I and w (l1, l2)": "they run over all N eigenvectors, most of them in a near-null space whose "
                   "directions rounding decides: simulated in float32 and float64 the same model's ratios differ "
                   "(see the largest difference below) and can swap the seeds' order, so a rank test on them would "
                   "test rounding; the variance alignment v'Cv / (λ_max |v|²) (tested) weighs each PC by its "
                   "variance and needs no cut-off",
    "the share of |I|² and |w|² in the top-k PCs": "k is set per seed by its explained variance, so in general "
                                                  "seeds are compared over different numbers of PCs",
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
        bits = ["G's own search (the origin and the spontaneous activity)"] if ("G", None) in where else []
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


def overlap_summary(matrix: pd.DataFrame, k: int, n_units: int) -> str:
    """The overlaps of subspace_overlaps read out per kind of pair (within each ensemble, between
    them): median and range over the pairs of distinct seeds, against the chance level k / N."""
    ens = [str(label).split(" ")[0] for label in matrix.index]
    m = matrix.to_numpy(dtype=float)
    groups: dict[str, list[float]] = {}
    for i in range(len(ens)):
        for j in range(i + 1, len(ens)):
            a, b = sorted((ens[i], ens[j]), key=lambda e: (e != "main", e))
            kind = f"{a}–{b}"
            groups.setdefault(kind, []).append(m[i, j])
    if not groups:
        return "One network only: no pair of memory subspaces to compare."
    order = sorted(groups, key=lambda g: (g.split("–")[0] != g.split("–")[1], g != "main–main", g))
    parts = []
    for kind in order:
        v = np.asarray(groups[kind])
        rng = f" ({v.min():.2g}–{v.max():.2g})" if f"{v.min():.2g}" != f"{v.max():.2g}" else ""
        parts.append(f"{kind} {np.median(v):.2g}{rng}, {count(len(v), 'pair')}")
    return (f"Overlap of the leading {k} memory PCs, median (range) over the pairs of distinct networks: "
            + "; ".join(parts) + f". Chance for unrelated random subspaces: k/N = {k / n_units:.2g}. Descriptive: "
            "no test.")


# -- the answer ---------------------------------------------------------------------------------------

def _fmt(v: float) -> str:
    return f"{v:.3g}"


def span(values, fmt: str = ".0f", sep: str = "–") -> str:
    """'3' when every value prints the same, '2–4' otherwise (fmt: a format spec; sep between the ends)."""
    lo, hi = format(min(values), fmt), format(max(values), fmt)
    return lo if lo == hi else f"{lo}{sep}{hi}"


def count(n: int, noun: str) -> str:
    """'1 seed', '4 seeds'."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _control_mechanisms(control: pd.DataFrame | None) -> str:
    if control is None or not len(control) or "memory_mechanism" not in control:
        return ""
    counts = control["memory_mechanism"].value_counts()
    return "; control: " + ", ".join(f"{v} of {len(control)} {k}" for k, v in counts.items())


def answer(main: pd.DataFrame, control: pd.DataFrame | None, table: pd.DataFrame, power: dict,
           labels: dict | None = None, ensembles: pd.DataFrame | None = None) -> list[str]:
    """The original question answered in plain words from the run: is the I-w cosine learned or
    inherited (it takes the control ensemble: `ensembles`, compare_ensembles), does any measure
    predict in-range precision at this n after correction, what holds the memory, and how many
    seeds a decisive answer needs. One sentence (or two) per point."""
    labels = labels or {**PREDICTORS, **NETWORK_MEASURES}
    out = []
    cos, cos0 = main["weight_correlation"], main["weight_correlation_init"]
    if control is not None and len(control) and ensembles is not None:
        c, c0 = control["weight_correlation"], control["weight_correlation_init"]
        moved = float((c - c0).median())
        tests = ensembles.set_index("measure")
        t = tests.loc["weight_correlation"]
        n_a, n_b = int(t["n_a"]), int(t["n_b"])
        testable = min(n_a, n_b) >= 2
        head = (f"The I–w cosine ends at {_fmt(cos.median())} in the main ensemble (median of "
                f"{count(len(main), 'seed')}, from {_fmt(cos0.median())} at initialisation) and at {_fmt(c.median())} in the control ensemble, where I "
                f"and w start independent (median {_fmt(c0.median())} at initialisation; median change in training "
                f"{moved:+.2f})")
        head += (f"; in {int(round(t['prob_greater'] * n_a * n_b))} of the {n_a * n_b} main–control pairs the main "
                 f"seed's cosine is the larger." if testable else ".")
        if "input_drift_cosine" in main and "output_drift_cosine" in main:
            head += (f" I barely moves in training (cos(I, I at initialisation): median "
                     f"{main['input_drift_cosine'].median():.3g}), so the main ensemble's trained cosine is about "
                     f"cos(w, w at initialisation) (median {main['output_drift_cosine'].median():.3g}): how far w moved.")
        floor = min(1.0, len(tests) * 2.0 / math.comb(n_a + n_b, n_a))
        if not testable:
            out.append(f"{head} No test compares the ensembles at {n_a} and {n_b} seeds: each needs at least 2.")
        elif t["significant"]:
            why = ("training leaves an unaligned start unaligned, so the main ensemble's cosine is inherited from "
                   "its initialisation, not learned" if abs(moved) < 0.1 else
                   f"training moves an unaligned start by {moved:+.2f}: part of the cosine is learned")
            out.append(f"{head} The ensembles differ (exact Mann–Whitney p = {t['p']:.2g}, {t['p_holm']:.2g} after "
                       f"Holm across the {len(tests)} comparisons): {why}.")
        elif floor >= stats.ALPHA:
            out.append(f"{head} A test cannot establish the difference at {n_a} and {n_b} seeds: even complete "
                       f"separation gives an adjusted p of {floor:.2g} under Holm across the {len(tests)} comparisons "
                       f"(here p = {t['p']:.2g}, adjusted {t['p_holm']:.2g}); more seeds are needed.")
        else:
            out.append(f"{head} The difference is not established (exact Mann–Whitney p = {t['p']:.2g}, "
                       f"{t['p_holm']:.2g} after Holm across the {len(tests)} comparisons).")
        pr = tests.loc["precision_trained_range"]
        works = (control["memory_mechanism"] != "no memory").sum() if "memory_mechanism" in control else None
        tail = (f" The control networks hold the plateau too ({works} of {len(control)}) with an I–w cosine near 0: a "
                f"large cosine is not needed to do the task." if works else "")
        verdict = ("not tested" if not testable else
                   ("the initialisation changes it" if pr["significant"] else "no difference is established")
                   + f" (exact Mann–Whitney p = {pr['p']:.2g}, adjusted {pr['p_holm']:.2g})")
        out.append(f"In-range precision: median {pr['median_a']:.3g} a.u.² (main) and {pr['median_b']:.3g} a.u.² "
                   f"(control); {verdict}.{tail}")
    else:
        out.append(f"The I–w cosine ends at {_fmt(cos.median())} (median over {len(main)} seeds) from "
                   f"{_fmt(cos0.median())} at initialisation; whether training creates it cannot be told without "
                   f"the control ensemble (sysa run --control).")
    out.append(stats.summary_sentence(table, labels) + _largest_rho(table, labels))
    counts = main["memory_mechanism"].value_counts()
    parts = [f"{k}: {v}" for k, v in counts.items()]
    speed = main["plateau_state_speed_per_s"].median()
    pcs = main["readout_pcs_needed"].median()
    if len(counts) == 1 and counts.index[0] in ("transient", "attractor"):
        how = ("the state keeps moving while the output holds, the readout nearly blind to its motion"
               if counts.index[0] == "transient" else "the state settles while the output holds")
        who = "The main network holds" if len(main) == 1 else f"All {len(main)} main networks hold"
        out.append(f"{who} the plateau by a {counts.index[0]} (the rule of "
                   f"analysis.mechanism, which cannot tell a transient from a limit cycle): {how} (median relative "
                   f"state speed {speed:.3g} /s; the readout needs {pcs:g} PCs of the memory activity, median)"
                   + _control_mechanisms(control) + "." + _memory_span(main, control))
    else:
        out.append(f"The main networks differ in how they hold the plateau ({', '.join(parts)}; median relative state "
                   f"speed {speed:.3g} /s)" + _control_mechanisms(control) + "." + _memory_span(main, control))
    crit = power["critical_rho"]
    det = power["detectable_rho"]
    reach = (f"only |rho| above {crit:.2f} reaches p < 0.05 at n = {power['n']}, and |rho| of {det:.2f} is "
             f"detected with 80 % power" if crit is not None and det is not None
             else f"no correlation can reach p < 0.05 at n = {power['n']}")
    need = power["seeds_for_0.5_holm"]
    lead = ("A decisive answer needs more seeds" if power["n"] < need else f"At n = {power['n']} the tests are powered "
            f"for rho = 0.5")
    holm = (f", {need} at the Bonferroni level α/{power['tests']} (Holm's correction at its strictest) across the "
            f"{power['tests']} tests here" if power["tests"] > 1 else "")
    one_G = (" Every network of this run shares one G, so the answer holds for this G; an answer for System A in "
             "general takes seeds with a G each (--set model.G_per_seed=true)." if shares_G(main) and len(main) > 1
             else "")
    out.append(f"{lead}: {reach}; detecting rho = 0.5 with 80 % power needs about {power['seeds_for_0.5']} seeds for "
               f"one test{holm}.{one_G}")
    return out


def _largest_rho(table: pd.DataFrame, labels: dict) -> str:
    """When nothing is claimed: which measure(s) ranked most closely with precision, said to be
    descriptive, with the sign read out (precision is an error: lower is better)."""
    rho = pd.to_numeric(table["rho"], errors="coerce") if len(table) else pd.Series(dtype=float)
    if not len(table) or table["significant"].any() or not rho.abs().max() > 0:
        return ""
    top = table[rho.abs() >= rho.abs().max() - 1e-12]
    names = " and ".join(f"{labels.get(r.measure, r.measure).split(' (')[0]} (rho = {r.rho:+.2f}, p = {r.p:.2g}, "
                         f"adjusted {r.p_holm:.2g})" for r in top.itertuples())
    sign = ("larger values with more precise networks (a lower error)" if (top["rho"] < 0).all() else
            "larger values with less precise networks (a higher error)" if (top["rho"] > 0).all() else
            "opposite directions")
    return f" The closest rank relationship is {names}: {sign}, which at this n is not evidence."


def _memory_span(main: pd.DataFrame, control: pd.DataFrame | None) -> str:
    """How long past the trained window the networks keep the memory: in the duration sweep, when the
    shortest-lived in-range plateau of each network leaves its 10 % band."""
    keys = ("sweep_hold_ms_in_range_min", "sweep_trained_window_ms")
    if not all(k in main for k in keys):
        return ""

    def beyond(df):
        return span(pd.to_numeric(df[keys[0]]) - pd.to_numeric(df[keys[1]]), "+.0f", " to ") + " ms"

    window = float(pd.to_numeric(main[keys[1]]).iloc[0])
    both = [main] + ([control] if control is not None and len(control) and all(k in control for k in keys) else [])
    ctl = f" (control: {beyond(control)})" if len(both) == 2 else ""
    capped = ""
    if "sweep_horizon_ms" in main:
        horizon = float(pd.to_numeric(main["sweep_horizon_ms"]).iloc[0])
        if any((pd.to_numeric(df[keys[0]]) >= horizon).any() for df in both):
            capped = f"; a plateau still on target at the sweep's end ({horizon / 1000:g} s) counts as leaving there"
    return (f" How long the memory lasts: in the duration sweep the shortest-lived in-range plateau of each main "
            f"network leaves its 10 % band {beyond(main)}{ctl} relative to the end of the trained window "
            f"({window / 1000:g} s after the cost onset){capped}.")
