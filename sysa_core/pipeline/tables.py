"""Formatted tables the notebooks show: per-model numbers from analysis.metrics, with units in
the column names and a sensible number of digits (pandas Stylers that render as plain HTML)."""
from __future__ import annotations

from html import escape

import numpy as np
import pandas as pd
from IPython.display import HTML

from ..analysis import alignment, stats
from ..analysis.pca import ratios_of_coefficients
from ..analysis.mechanism import NOISE_DRAWS
from ..analysis.plateau import HOLD_TOLERANCE, in_band_fraction
from .prose import BLOCKS_PER_LAG, blocks_caveat, digits2, lyapunov_halfwidth, sensitivity


def _style(df: pd.DataFrame, digits: int = 4):
    """A Styler with `digits` significant digits for floats, '–' for missing values."""
    def fmt(v):
        if v is None or (isinstance(v, float) and v != v):
            return "–"
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, float):
            return f"{v:.{digits}g}"
        return str(v)
    return df.style.format(fmt)


def collapsed(styler, summary: str) -> HTML:
    """A table folded under a one-line summary (an HTML <details>), for tables a reader opens on demand."""
    return HTML(f"<details><summary>{escape(summary)}</summary>{styler.to_html()}</details>")


def precision(m: dict, cfg):
    """Precision loss per test duration, trained and untrained, with the trained range marked."""
    by, un = m["precision_by_duration"], m.get("precision_untrained_by_duration", {})
    rel = m.get("relative_error_by_duration") or {}
    rows = [{"duration (ms)": int(d), "in trained range": cfg.in_trained_range(int(d)),
             "precision loss (MSE, a.u.²)": v, "relative error (RMS / target)": rel.get(d),
             "untrained (MSE, a.u.²)": un.get(d),
             "untrained / trained": (un[d] / v) if d in un and v > 0 else None}
            for d, v in by.items()]
    rows.append({"duration (ms)": "mean (the original's precision)", "in trained range": None,
                 "precision loss (MSE, a.u.²)": m["precision"], "untrained (MSE, a.u.²)": m.get("precision_untrained"),
                 "untrained / trained": (m["precision_untrained"] / m["precision"])
                 if m.get("precision_untrained") and m["precision"] > 0 else None})
    for key, label in (("precision_trained_range", "inside the trained range (MSE: mean; relative error: root mean square)"),
                       ("precision_extrapolation", "mean outside (extrapolation)")):
        if m.get(key) is not None:
            u = m.get(key.replace("precision_", "precision_untrained_"))
            ratio = m.get("improvement_over_untrained") if key == "precision_trained_range" else u / m[key] if u and m[key] > 0 else None
            rows.append({"duration (ms)": label, "in trained range": None, "precision loss (MSE, a.u.²)": m[key],
                         "relative error (RMS / target)": m.get("relative_error_trained_range")
                         if key == "precision_trained_range" else None,
                         "untrained (MSE, a.u.²)": u, "untrained / trained": ratio})
    return _style(pd.DataFrame(rows).set_index("duration (ms)"))


def participation(m: dict, coef_I, coef_w):
    """Participation ratios of I on the spontaneous PCs and w on the memory PCs (l1, l2 and the
    original's sign-dependent formula), with the activity dimensionality, and the ratios of a random
    direction (alignment.participation_chance: their median and the range of the middle 95 %)."""
    rows = {}
    for name, coef, dim_key in (("I on spontaneous PCs", coef_I, "dim_spontaneous"),
                                ("w on memory PCs", coef_w, "dim_memory")):
        r = ratios_of_coefficients(coef)
        rows[name] = {"l1 (PCs)": r["l1"], "l2 (PCs)": r["l2"], "original's signed formula": r["signed"],
                      "activity dimensionality (PCs)": m[dim_key]}
    rows[f"a random direction (median [middle 95 %] of {alignment.N_NULL})"] = {
        f"{k} (PCs)": f"{med:.4g} [{lo:.4g}–{hi:.4g}]" for k, (med, lo, hi) in alignment.participation_chance(len(coef_I)).items()}
    return _style(pd.DataFrame(rows).T)


