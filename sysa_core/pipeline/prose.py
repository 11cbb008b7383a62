"""The report's sentences: what the numbers of a model or a population say, in plain words, each
computed from the run's numbers (the analysis computes them; this module only words them)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..analysis import alignment, dynamics, pca, population, regime, stats, stepsize
from ..analysis.mechanism import LEARNED
from ..analysis.plateau import HOLD_TOLERANCE


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def span(values, fmt: str = ".0f", sep: str = "–") -> str:
    """'3' when every value prints the same, '2–4' otherwise (fmt: a format spec; sep between the ends)."""
    lo, hi = format(min(values), fmt), format(max(values), fmt)
    return lo if lo == hi else f"{lo}{sep}{hi}"


def share_of_norm(x: float, down: bool = False) -> str:
    """A distance over a norm as a percentage: whole percents, one decimal where those would print
    100 % for a value that is not 1 (the origin lies exactly 100 % of |h| away, another point not).
    down: rounded down, for a bound ("at least"), which then never overstates x."""
    if down:
        x = math.floor(round(x * 100, 9)) / 100
    whole = f"{x:.0%}"
    return f"{x:.1%}" if whole == "100%" and x != 1 else whole


def ceil_sig(x: float, digits: int = 2) -> float:
    """x rounded up (away from zero) at `digits` significant digits: a bound printed at that
    precision ("at most", "within", "up to") that never understates the value."""
    if not x or not math.isfinite(x):
        return x
    scale = 10.0 ** (math.floor(math.log10(abs(x))) - digits + 1)
    return math.copysign(math.ceil(abs(x) / scale * (1 - 1e-12)) * scale, x)


def count(n: int, noun: str) -> str:
    """'1 seed', '4 seeds'."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def problems(m) -> list[str]:
    """What keeps a network from doing the task, from its metrics (a dict or a table row): "not
    converged" (the loss still fell at the end), "plateaus not held" (an in-range plateau leaves its
    band within the trained window), "barely learned" (in-range precision less than LEARNED times
    better than untrained); empty when it does the task."""
    out = []
    if m.get("converged") is False or m.get("converged") == 0:
        out.append("not converged")
    held = m.get("plateau_held_trained_window")
    if held is not None and held == held and held < 1:
        out.append("plateaus not held")
    better = m.get("improvement_over_untrained")
    if better is not None and better == better and better < LEARNED:
        out.append("barely learned")
    return out


def _works(df: pd.DataFrame) -> int:
    return sum(not problems(r) for r in df.to_dict("records"))


def _doing_the_task(main: pd.DataFrame, control: pd.DataFrame | None, cfg=None) -> str:
    """How many networks do the task by the index's criteria, and what the others lack; with the
    run's configuration `cfg`, how many hold each in-range test pulse's plateau through the trained
    window."""
    parts = []
    for name, df in (("main", main), ("control", control)):
        if df is None or not len(df):
            continue
        lacks = pd.Series([p for r in df.to_dict("records") for p in problems(r)]).value_counts()
        why = "; ".join(f"{v} of {len(df)} {k}" for k, v in lacks.items())
        parts.append(f"{_works(df)} of {len(df)} {name} networks" + (f" ({why})" if why else ""))
    at = (f", at the {cfg.model.dt_ms:g} ms step they were trained with" if cfg is not None and stepsize.applies(cfg)
          else "")
    return ("Doing the task (converged, every in-range plateau held through the trained window, in-range precision "
            f"at least {LEARNED:g}× better than untrained{at}): " + " and ".join(parts) + "."
            + _held_by_duration(main, control, cfg))


def _held_by_duration(main: pd.DataFrame, control: pd.DataFrame | None, cfg) -> str:
    """' Held through the trained window, by in-range test pulse: 50 ms by a of n main (control b of
    m), ...' from the plateau_hold_<d>ms columns, then the same at the paper's step from the
    fine_step_hold_<d>ms columns of a run with a coarser step; '' without a configuration or those
    columns."""
    if cfg is None:
        return ""
    window = cfg.trained_window_ms
    out = ""
    steps = [("plateau_hold", f"Held through the trained window ({window / 1000:g} s), by in-range test pulse")]
    if stepsize.applies(cfg):
        steps.append(("fine_step_hold", f"Simulated again with the paper's {stepsize.FINE_DT_MS:g} ms step (they were "
                                        f"trained with {cfg.model.dt_ms:g} ms), held through the window"))
    for prefix, lead in steps:
        parts = []
        for d in cfg.analysis.durations_ms:
            col = f"{prefix}_{int(d)}ms"
            if not cfg.in_trained_range(d) or col not in main:
                continue
            parts.append(f"{int(d)} ms by {_held(main[col], window)} main"
                         + (f" (control {_held(control[col], window)})"
                            if control is not None and len(control) and col in control else ""))
        if parts:
            out += f" {lead}: " + "; ".join(parts) + "."
    if len(steps) > 1 and "fine_step_held_trained_window" in main:
        every = lambda df: _held(df["fine_step_held_trained_window"], 1.0) + " networks"  # noqa: E731
        ctl = control is not None and len(control) and "fine_step_held_trained_window" in control
        out += (f" At {stepsize.FINE_DT_MS:g} ms, {every(main)} of the main ensemble"
                + (f" and {every(control)} of the control" if ctl else "") + " hold every in-range plateau.")
    return out


def _held(values: pd.Series, at_least: float) -> str:
    """'a of n': how many of the known values reach at_least (a missing value is not counted in n)."""
    known = values.dropna()
    return f"{int((known >= at_least).sum())} of {len(known)}"


def _control_mechanisms(control: pd.DataFrame | None) -> str:
    if control is None or not len(control) or "memory_mechanism" not in control:
        return ""
    counts = control["memory_mechanism"].value_counts()
    return "; control: " + ", ".join(f"{v} of {len(control)} {k}" for k, v in counts.items())


