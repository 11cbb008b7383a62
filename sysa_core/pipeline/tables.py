"""Formatted tables the notebooks show: per-model numbers from analysis.metrics, with units in
the column names and a sensible number of digits (pandas Stylers that render as plain HTML)."""
from __future__ import annotations

import pandas as pd

from ..analysis import alignment
from ..analysis.pca import ratios_of_coefficients


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


def precision(m: dict, cfg):
    """Precision loss per test duration, trained and untrained, with the trained range marked."""
    by, un = m["precision_by_duration"], m.get("precision_untrained_by_duration", {})
    rows = [{"duration (ms)": int(d), "in trained range": cfg.in_trained_range(int(d)),
             "precision loss (MSE, a.u.²)": v, "untrained (MSE, a.u.²)": un.get(d),
             "untrained / trained": (un[d] / v) if d in un and v > 0 else None}
            for d, v in by.items()]
    rows.append({"duration (ms)": "mean (the original's precision)", "in trained range": None,
                 "precision loss (MSE, a.u.²)": m["precision"], "untrained (MSE, a.u.²)": m.get("precision_untrained"),
                 "untrained / trained": (m["precision_untrained"] / m["precision"])
                 if m.get("precision_untrained") and m["precision"] > 0 else None})
    for key, label in (("precision_trained_range", "mean inside the trained range"),
                       ("precision_extrapolation", "mean outside (extrapolation)")):
        if m.get(key) is not None:
            rows.append({"duration (ms)": label, "in trained range": None, "precision loss (MSE, a.u.²)": m[key],
                         "untrained (MSE, a.u.²)": None, "untrained / trained": None})
    return _style(pd.DataFrame(rows).set_index("duration (ms)"))


def participation(m: dict, coef_I, coef_w):
    """Participation ratios of I on the spontaneous PCs and w on the memory PCs (l1, l2 and the
    original's sign-dependent formula), with the activity dimensionality."""
    rows = {}
    for name, coef, dim_key in (("I on spontaneous PCs", coef_I, "dim_spontaneous"),
                                ("w on memory PCs", coef_w, "dim_memory")):
        r = ratios_of_coefficients(coef)
        rows[name] = {"l1 (PCs)": r["l1"], "l2 (PCs)": r["l2"], "original's signed formula": r["signed"],
                      "activity dimensionality (PCs)": m[dim_key]}
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
            rows[f"{name}: share of |v|² in top-k {L} %"] = {"float32": m[f"{v}_topk{L}_fraction"], "float64": None,
                                                           "relative spread": m[f"{v}_topk{L}_fraction_spread"]}
        rows[f"{name}: variance alignment"] = {"float32": m[f"{v}_var_alignment"], "float64": None,
                                               "relative spread": m[f"{v}_var_alignment_spread"]}
    return _style(pd.DataFrame(rows).T, digits=3)


def dynamics(m: dict):
    """The slow points and Lyapunov exponents of the memory period."""
    rows = {
        "slow points found": m["n_slow_points"],
        "of which fixed points (q below tolerance)": m["n_fixed_points"],
        "slow modes (> 1 s) per point, median": m["n_slow_modes"],
        "unstable modes per point, median": m["n_unstable_modes"],
        "slowest stable time constant at a fixed point (ms)": m["slowest_time_constant_ms"],
        "smallest q (h² / tau²)": m["slow_point_min_q"],
        "fastest slow point speed (h / s)": m["slow_point_max_speed_per_s"],
        "largest Lyapunov exponent (1/s)": m["lyapunov_max_per_s"],
    }
    return _style(pd.DataFrame({"value": rows}), digits=4)