def alignment_table(m: dict):
    """Top-k fractions and the variance alignment of I and w with their nulls (1000 random
    vectors of the same norm): the value, the null mean and the percentile among the nulls."""
    rows = {}
    for v, name in (("input", "I on spontaneous PCs"), ("output", "w on memory PCs")):
        row = {}
        for level in alignment.LEVELS:
            L = alignment.level_key(level)
            row[(f"top-k {L} %", "k (PCs)")] = m[f"{v}_topk{L}_k"]
            row[(f"top-k {L} %", "share of |v|²")] = m[f"{v}_topk{L}_fraction"]
            row[(f"top-k {L} %", "null mean")] = m[f"{v}_topk{L}_null_mean"]
            row[(f"top-k {L} %", "null percentile")] = m[f"{v}_topk{L}_null_pct"]
        row[("variance alignment", "value (0..1)")] = m[f"{v}_var_alignment"]
        row[("variance alignment", "null mean")] = m[f"{v}_var_alignment_null_mean"]
        row[("variance alignment", "null percentile")] = m[f"{v}_var_alignment_null_pct"]
        rows[name] = row
    return _style(pd.DataFrame(rows).T, digits=3)


def dtype_spread(m: dict):
    """Each measure from the float32 and the float64 simulation of the same model, and their
    relative spread |x32 - x64| / |x64|."""
    rows = {}
    for v, name in (("input", "I"), ("output", "w")):
        for pr in ("l1", "l2"):
            rows[f"{name}: participation ratio {pr}"] = {
                "float32": m[f"pr_{v}_{pr}"], "float64": m[f"pr_{v}_{pr}_f64"], "relative spread": m[f"pr_{v}_{pr}_spread"]}
        for level in alignment.LEVELS:
            L = alignment.level_key(level)
            rows[f"{name}: share of |v|² in top-k {L} %"] = {
                "float32": m[f"{v}_topk{L}_fraction"], "float64": m.get(f"{v}_topk{L}_fraction_f64"),
                "relative spread": m[f"{v}_topk{L}_fraction_spread"]}
        rows[f"{name}: variance alignment"] = {"float32": m[f"{v}_var_alignment"], "float64": m.get(f"{v}_var_alignment_f64"),
                                               "relative spread": m[f"{v}_var_alignment_spread"]}
    return _style(pd.DataFrame(rows).T, digits=3)


def points(records: list[dict], found_from: list[str] | None = None, mirror=None):
    """The fixed and moving points (analysis.dynamics.Points.records): speed, and the modes of the
    fixed points (time constants only there: a moving state has none); where each was found and
    its mirror point -h, when given."""
    rows = []
    for i, r in enumerate(records, 1):
        rows.append({"point": i, "kind": "fixed" if r["fixed"] else "moving",
                     "speed |F|/τ (h units per s)": r["speed_per_s"], "|h| (h units)": r["norm"],
                     "growing modes": r.get("n_growth_modes"), "decaying modes": r.get("n_decay_modes"),
                     "marginal modes": r.get("n_marginal_modes"),
                     "slowest decay (ms)": r.get("slowest_decay_ms"), "fastest growth (ms)": r.get("fastest_growth_ms")})
        if mirror is not None:
            j = int(mirror[i - 1])
            rows[-1]["mirror −h"] = "itself (the origin)" if j == i - 1 else ("–" if j < 0 else f"point {j + 1}")
        if found_from is not None:
            rows[-1]["found from"] = found_from[i - 1]
    return _style(pd.DataFrame(rows).set_index("point"), digits=3)