def shared_orders(df: pd.DataFrame, table: pd.DataFrame) -> str:
    """' The 6 measures order the 4 networks in only 3 distinct ways ...' when some of the table's
    measures rank the networks (those with every measure) alike, a reversed order counted as the
    same (it gives the same |rho| against any target): their tests then overlap. Empty otherwise."""
    measures = [m for m in table["measure"] if m in df] if len(table) else []
    rows = df[measures].apply(pd.to_numeric, errors="coerce").dropna() if measures else df.iloc[:0]
    if len(measures) < 2 or len(rows) < 3:
        return ""
    orders = set()
    for m in measures:
        r = tuple(rows[m].rank().tolist())
        orders.add(min(r, tuple(len(rows) + 1 - x for x in r)))
    if len(orders) == len(measures):
        return ""
    return (f" The {len(measures)} measures order the {len(rows)} networks in only {len(orders)} distinct "
            f"{'way' if len(orders) == 1 else 'ways'} (a reversed order counted as the same), so their tests overlap; "
            "Holm's correction holds whatever their dependence.")


def _drift(main: pd.DataFrame) -> str:
    """How far I and w of the main ensemble turned in training (their cosines with their initial
    draws), and, where I turned less, how close the trained I-w cosine is to w's cosine with its
    start: I starts parallel to w in this ensemble, so the two would be equal had I not turned."""
    cw = main["output_drift_cosine"]
    mi, mw = float(main["input_drift_cosine"].median()), float(cw.median())
    turned = math.degrees(math.acos(min(1.0, mi)))
    text = (f" I turns {'less than' if mi > mw else 'at least as far as'} w in training "
            f"(cos(I, I at initialisation): median {mi:.3g}, about {turned:.0f}°; cos(w, w at "
            f"initialisation): median {mw:.3g})")
    if mi <= mw:
        return text + "."
    gap = (main["weight_correlation"] - cw).abs()
    return (text + f", so the main ensemble's trained cosine is close to cos(w, w at initialisation), how far w "
            f"moved (the two differ by {span(gap, '.2g', ' to ')} seed by seed).")


def cycle_evidence(m: dict) -> str:
    """Why G's spontaneous activity counts as a limit cycle (regime's rule), with its period, from a
    network's metrics."""
    return (f"period {m['network_regime_period_ms'] / 1000:.3g} s: the state comes back within "
            f"{100 * regime.RETURN_TOL:g} % of its trajectory's spread after one period, from each of "
            f"{regime.N_REFERENCES} reference times")


def answer(main: pd.DataFrame, control: pd.DataFrame | None, table: pd.DataFrame, power: dict,
           labels: dict | None = None, ensembles: pd.DataFrame | None = None, cfg=None) -> list[str]:
    """The original question answered in plain words from the run: is the I-w cosine learned or
    inherited (it takes the control ensemble: `ensembles`, compare_ensembles), does any measure
    predict in-range precision at this n after correction, what holds the memory, and how many
    seeds a decisive answer needs. One sentence (or two) per point. cfg: the run's configuration
    (for the holds by test pulse)."""
    labels = labels or {**population.PREDICTORS, **population.NETWORK_MEASURES}
    out = [_doing_the_task(main, control, cfg)]
    cos, cos0 = main["weight_correlation"], main["weight_correlation_init"]
    if control is not None and len(control) and ensembles is not None:
        c, c0 = control["weight_correlation"], control["weight_correlation_init"]
        moved = float((c - c0).abs().median())
        tests = ensembles.set_index("measure")
        t = tests.loc["weight_correlation"]
        n_a, n_b = int(t["n_a"]), int(t["n_b"])
        testable = min(n_a, n_b) >= 2
        head = (f"The I–w cosine ends at {_fmt(cos.median())} in the main ensemble (median of "
                f"{count(len(main), 'seed')}, from {_fmt(cos0.median())} at initialisation) and at {_fmt(c.median())} in the control ensemble, where I "
                f"and w start independent (median {_fmt(c0.median())} at initialisation; median size of its change "
                f"in training {moved:.2g})")
        head += (f"; in {int(round(t['prob_greater'] * n_a * n_b))} of the {n_a * n_b} main–control pairs the main "
                 f"seed's cosine is the larger." if testable else ".")
        if "input_drift_cosine" in main and "output_drift_cosine" in main:
            head += _drift(main)
        floor = min(1.0, len(tests) * 2.0 / math.comb(n_a + n_b, n_a))
        if not testable:
            out.append(f"{head} No test compares the ensembles at {n_a} and {n_b} seeds: each needs at least 2.")
        elif t["significant"]:
            # the test compares trained levels, which start apart by construction: what tells learned from
            # inherited is how far training moves an unaligned start, read off every control network
            most = float((c - c0).abs().max())
            why = ("training leaves an unaligned start unaligned, so the main ensemble's cosine is inherited from "
                   "its initialisation, not learned" if abs(moved) < 0.1 else
                   f"training moves an unaligned start (by {moved:.2f}, median): part of the cosine is learned")
            out.append(f"{head} The ensembles' trained cosines differ (exact Mann–Whitney p = {t['p']:.2g}, "
                       f"{t['p_holm']:.2g} after Holm across the {len(tests)} comparisons), as their initial ones do "
                       f"by construction; what tells learned from inherited is the change in training, and every "
                       f"control network's cosine moved by at most {ceil_sig(most):.2g}: {why}.")
        elif floor >= stats.ALPHA:
            out.append(f"{head} A test cannot establish the difference at {n_a} and {n_b} seeds: even complete "
                       f"separation gives an adjusted p of {floor:.2g} under Holm across the {len(tests)} comparisons "
                       f"(here p = {t['p']:.2g}, adjusted {t['p_holm']:.2g}); more seeds are needed.")
        else:
            out.append(f"{head} The difference is not established (exact Mann–Whitney p = {t['p']:.2g}, "
                       f"{t['p_holm']:.2g} after Holm across the {len(tests)} comparisons).")
        pr = tests.loc["precision_trained_range"]
        learned = (int((pd.to_numeric(control["improvement_over_untrained"]) >= LEARNED).sum())
                   if "improvement_over_untrained" in control else 0)
        done = _works(control)
        tail = (f" {done} of {len(control)} control networks do the task with an I–w cosine near 0: a large cosine is "
                f"not needed for it." if done else
                f" {learned} of {len(control)} control networks are at least {LEARNED:g}× more precise in range than "
                f"before training with an I–w cosine near 0 (none does the task by the criteria above): such a gain "
                f"does not need a large cosine." if learned else "")
        verdict = ("not tested" if not testable else
                   ("the initialisation changes it" if pr["significant"] else "no difference is established")
                   + f" (exact Mann–Whitney p = {pr['p']:.2g}, adjusted {pr['p_holm']:.2g})")
        out.append(f"In-range precision: median {pr['median_a']:.3g} a.u.² (main) and {pr['median_b']:.3g} a.u.² "
                   f"(control); {verdict}.{tail}")
    else:
        out.append(f"The I–w cosine ends at {_fmt(cos.median())} (median over {len(main)} seeds) from "
                   f"{_fmt(cos0.median())} at initialisation; whether training creates it cannot be told without "
                   f"the control ensemble (sysa run --control).")
    largest = _largest_rho(table, labels)  # names the closest relationship: the summary need not repeat it
    out.append(summary_sentence(table, labels, name_smallest=not largest) + largest + shared_orders(main, table))
    readout = readout_alignment(main, control, cfg)
    if readout:
        out.append(readout)
    counts = main["memory_mechanism"].value_counts()
    parts = [f"{k}: {v}" for k, v in counts.items()]
    speed = main["plateau_state_speed_per_s"].median()
    pcs = main["readout_pcs_needed"].median()
    structure = _structure_of_G(main, control)
    if len(counts) == 1 and counts.index[0] in ("transient", "attractor"):
        how = ("the state keeps moving through the memory window, the readout nearly blind to its motion"
               if counts.index[0] == "transient" else "the state settles in the memory window")
        who = "The main network's" if len(main) == 1 else f"All {len(main)} main networks'"
        out.append(structure + f"{who} memory is a {counts.index[0]} by the mechanism rule (it cannot tell a transient "
                   f"from a limit cycle; its evidence: how far the state travels over the memory window): {how} "
                   f"(median relative state speed {speed:.3g} /s; the readout needs {pcs:g} PCs of the memory activity, "
                   f"median)" + _control_mechanisms(control) + "." + _memory_span(main, control))
    else:
        out.append(structure + f"The main networks' memory differs by the mechanism rule ({', '.join(parts)}; median "
                   f"relative state speed {speed:.3g} /s)" + _control_mechanisms(control) + "." + _memory_span(main, control))
    reach = sensitivity(power)
    need = power["seeds_for_0.5_holm"]
    lead = ("A decisive answer needs more seeds" if power["n"] < need else f"At n = {power['n']} the tests are powered "
            f"for rho = 0.5")
    holm = (f", {need} at the Bonferroni level α/{power['tests']} (Holm's correction at its strictest) across the "
            f"{power['tests']} tests here" if power["tests"] > 1 else "")
    one_G = (" Every network of this run shares one G, so the answer holds for this G; an answer for System A in "
             "general takes seeds with a G each (--set model.G_per_seed=true)." if population.shares_G(main) and len(main) > 1
             else "")
    out.append(f"{lead}: {reach}; detecting rho = 0.5 with 80 % power needs about {power['seeds_for_0.5']} seeds for "
               f"one test{holm}.{one_G}")
    return out


def _up(v: float) -> str:
    """A |rho| rounded up to two decimals: a threshold that is never understated."""
    return f"{math.ceil(v * 100 - 1e-9) / 100:.2f}"


def sensitivity(power: dict) -> str:
    """What the tests could detect at their n (stats.power_summary): the |rho| one test needs to reach
    p < 0.05 and the |rho| it detects with 80 % power, then the same for the first claim under Holm's
    correction across the tests (p < 0.05 / m); each |rho| rounded up."""
    n, m = power["n"], power["tests"]
    crit, det = power["critical_rho"], power["detectable_rho"]
    if crit is None or det is None:
        return f"no correlation can reach p < 0.05 at n = {n}"
    out = (f"at n = {n} one test reaches p < 0.05 only from |rho| ≈ {_up(crit)} on, and detects |rho| = "
           f"{_up(det)} with 80 % power")
    crit_m, det_m = power["critical_rho_holm"], power["detectable_rho_holm"]
    if m > 1:
        out += (f"; with Holm's correction across the {m} tests the first claim needs p < 0.05/{m}, "
                + (f"|rho| ≈ {_up(crit_m)} or more, and |rho| = {_up(det_m)} is detected with 80 % power there"
                   if crit_m is not None and det_m is not None else "which no correlation can reach"))
    return out


def readout_alignment(main: pd.DataFrame, control: pd.DataFrame | None, cfg=None) -> str:
    """How much of |w|^2 lies in the memory PCs that carry 90 % of the memory variance, against
    random vectors of the same norm, over every network of the run, and why a flat plateau asks for
    little there (an empty string without the measures); then, given the run's configuration, how w
    lies to each network's duration-coding direction (coding_summary)."""
    keys = ("output_topk90_fraction", "output_topk90_null_mean", "output_topk90_null_pct", "output_topk90_k")
    if not all(k in main for k in keys):
        return ""
    df = main if control is None or not len(control) else pd.concat([main, control], ignore_index=True)
    frac, null = pd.to_numeric(df[keys[0]]), pd.to_numeric(df[keys[1]])
    pct, k = pd.to_numeric(df[keys[2]]), pd.to_numeric(df[keys[3]])
    ratio = frac / null
    below = int((pct <= 5).sum())
    who = (f"all {len(df)} networks lie" if below == len(df) else
           f"{below} of the {len(df)} networks {'lies' if below == 1 else 'lie'}")
    where = ("below every one of the random vectors" if (pct <= 0).all() else "at or below the 5th percentile")
    lead = "The readout avoids the memory activity's main directions: " if below == len(df) else ""
    return (f"{lead}w puts {span(frac, '.2g', ' to ')} of |w|² in the "
            f"{span(k, '.0f', ' to ')} memory PCs that carry 90 % of the memory variance, {span(ratio, '.2g', ' to ')} "
            f"times what a random vector of the same norm puts there, against "
            f"1000 random vectors (percentiles {span(pct, '.1f', ' to ')}); {who} {where}. "
            "Holding a flat plateau asks this of any readout, so it is no separate finding: the memory covariance "
            "is taken within each trial, so w'Cw is the output's variance within the window (each network's PCA "
            "report gives it beside the variance between the durations' plateaus, which w must carry)."
            + coding_summary(df, cfg))