def census(records: list[dict]):
    """G's fixed points (analysis.census.Census.records), one row per mirror pair (the origin alone):
    |h|, unstable modes, the slowest decay and the fastest growth, and how many starts reached it."""
    rows, seen = [], set()
    for r in records:
        if r["pair"] in seen:
            continue
        seen.add(r["pair"])
        rows.append({"|h| (h units)": r["norm"], "points": "the origin" if r["norm"] == 0 else "±h (a mirror pair)",
                     "unstable modes": r["n_unstable"], "slowest decay (ms)": r["slowest_decay_ms"],
                     "fastest growth (ms)": r["fastest_growth_ms"], "starts that reached it": r["found"]})
    df = pd.DataFrame(rows)
    df.index = pd.RangeIndex(1, len(df) + 1, name="pair")
    return _style(df, digits=3)


def hold(m: dict, cfg, A=None):
    """How long each test plateau stays within 10 % of its target after the cost onset, whether it
    keeps its target's sign to the end of the test run, and its drift; with the test trials' arrays A
    (eval_*), also the share of the trained window the output spends inside that band
    (plateau.in_band_fraction), which it may enter after the cost onset."""
    sign = m.get("plateau_sign_kept_ms_by_duration") or {}
    run = m.get("plateau_run_ms")

    def kept(d):
        v = sign.get(d)
        if v is None or run is None:
            return "–"
        return "to the run's end" if v >= run else f"flips {v:g} ms after cost onset"

    rows = [{"duration (ms)": int(d), "in trained range": cfg.in_trained_range(int(d)),
             "on target for (ms after cost onset)": m["plateau_hold_ms_by_duration"][d],
             "through the trained window": m["plateau_hold_ms_by_duration"][d] >= cfg.trained_window_ms,
             "sign of the target kept": kept(d),
             "drift (a.u. per s)": m["plateau_drift_per_s_by_duration"][d]}
            for d in m["plateau_hold_ms_by_duration"]]
    if A is not None:
        t = np.asarray(A["eval_t_ms"])
        onset = cfg.task.cost_onset_ms
        window = (t >= onset) & (t < onset + cfg.trained_window_ms)
        share = dict(zip((str(int(d)) for d in A["eval_durations_ms"]),
                         in_band_fraction(np.asarray(A["eval_y"])[:, window], np.asarray(A["eval_target"])[:, window])))
        for r in rows:
            r["share of the trained window inside the band"] = float(share[str(r["duration (ms)"])])
    return _style(pd.DataFrame(rows).set_index("duration (ms)"))


def fine_step(m: dict, cfg):
    """Each test plateau at the model's own step and at the finer one (analysis.stepsize): its mean
    over the trained window, its relative error, and how long it stays in its band (capped at the
    window's end, as the check measures it)."""
    f = m["fine_step_dt_ms"]
    dt, window = cfg.model.dt_ms, cfg.trained_window_ms
    rel, hold, mean = m["relative_error_by_duration"], m["plateau_hold_ms_by_duration"], \
        m["fine_step_trained_step_plateau_by_duration"]
    capped = f"ms after cost onset; {window:g} = the whole window"
    rows = [{"duration (ms)": int(d), "in trained range": cfg.in_trained_range(int(d)),
             "target (a.u.)": cfg.task.thresh * int(d),
             f"mean at {dt:g} ms (a.u.)": mean[d], f"mean at {f:g} ms (a.u.)": m["fine_step_plateau_by_duration"][d],
             f"relative error at {dt:g} ms (RMS / target)": rel[d],
             f"relative error at {f:g} ms (RMS / target)": m["fine_step_relative_error_by_duration"][d],
             f"on target at {dt:g} ms ({capped})": min(hold[d], window),
             f"on target at {f:g} ms ({capped})": m["fine_step_hold_ms_by_duration"][d]}
            for d in m["fine_step_relative_error_by_duration"]]
    return _style(pd.DataFrame(rows).set_index("duration (ms)"))


def _lyapunov_half(m: dict, d: str) -> float:
    """The half-width of the 95 % interval of the memory exponent of duration d (prose.lyapunov_halfwidth)."""
    return lyapunov_halfwidth(m["lyapunov_se_per_s_by_duration"][d], m["lyapunov_blocks"],
                              m["lyapunov_start_spread_per_s_by_duration"][d])