def coding_summary(df: pd.DataFrame, cfg) -> str:
    """How w lies to the direction along which each network's memory-window mean rate changes with the
    pulse's duration (readout_coding_cosine; readout_coding_cosine_untrained before training): the
    cosines, their ratio to a random direction's mean |cos|, how many reach p < 0.05 after
    Bonferroni's correction across the networks (exact two-sided p, alignment.cosine_null_p), why the
    task asks for it, and the share cos² of the squared separation a readout along w sees (' ' and the
    sentences; empty without the measure or the configuration, whose N and test pulses it names)."""
    if cfg is None or "readout_coding_cosine" not in df:
        return ""
    c = pd.to_numeric(df["readout_coding_cosine"]).dropna()
    if not len(c):
        return ""
    n_units = cfg.model.hidden_size
    chance = alignment.cosine_chance(n_units)
    p = np.array([alignment.cosine_null_p(v, n_units) for v in c])
    fitted = " and ".join(str(cfg.analysis.durations_ms[i]) for i in pca.coding_fit(cfg))
    aligned = int((p * len(c) < stats.ALPHA).sum())
    who = (f"all {len(c)} networks" if aligned == len(c) else "none of them" if not aligned
           else f"{aligned} of the {len(c)} networks")
    c0 = (pd.to_numeric(df["readout_coding_cosine_untrained"]).dropna()
          if "readout_coding_cosine_untrained" in df else pd.Series(dtype=float))
    beyond0 = int(sum(alignment.cosine_null_p(v, n_units) * len(c0) < stats.ALPHA for v in c0))
    before = ("" if not len(c0) else f" (before training {span(c0, '.2f', ' to ')}, the untrained w against the "
              f"untrained network's own direction; beyond chance in "
              f"{'none' if not beyond0 else 'all' if beyond0 == len(c0) else beyond0})")
    negative = int((c < 0).sum())
    if not negative:
        ratio = f"{span(c.abs() / chance, '.2g', ' to ')} times"
        task = ("An output that rises with the pulse's duration needs w off orthogonal to that direction, so this is no "
                "separate finding; what it adds is")
    else:
        ratio = f"|cos| {span(c.abs() / chance, '.2g', ' to ')} times"
        who_falls = "all of them" if negative == len(c) else f"{negative} of the {len(c)}"
        task = (f"An output that rises with the pulse's duration needs w·u > 0; in {who_falls} w·u < 0: the window's "
                f"mean output falls as the pulse lengthens, against what the task asks. What the cosine adds is")
    return (f" Against the direction along which each network's memory-window mean rate changes with the pulse's "
            f"duration (the least-squares slope over the {fitted} ms test pulses"
            f"{': with two, their difference' if len(pca.coding_fit(cfg)) == 2 else ''}), w lies at cosine "
            f"{span(c, '.2f', ' to ')}{before}, {ratio} a random direction's "
            f"mean |cos| of {chance:.3f}; significantly beyond chance in {who} (exact two-sided p < 0.05/{len(c)}, Bonferroni across "
            f"the networks). {task} how much of the separation along it a readout along w "
            f"sees: {span(100 * c * c, '.2g', ' to ')} % of its square.")


def _largest_rho(table: pd.DataFrame, labels: dict) -> str:
    """When nothing is claimed: which measure(s) ranked most closely with precision, said to be
    descriptive, with the sign read out (precision is an error: lower is better)."""
    rho = pd.to_numeric(table["rho"], errors="coerce") if len(table) else pd.Series(dtype=float)
    if not len(table) or table["significant"].any() or not rho.abs().max() > 0:
        return ""
    printed = rho.abs().round(2)
    top = table[printed >= printed.max()]  # ties at the printed precision are ties
    names = " and ".join(f"{labels.get(r.measure, r.measure).split(' (')[0]} (rho = {r.rho:+.2f}, p = {r.p:.2g}, "
                         f"adjusted {r.p_holm:.2g})" for r in top.itertuples())
    sign = ("larger values with more precise networks (a lower error)" if (top["rho"] < 0).all() else
            "larger values with less precise networks (a higher error)" if (top["rho"] > 0).all() else
            "opposite directions")
    tied = ", tied at two decimals," if len(top) > 1 else ""
    return f" The closest rank relationship is {names}{tied}: {sign}, which at this n is not evidence."


def _structure_of_G(main: pd.DataFrame, control: pd.DataFrame | None) -> str:
    """What G allows, said once when every network shares it (the memory period has no input and
    no feedback, so its flow is G's alone, whatever I and w are): its census and its spontaneous
    regime, one observation of the architecture, not one per seed ('' when G differs by seed or
    the census is missing)."""
    need = ("network_n_fixed_points", "network_n_stable_fixed_points", "network_regime")
    df = main if control is None or not len(control) else pd.concat([main, control], ignore_index=True)
    if not all(k in df for k in need) or not population.shares_G(df):
        return ""
    m = df.iloc[0]
    stable = int(m["network_n_stable_fixed_points"])
    n_pts, starts = int(m["network_n_fixed_points"]), int(m.get("network_census_starts") or 0)
    of = f"the {n_pts} fixed points of its census ({starts} starts)"
    found = f"none of {of} is stable" if stable == 0 else f"{stable} of {of} {'is' if stable == 1 else 'are'} stable"
    if "memory_n_stable_fixed_points" in df and "memory_n_fixed_points" in df:
        near = pd.to_numeric(df["memory_n_fixed_points"]).dropna()
        stable_near = int(pd.to_numeric(df["memory_n_stable_fixed_points"]).dropna().sum())
        if len(near):
            found += (f"; of the fixed points that searches started from each network's memory states reach "
                      f"({span(near, '.0f', ' to ')} per network), "
                      + ("none is stable" if stable_near == 0 else f"{stable_near} in all are stable"))
    kind = str(m["network_regime"])
    regime = (f"its spontaneous activity is a limit cycle ({cycle_evidence(m)})" if kind == "limit cycle" else
              {"chaos": "its spontaneous activity is chaotic", "fixed point": "its spontaneous activity comes to rest"}
              .get(kind, "its spontaneous regime is unresolved"))
    n = len(df)
    who = "The network here has its G" if n == 1 else f"All {n} networks here share one G"
    return (f"{who}, and in the memory period the state follows G's flow alone; {found}, and {regime} (one "
            f"observation of this G, not one per seed). ")


def _memory_span(main: pd.DataFrame, control: pd.DataFrame | None) -> str:
    """How long past the trained window the networks keep the memory: in the duration sweep, when the
    shortest-lived in-range plateau of each network leaves its 10 % band."""
    keys = ("sweep_hold_ms_in_range_min", "sweep_trained_window_ms")
    if not all(k in main for k in keys):
        return ""

    def held(df, key=keys[0]):
        return span(pd.to_numeric(df[key]) / 1000.0, ".2g", " to ") + " s"

    window = float(pd.to_numeric(main[keys[1]]).iloc[0])
    both = [main] + ([control] if control is not None and len(control) and all(k in control for k in keys) else [])
    ctl = f" (control: {held(control)})" if len(both) == 2 else ""
    median = ""
    if all("sweep_hold_ms_median" in df for df in both):
        ctl_med = f" (control: {held(control, 'sweep_hold_ms_median')})" if len(both) == 2 else ""
        median = f", and the median over all the sweep's pulses for {held(main, 'sweep_hold_ms_median')}{ctl_med}"
    capped = ""
    if "sweep_horizon_ms" in main:
        horizon = float(pd.to_numeric(main["sweep_horizon_ms"]).iloc[0])
        if any((pd.to_numeric(df[keys[0]]) >= horizon).any() for df in both):
            capped = f"; a plateau still on target at the sweep's end ({horizon / 1000:g} s) counts as leaving there"
    return (f" How long the memory lasts, in the duration sweep, from the cost onset, within a "
            f"{100 * HOLD_TOLERANCE:g} % band of the target until it first leaves it (0 s: outside it at the cost onset, "
            f"though it may enter it later): the shortest-lived in-range "
            f"plateau of each main network holds for {held(main)}{ctl}{median}, against a trained window of "
            f"{window / 1000:g} s{capped}.{_sign_kept(main, control)}")


def _sign_kept(main: pd.DataFrame, control: pd.DataFrame | None) -> str:
    """How many networks' in-range test outputs keep their target's sign to the end of the test run."""
    keys = ("plateau_sign_kept_ms_in_range_min", "plateau_run_ms")

    def kept(df):
        if df is None or not len(df) or not all(k in df for k in keys):
            return None
        first, run = pd.to_numeric(df[keys[0]]), pd.to_numeric(df[keys[1]])
        return int((first >= run).sum()), len(df), float(run.iloc[0])

    k = kept(main)
    if k is None:
        return ""
    c = kept(control)
    ctl = f" (control: {c[0]} of {c[1]})" if c else ""
    return (f" Their in-range test outputs keep the target's sign to the end of the test run "
            f"({k[2] / 1000:g} s after the cost onset) in {k[0]} of {k[1]} main networks{ctl}: the sign only, not "
            f"the size, as past its band an output may run far from its target.")


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


# -- statistics and dynamics ---------------------------------------------------------------------

def _fraction(p: float) -> str:
    """2/24 as 1/12: a small exact p as a fraction."""
    inv = 1.0 / p
    return f"1/{round(inv)}" if abs(inv - round(inv)) < 1e-9 else f"{p:.3g}"


def summary_sentence(table: pd.DataFrame, labels: dict | None = None, name_smallest: bool = True) -> str:
    """One plain-English sentence stating what a table from `against` (one target) supports: the
    relationships whose Holm-adjusted p is below stats.ALPHA; or, when none is, that none can be detected
    at this n (when even the smallest attainable p, adjusted, is not below stats.ALPHA), or the smallest
    adjusted p (named only when one measure has it, and name_smallest: the caller may name it itself)."""
    labels = labels or {}
    if len(table) == 0:
        return ("No measure could be compared with precision: a rank correlation needs at least 3 seeds with distinct "
                "values.")
    ns = sorted(set(table["n"]))
    n = f"n = {ns[0]}" if len(ns) == 1 else f"n = {ns[0]}–{ns[-1]}"
    hits = table[table["significant"]]
    m = len(table)
    if len(hits) == 0:
        if ns[-1] < 3:
            return f"At {n}, no relationship with precision can be tested: a rank correlation needs at least 3 seeds."
        if len(ns) == 1 and stats.exact(ns[0]) and min(1.0, m * stats.smallest_p(ns[0])) >= stats.ALPHA:
            p0 = stats.smallest_p(ns[0])
            return (f"At {n}, no relationship with precision can be detected: the smallest p any rho can reach is "
                    f"{_fraction(p0)}" + (f", {min(1.0, m * p0):.2g} after Holm's correction across the {m} tests"
                                          if m > 1 else "") + "; the table is descriptive.")
        ok = table[table["p_holm"].notna()]
        if not len(ok):
            return f"At {n}, no measure could be compared with precision (constant or missing values)."
        best = ok["p_holm"].min()
        tied = ok[np.isclose(ok["p_holm"], best)]
        if len(tied) == 1 and not name_smallest:
            tail = ""
        elif len(tied) == 1:
            b = tied.iloc[0]
            tail = (f" (the smallest adjusted p: {labels.get(b.measure, b.measure)}, rho = {b.rho:.2f}, p = {b.p:.3g}, "
                    f"adjusted {b.p_holm:.3g})")
        elif len(tied) == len(ok):
            tail = f" (every adjusted p is {best:.3g})"
        else:
            tail = f" (the smallest adjusted p, {best:.3g}, is shared by {len(tied)} measures)"
        return (f"At {n}, no relation of any measure to precision is detected after Holm's correction across the "
                f"{m} tests{tail}; this is not evidence that there is none.")
    parts = [f"{labels.get(r.measure, r.measure)} (rho = {r.rho:.2f}, adjusted p = {r.p_holm:.3g})"
             for r in hits.itertuples()]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return (f"At {n}, after Holm's correction across the {m} tests, related to precision: {listed}; "
            f"no other measure is.")