def _lyapunov_value(m: dict, d: str, block_ms: float | None) -> str:
    """'0.797 ± 0.70', with ' (may be too narrow: blocks under 2× the 683 ms lag)' where the blocks are
    shorter than prose.BLOCKS_PER_LAG times the lag after which the exponent's log growth decorrelates."""
    text = f"{m['lyapunov_per_s_by_duration'][d]:.3g} ± {digits2(_lyapunov_half(m, d))}"
    lag = (m.get("lyapunov_decorrelation_ms_by_duration") or {}).get(d)
    if block_ms is not None and lag is not None and blocks_caveat(block_ms, lag):
        text += f" (may be too narrow: blocks under {BLOCKS_PER_LAG}× the {lag:.0f} ms lag)"
    return text


def mechanism(m: dict, cfg=None):
    """The measures that say how the plateau is held, and the verdict of the rule; with the
    configuration cfg, each memory exponent whose blocks are short against its lag says so."""
    block_ms = cfg.memory_window_ms / m["lyapunov_blocks"] if cfg is not None and m.get("lyapunov_blocks") else None
    rows = {
        "mechanism (rule: analysis.mechanism)": m["memory_mechanism"],
        "in-range precision, × better than untrained": m.get("improvement_over_untrained"),
        "relative state speed |dh/dt| / |h| in the memory window (1/s)": m["plateau_state_speed_per_s"],
        "path the state travels during the hold, in units of |h|": m["state_travel"],
        f"PCs the readout needs to reproduce the output (within {100 * HOLD_TOLERANCE:g} % of the target at every step)":
            m["readout_pcs_needed"],
        **{f"finite-time Lyapunov exponent along the {d} ms memory trajectory (1/s, ± its 95 % interval, widened by "
           f"how far other starting vectors land)": _lyapunov_value(m, d, block_ms)
           for d in m["lyapunov_per_s_by_duration"]},
        **{f"in-range precision with state noise σ = {k.split('_')[-1]} (MSE, a.u.²; s.d. σ·√(dt/τ) per step, σ in h units; "
           f"mean of {NOISE_DRAWS} seeded draws per duration)": m[k] for k in m if k.startswith("precision_noise_")},
        "in-range precision without noise (MSE, a.u.²)": m["precision_trained_range"],
    }
    return _style(pd.DataFrame({"value": rows}), digits=3)


def seeds(both: pd.DataFrame):
    """One row per network of the population: convergence, hold, the precisions, the cosine, the
    mechanism."""
    cols = {"ensemble": "ensemble", "seed": "seed", "converged": "converged",
            "plateau_held_trained_window": "holds: in-range test pulses (share)",
            "sweep_held_in_range": "holds: in-range sweep pulses (share)",
            "precision_trained_range": "in-range precision (MSE, a.u.²)",
            "precision_extrapolation": "extrapolation (MSE, a.u.²)", "precision": "precision (MSE, a.u.²)",
            "weight_correlation_init": "I–w cos at init", "weight_correlation": "I–w cos",
            "memory_mechanism": "mechanism"}
    df = both[[c for c in cols if c in both]].rename(columns=cols).set_index(["ensemble", "seed"])
    return _style(df, digits=3)


def statistics(table: pd.DataFrame, labels: dict, pooled: bool = False):
    """The tests of analysis.stats.against (one target): rho, permutation p, Holm-adjusted p, the
    interval where one is shown; the caption says the ensemble, n and where the p comes from.
    pooled: the table tests both ensembles together, the ensemble a covariate (pool_by)."""
    n = int(table["n"].max()) if len(table) else 0
    if pooled:
        caption = (f"Both ensembles pooled, n = {n}: each measure against in-range precision (partial Spearman, the "
                   f"ensemble a covariate: ranks centred within each ensemble); p from permutations of precision "
                   f"within each ensemble (every one while there are at most 50,000, else 50,000 seeded); Holm's "
                   f"adjustment across the {len(table)} tests; no interval")
    else:
        source = ("every pairing (exact)" if len(table) and table["exact"].all()
                  else "50,000 seeded permutations (Monte Carlo)")
        caption = (f"Main ensemble, n = {n}: each measure against in-range precision (Spearman); p from {source}, "
                   f"Holm's adjustment across the {len(table)} tests")
    return _style(_statistics_frame(table, labels), digits=3).set_caption(caption)