def fine_step_counts(m: dict, cfg) -> tuple[int, int, int]:
    """(n, held at the model's step, held at the fine step): the in-range test plateaus, and how many
    stay in their band through the trained window at each step."""
    window = cfg.trained_window_ms
    ds = [d for d in m["fine_step_hold_ms_by_duration"] if cfg.in_trained_range(int(d))]
    return (len(ds), sum(m["plateau_hold_ms_by_duration"][d] >= window for d in ds),
            sum(m["fine_step_hold_ms_by_duration"][d] >= window for d in ds))


def _percent(share: float) -> str:
    return f"{100 * share:.3g} %"


def fine_step_phrase(m: dict, cfg) -> str:
    """What the model's test plateaus do when simulated again at the finer step (analysis.stepsize)."""
    f, dt = m["fine_step_dt_ms"], cfg.model.dt_ms
    n, coarse, fine = fine_step_counts(m, cfg)
    e0, e1 = m.get("relative_error_trained_range"), m.get("fine_step_relative_error_trained_range")
    err = (f", and the in-range relative error is {_percent(e1)} (at {dt:g} ms: {_percent(e0)})"
           if e0 is not None and e1 is not None else "")
    text = (f"Trained with a {dt:g} ms Euler step, the network was simulated again with the paper's {f:g} ms step "
            f"(the same onsets and pulses in ms): {fine} of the {n} in-range plateaus stay within "
            f"{100 * HOLD_TOLERANCE:g} % of their target through the trained window (at {dt:g} ms: {coarse}){err}")
    if fine < coarse:
        text += (f". What holds at {dt:g} ms but not at {f:g} ms, a closer approximation of the continuous-time "
                 "network, rests on the coarse step's own errors")
    return text


def digits2(x: float) -> str:
    """x with two significant digits below 1, trailing zeros kept (0.70, and 1.0 for 0.996), and two
    decimals from 1 on (1.03, not 1)."""
    return f"{x:.2f}" if abs(x) >= 1 else f"{x:#.2g}"


def sig2_span(values) -> str:
    """The smallest and largest value at two significant digits, trailing zeros kept and no bare point
    (0.40 to 12, not 0.4 to 12.); one value where both print the same."""
    lo, hi = (f"{v:#.2g}".rstrip(".") for v in (min(values), max(values)))
    return lo if lo == hi else f"{lo} to {hi}"


def lyapunov_halfwidth(se_per_s: float | None, blocks: int | None, spread_per_s: float | None = None) -> float | None:
    """analysis.dynamics.lyapunov_halfwidth (the rule of G's spontaneous exponent too) of a metrics
    record's numbers, None where the exponent has no standard error."""
    if se_per_s is None or not blocks or not np.isfinite(se_per_s):
        return None
    return dynamics.lyapunov_halfwidth(se_per_s, blocks, spread_per_s or 0.0)


#: blocks shorter than this many times the lag after which the log growth decorrelates leave
#: neighbouring blocks correlated enough that the reports say the interval may be too narrow
BLOCKS_PER_LAG = 2


def blocks_phrase(blocks: int, block_ms: float, decorrelation_ms: float) -> str:
    """The blocks of an exponent's window against the lag after which its log growth per step first
    decorrelates (analysis.dynamics.decorrelation_steps): '3 blocks of 833 ms, at least 3.3× the 250 ms
    after which ...' (the ratio rounded down), or 'not longer than' that lag."""
    said = f"{blocks} blocks of {block_ms:.0f} ms"
    lag = f"the {decorrelation_ms:.0f} ms after which the log growth per step first decorrelates"
    if block_ms > decorrelation_ms:
        r = block_ms / decorrelation_ms  # rounded down: never more than it is
        times = f"{math.floor(10 * r) / 10:.1f}" if r < 10 else f"{math.floor(r):d}"
        return f"{said}, at least {times}× {lag}"
    return f"{said}, not longer than {lag}"


def blocks_caveat(block_ms: float, decorrelation_ms: float) -> str:
    """'; ... may be too narrow' where the blocks are shorter than BLOCKS_PER_LAG times the lag after
    which the log growth decorrelates; '' otherwise."""
    if block_ms >= BLOCKS_PER_LAG * decorrelation_ms:
        return ""
    return (f"; blocks shorter than {BLOCKS_PER_LAG}× that lag are correlated neighbours, so the interval may be "
            f"too narrow")


def lyapunov_phrase(per_s: float, se_per_s: float | None, blocks: int | None, spread_per_s: float | None = None,
                    block_ms: float | None = None, decorrelation_ms: float | None = None) -> str:
    """What a finite-time Lyapunov exponent says, given its standard error from `blocks` blocks (of
    block_ms each, against decorrelation_ms: blocks_phrase, where both are given) and the farthest
    distance of other starting vectors' values (lyapunov_halfwidth): within its 95 % interval of zero,
    neither separation nor convergence is resolved over the window; beyond, its sign."""
    half = lyapunov_halfwidth(se_per_s, blocks, spread_per_s)
    band = ""
    if half is not None:
        widened = (f", widened by the {spread_per_s:.2g} /s by which other starting tangent vectors' values differ "
                   f"from it at most"
                   if spread_per_s is not None else "")
        timed = bool(block_ms and decorrelation_ms)
        of = blocks_phrase(blocks, block_ms, decorrelation_ms) if timed else f"{blocks} blocks of the window"
        caveat = blocks_caveat(block_ms, decorrelation_ms) if timed else ""
        band = f" (± {digits2(half)} /s, a 95 % interval from {of}{widened}{caveat})"
    if half is not None and abs(per_s) <= half:
        return f"not distinguishable from zero{band}: neither separation nor convergence is resolved over this window"
    if per_s > 0:
        return f"positive{band}: nearby trajectories separate"
    return f"negative{band}: nearby trajectories converge"


def memory_exponents_summary(df: pd.DataFrame, cfg) -> str:
    """The in-range memory exponents of the run's networks (df: store.table rows, lyapunov_<d>ms with
    lyapunov_se_<d>ms, lyapunov_spread_<d>ms and lyapunov_lag_<d>ms, and lyapunov_in_range_per_s with
    lyapunov_in_range_halfwidth_per_s): how many 95 % intervals (lyapunov_halfwidth) exclude 0, how far the
    starting vectors spread, and in how many trials the blocks are short against the lag (blocks_caveat);
    how many networks' in-range means have an interval that excludes 0; then their sign across the
    networks, one value per network (the in-range mean) in an exact two-sided sign test, said of G's flow
    where they share G (' ' and the sentences; '' without the columns)."""
    ds = [d for d in cfg.analysis.durations_ms if cfg.in_trained_range(d) and f"lyapunov_{d}ms" in df]
    if not ds or "lyapunov_blocks" not in df:
        return ""
    window_ms = cfg.memory_window_ms
    lam, half, spread, short = [], [], [], 0
    for _, row in df.iterrows():
        for d in ds:
            h = lyapunov_halfwidth(row.get(f"lyapunov_se_{d}ms"), row.get("lyapunov_blocks"), row.get(f"lyapunov_spread_{d}ms"))
            if h is not None and np.isfinite(row[f"lyapunov_{d}ms"]):
                lam.append(float(row[f"lyapunov_{d}ms"]))
                half.append(h)
                spread.append(float(row.get(f"lyapunov_spread_{d}ms") or 0.0))
                lag = row.get(f"lyapunov_lag_{d}ms")
                short += bool(lag is not None and np.isfinite(lag)
                              and blocks_caveat(window_ms / row["lyapunov_blocks"], lag))
    n = len(lam)
    if not n:
        return ""
    lam, half = np.array(lam), np.array(half)
    beyond = np.abs(lam) > half
    k = int(beyond.sum())
    which = (f" ({int((lam[beyond] > 0).sum())} positive, {int((lam[beyond] < 0).sum())} negative)" if k else "")
    text = (f" In this run {'none' if not k else k} of the {n} in-range memory exponents "
            f"{'has a 95 % interval' if not k else 'have 95 % intervals'} that exclude{'s' if not k else ''} 0{which}; "
            f"the intervals are wide (half-widths {sig2_span(half)} /s), widened by how far other starting "
            f"tangent vectors land, up to {ceil_sig(max(spread)):.2g} /s")
    if short:
        text += (f", and {short} of the {n} may be too narrow: their blocks are shorter than {BLOCKS_PER_LAG}× the "
                 f"lag after which the log growth decorrelates")
    text += "."
    if "lyapunov_in_range_per_s" not in df:
        return text
    mean = pd.to_numeric(df["lyapunov_in_range_per_s"], errors="coerce").dropna()
    if "lyapunov_in_range_halfwidth_per_s" in df:
        mhalf = pd.to_numeric(df["lyapunov_in_range_halfwidth_per_s"], errors="coerce").reindex(mean.index)
        known = mhalf.notna()
        if known.any():
            k = int((mean[known].abs() > mhalf[known]).sum())
            how = ("its interval the mean of its trials' half-widths, at least 95 % whatever their correlation")
            text += (f" Averaged over its in-range trials ({how}), none of the {int(known.sum())} networks' "
                     f"exponents has an interval that excludes 0: one by one, no network's sign is resolved." if not k else
                     f" Averaged over its in-range trials ({how}), a network's exponent has an interval that "
                     f"excludes 0 in {k} of the {int(known.sum())} networks.")
    if len(mean) < 2:
        return text
    from scipy.stats import binomtest  # imported here, as the population statistics import scipy.stats

    pos, neg = int((mean > 0).sum()), int((mean < 0).sum())
    p = float(binomtest(pos, pos + neg, 0.5).pvalue) if pos + neg else 1.0
    whose = ("G's flow along the memory trajectories that training on it gives (all these networks share this one "
             "G, so the test says nothing of other draws of G)" if population.shares_G(df) else "these networks")
    if p < stats.ALPHA:
        sign = "positive" if pos > neg else "negative"
        return (text + f" Together they have a sign: the in-range mean is {sign} in {max(pos, neg)} of the "
                f"{len(mean)} networks (median {mean.median():+.2g} /s; exact two-sided sign test p = {p:.2g}), a "
                f"property of {whose} over a {window_ms / 1000:g} s window, not of any one network.")
    return (text + f" Together no sign dominates: the in-range mean is positive in {pos} and negative in {neg} of the "
            f"{len(mean)} networks (exact two-sided sign test p = {p:.2g}).")


def regime_phrase(r: regime.Regime) -> str:
    """What a trajectory settles into, in a few words: 'a limit cycle of period 3.79 s (returns within
    0.72 %)', 'chaos (largest Lyapunov exponent ...)', 'fixed point' or 'unresolved (why)'."""
    if r.kind == "limit cycle":
        return f"a limit cycle of period {r.period_ms / 1000:.3g} s (returns within {ceil_sig(100 * r.return_error):.2g} %)"
    if r.kind == "chaos":
        return f"chaos (largest Lyapunov exponent {r.lyapunov_per_s:.2g} ± {r.lyapunov_halfwidth_per_s:.2g} /s)"
    return r.kind if r.kind == "fixed point" else f"unresolved ({r.why})"


def spontaneous_phrase(m: dict) -> str:
    """What G's spontaneous activity settles into, with its largest Lyapunov exponent and how that
    was measured, from a network's metrics (analysis.network.NetworkAnalysis.metrics)."""
    lam, half = m["network_lyapunov_spontaneous_per_s"], m["network_lyapunov_spontaneous_halfwidth_per_s"]
    blocks, window_ms = m["network_lyapunov_spontaneous_blocks"], m["network_lyapunov_spontaneous_window_ms"]
    lag, block_ms = m["network_lyapunov_spontaneous_decorrelation_ms"], window_ms / blocks
    of = blocks_phrase(blocks, block_ms, lag)
    how = (f"95 % interval from {of}, of a {window_ms / 1000:g} s window after a "
           f"{m['network_lyapunov_spontaneous_transient_ms'] / 1000:g} s transient, widened by the spread over "
           f"{m['network_lyapunov_spontaneous_vectors']} starting tangent vectors, "
           f"{m['network_lyapunov_spontaneous_spread_per_s']:.1g} /s{blocks_caveat(block_ms, lag)}")
    exp = f"largest Lyapunov exponent {lam:.2g} ± {half:.2g} /s ({how})"
    kind = m["network_regime"]
    if kind == "limit cycle":
        return f"a limit cycle ({cycle_evidence(m)}); {exp}"
    if kind == "chaos":
        return f"chaotic: {exp}"
    if kind == "fixed point":
        return f"at rest at a fixed point; {exp}"
    return f"not classified over the window (no return, and no exponent above 0 with its interval); {exp}"