def _statistics_frame(table: pd.DataFrame, labels: dict) -> pd.DataFrame:
    df = pd.DataFrame({
        "measure": [labels.get(m, m) for m in table["measure"]], "n": table["n"], "rho": table["rho"],
        "p": table["p"], "p (Holm)": table["p_holm"], "95 % interval": [
            "–" if not np.isfinite(lo) else f"[{lo:.2f}, {hi:.2f}]" for lo, hi in zip(table["ci_low"], table["ci_high"])],
        "claimed": table["significant"]})
    return df.set_index("measure")


def ensemble_tests(tests: pd.DataFrame, labels: dict):
    """The two ensembles compared (analysis.stats.compare_groups): medians, U, exact p, Holm."""
    df = pd.DataFrame({
        "measure": [labels.get(m, m) for m in tests["measure"]],
        "main: median": tests["median_a"], "control: median": tests["median_b"],
        "n (main, control)": [f"{a}, {b}" for a, b in zip(tests["n_a"], tests["n_b"])],
        "P(main seed's value > control seed's)": tests["prob_greater"], "U": tests["U"], "p": tests["p"],
        "p (Holm)": tests["p_holm"], "claimed": tests["significant"]})
    exact = bool(tests["exact"].all()) if len(tests) else True
    return _style(df.set_index("measure"), digits=3).set_caption(
        f"Main against control (Mann-Whitney, two-sided; p from {'every split of the seeds (exact)' if exact else '50,000 seeded permutations'}, "
        f"Holm's adjustment across the {len(tests)} comparisons)")


def power(p: dict) -> None:
    """What a table of this size could detect, as a sentence."""
    from IPython.display import Markdown, display

    reach = sensitivity(p)
    display(Markdown(f"{reach[:1].upper()}{reach[1:]}. Detecting rho = 0.5 with 80 % power takes about "
                     f"{p['seeds_for_0.5']} seeds for a "
                     f"single test and {p['seeds_for_0.5_holm']} at the Bonferroni level α/m (Holm's correction at its strictest) across these "
                     f"{p['tests']} tests (Fisher's z, variance 1.06 / (n − 3))."))


def mechanisms(both: pd.DataFrame):
    """How each network holds its plateau, with the evidence."""
    cols = {"ensemble": "ensemble", "seed": "seed", "memory_mechanism": "mechanism",
            "plateau_state_speed_per_s": "state speed |dh/dt|/|h| (1/s)",
            "readout_pcs_needed": "PCs the readout needs",
            "lyapunov_in_range_per_s": "finite-time Lyapunov exp. over the in-range trials ± 95 % (1/s)",
            "precision_trained_range": "in-range precision (MSE, a.u.²)", "precision_noise_0.01": "noise σ 0.01 (MSE, a.u.²)",
            "precision_noise_0.03": "noise σ 0.03 (MSE, a.u.²)", "precision_noise_0.1": "noise σ 0.1 (MSE, a.u.²)"}
    df = both[[c for c in cols if c in both]]
    if "lyapunov_in_range_per_s" in df and "lyapunov_in_range_halfwidth_per_s" in both:
        df = df.assign(lyapunov_in_range_per_s=[
            None if not np.isfinite(lam) else f"{lam:+.2f} ± {half:.2f}" if np.isfinite(half) else f"{lam:+.2f}"
            for lam, half in zip(pd.to_numeric(both["lyapunov_in_range_per_s"], errors="coerce"),
                                 pd.to_numeric(both["lyapunov_in_range_halfwidth_per_s"], errors="coerce"))])
    df = df.rename(columns=cols).set_index(["ensemble", "seed"])
    return _style(df, digits=3).set_caption(
        "The finite-time Lyapunov exponent: the mean of the memory trials' exponents over the in-range durations, "
        "± the mean of their 95 % half-widths (an interval at least 95 % whatever the trials' correlation; each "
        "seed's report gives every trial's). State noise: independent Gaussian noise of s.d. σ·√(dt/τ) added to "
        "every unit's h at every step (σ in units of h, so that it means the same at any dt); the noise columns "
        "give the in-range precision under it.")