def census_phrase(m: dict) -> str:
    """The fixed-point census of G in one sentence: how many points, pairs, stable ones, from how
    many starts, and how complete it looks."""
    n, pairs, stable = m["network_n_fixed_points"], m["network_n_fixed_pairs"], m["network_n_stable_fixed_points"]
    once, new = m["network_census_found_once"], m["network_census_new_in_second_half"]
    stab = "none of them stable" if stable == 0 else f"{stable} of them stable"
    more = ("more surely remain" if once or new else "no sign of more")
    return (f"{count(n, 'fixed point')} of G's flow ({pairs - 1} mirror pairs ±h and the origin; {stab}), "
            f"found from {m['network_census_starts']} starting states; {once} of the {pairs} (pairs and origin) were reached from one start "
            f"only and {new} only by the second half of the starts: {more}")


#: how far an initial I-w cosine may lie from 1 and still be the original's draw (rounding of float32 weights)
INIT_COSINE_TOL = 1e-6


def beside_original(dist: pd.DataFrame, init_cosines: pd.Series, source: dict, labels: dict) -> str:
    """What matches between this run's main seeds and the original's published table, and what can
    only match in distribution, with the numbers (analysis.published.distributions, init_cosines)."""
    table = source.get("table", {})
    src = (f"the original's published table ({source.get('repository', '?')}, commit "
           f"{str(source.get('commit', '?'))[:12]}, `{table.get('path', '?')}`)")
    dev = (init_cosines - 1.0).abs()
    n_init = int(dev.notna().sum())
    off = int((dev > INIT_COSINE_TOL).sum())
    init = (f"The initial weights are the original's draw, in which I and w come from one random stream "
            f"(I = √N·w), so the I–w cosine starts at 1 by construction: it does, within {ceil_sig(float(dev.max())):.1e}, for all "
            f"{n_init} seeds." if n_init and not off else
            f"The initial weights should be the original's draw, with an I–w cosine of 1 at initialisation, but "
            f"{off} of {n_init} seeds lie more than {INIT_COSINE_TOL:g} from 1." if n_init else
            "The initial I–w cosine is not in this run's metrics.")
    parts = [f"This run's {count(int(dist.n_sysa.max()), 'main seed')} beside {src}. {init} The original drew its "
             "training trials unseeded, so a trained seed cannot reproduce its published row exactly: the two are "
             "compared as samples, and seed by seed, since the shared initial draw can make a seed's value follow "
             "its published one."]
    for r in dist.itertuples():
        name = labels.get(r.measure, r.measure)
        name = name[:1].upper() + name[1:]
        ranges = (f"sysa {r.sysa_median:.3g} (median; range {r.sysa_min:.3g}–{r.sysa_max:.3g}), the original "
                  f"{r.published_median:.3g} ({r.published_min:.3g}–{r.published_max:.3g})")
        if not r.tested:
            parts.append(f"{name}: {ranges}; not tested ({r.why_untested}).")
            continue
        verdict = ("the two differ" if r.p_holm < stats.ALPHA else
                   "no difference is detected at these n, which does not show that there is none")
        parts.append(f"{name}: {ranges}; Mann-Whitney p = {r.p:.2g}{' (exact)' if r.exact else ''}, Holm "
                     f"p = {r.p_holm:.2g}: {verdict}.{_seed_by_seed(r)}")
    return " ".join(parts)


def original_line(dist: pd.DataFrame, labels: dict) -> str:
    """The answer's line on the original's published table (analysis.published.distributions): per
    tested measure the two medians, the exact test's verdict and the seed-by-seed rank correlation."""
    parts = []
    for r in dist.itertuples():
        if not r.tested:
            continue
        verdict = "they differ" if r.p_holm < stats.ALPHA else "no difference detected"
        part = (f"{labels.get(r.measure, r.measure)}: median {r.sysa_median:.3g} against {r.published_median:.3g} "
                f"(Mann–Whitney p = {r.p:.2g}{', exact' if r.exact else ''}, Holm {r.p_holm:.2g}: {verdict})")
        if np.isfinite(r.rho_paired):
            n = int(r.n_paired)
            part += (f", seed by seed Spearman rho = {r.rho_paired:.2f} "
                     f"({stats.p_text(r.p_paired_holm, n, 'Holm p', r.p_paired)})")
        parts.append(part)
    if not parts:
        return "No measure of the original's published table could be compared with this run."
    n = int(dist.n_sysa.max())
    return (f"Beside the original's published table ({count(n, 'main seed')}): " + "; ".join(parts)
            + ". A test that detects no difference does not show that there is none; the population report "
              "compares every seed.")


def _seed_by_seed(r) -> str:
    """The seed-by-seed comparison of one measure beside the original (a row of
    analysis.published.distributions): Spearman's rho over the seeds in both, and what it says."""
    if not np.isfinite(r.rho_paired):
        return f" Seed by seed ({count(int(r.n_paired), 'seed')} in both): no rank correlation can be computed."
    how = "exact" if r.exact_paired else f"{stats.N_RESAMPLES:,} seeded permutations"
    said = ("sysa's seeds follow their published rows" if r.p_paired_holm < stats.ALPHA and r.rho_paired > 0 else
            "sysa's seeds run against their published rows" if r.p_paired_holm < stats.ALPHA else
            "no seed-by-seed relation is detected")
    n = int(r.n_paired)
    return (f" Seed by seed ({count(n, 'seed')} in both): Spearman rho = {r.rho_paired:.2f}, "
            f"{stats.p_text(r.p_paired, n)} ({how}), {stats.p_text(r.p_paired_holm, n, 'Holm p', r.p_paired)}: {said}.")