def network_measures(df: pd.DataFrame):
    """The network measures per seed (seeds with a G each)."""
    cols = {"seed": "seed", "network_dim_spontaneous": "spontaneous dimensionality (PCs)",
            "network_lyapunov_spontaneous_per_s": "spontaneous finite-time Lyapunov exp. (1/s)",
            "network_regime": "spontaneous regime", "network_n_fixed_points": "fixed points (census)"}
    return _style(df[[c for c in cols if c in df]].rename(columns=cols).set_index("seed"), digits=3)


#: the published table's measures as the reports name them, with their units
PUBLISHED_LABELS = {"precision": "precision (MSE, a.u.²)", "weight_correlation": "I–w cosine",
                    "I_participation_ratio": "participation ratio of I", "w_participation_ratio": "participation ratio of w"}


def beside_original(dist: pd.DataFrame):
    """Each published measure beside this run's (analysis.published.distributions): n, median and
    range of each sample, and the exact two-sample test where the two are the same quantity."""
    def spread(prefix, r):
        return f"{getattr(r, prefix + '_median'):.3g} [{getattr(r, prefix + '_min'):.3g}, {getattr(r, prefix + '_max'):.3g}]"

    rows = [{"measure": PUBLISHED_LABELS.get(r.measure, r.measure), "n (sysa, original)": f"{r.n_sysa}, {r.n_published}",
             "sysa: median [range]": spread("sysa", r), "original: median [range]": spread("published", r),
             "P(sysa seed's value > original's)": r.prob_greater if r.tested else None,
             "p": r.p if r.tested else None, "p (Holm)": r.p_holm if r.tested else None,
             "seed by seed: Spearman rho": r.rho_paired if r.tested else None,
             "seed by seed: p (Holm)": r.p_paired_holm if r.tested else None,
             "not tested because": r.why_untested or "–"} for r in dist.itertuples()]
    tested = dist.tested.astype(bool)
    exact = bool(dist.loc[tested, "exact"].all()) if tested.any() else True
    n_pair = int(dist.n_paired.max()) if len(dist) else 0
    exact_pair = bool(dist.loc[tested, "exact_paired"].fillna(False).all()) if tested.any() else True
    return _style(pd.DataFrame(rows).set_index("measure"), digits=3).set_caption(
        "sysa's main seeds against the original's published table (Mann-Whitney, two-sided; p from "
        f"{'every split of the seeds (exact)' if exact else 'the exact null distribution of U or 50,000 seeded permutations'}"
        f"; seed by seed: Spearman's rho over the {n_pair} seeds in both, two-sided permutation p "
        f"({'exact' if exact_pair else f'{stats.N_RESAMPLES:,} seeded permutations'}); Holm's adjustment across the "
        f"{int(tested.sum())} tested measures, per test)")


def published_rows(sbs: pd.DataFrame):
    """Seed by seed: each published value beside sysa's (analysis.published.side_by_side)."""
    cols = {}
    for m, label in PUBLISHED_LABELS.items():
        cols[f"{m}_published"] = f"{label}: original"
        cols[f"{m}_sysa"] = f"{label}: sysa"
    return _style(sbs.set_index("seed").rename(columns=cols), digits=4)
