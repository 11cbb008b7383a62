"""Figures of a population of seeds (analysis.population): every measure against precision, the
statistics, the plateau curves and the error over time across seeds, the overlap of the memory
subspaces, the two ensembles side by side, and the overview the index shows. Fitted lines stay
within the data's range and the measure's possible values; every axis carries its unit."""
from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
from matplotlib.transforms import Bbox

from ..analysis import stats
from ..analysis.plateau import HOLD_TOLERANCE
from .plots import plt, shade_trained

ENSEMBLE_COLOURS = {"main": "C0", "control": "C1"}
#: fitted lines are drawn from this many seeds on (below, a line through a handful of points says
#: more than the data)
MIN_N_LINE = 8


def _colour(ens: str) -> str:
    return ENSEMBLE_COLOURS.get(ens, "C2")


def _seaborn():
    """seaborn, imported when a population figure is first drawn: with scipy.stats, which it imports,
    about half a second of CPU that the processes which only run a seed's notebooks never need."""
    import seaborn

    return seaborn


def _stripplot(**kw):
    """seaborn.stripplot with its jitter drawn from a fixed seed, so the same data always give the same
    figure (seaborn draws jitter from numpy's global random state, which is restored afterwards)."""
    state = np.random.get_state()
    np.random.seed(0)
    try:
        return _seaborn().stripplot(**kw)
    finally:
        np.random.set_state(state)


def performance_original(table: pd.DataFrame):
    """The original's figure: every metric against precision on one axis."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for col, lab in (("weight_correlation", "I–w cosine"), ("pr_input_l1", "PR of I (l1)"),
                     ("pr_output_l1", "PR of w (l1)")):
        ax.scatter(table["precision"], table[col], label=lab, s=18)
    ax.set(xlabel="the original's precision (MSE, a.u.², lower is better)", ylabel="value of each measure (its own unit)",
           title="sys_A_performance (the original's layout; main ensemble)")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def _theil_sen(ax, x: np.ndarray, y: np.ndarray, bounds, colour) -> None:
    """A Theil-Sen line of y on log10(x), over the data's x range, clipped to the measure's bounds."""
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0:
        return
    lx = np.log10(x[ok])
    from scipy.stats import theilslopes  # imported here, as seaborn is (_seaborn)

    slope, icpt, _, _ = theilslopes(y[ok], lx)
    xs = np.linspace(lx.min(), lx.max(), 50)
    ys = icpt + slope * xs
    lo, hi = bounds
    ys = np.clip(ys, -np.inf if lo is None else lo, np.inf if hi is None else hi)
    ax.plot(10 ** xs, ys, color=colour, lw=1, alpha=0.8)


def _integer_ticks(ax, values) -> None:
    """Integer ticks on the y axis when the values are counts."""
    from matplotlib.ticker import MaxNLocator

    v = pd.to_numeric(pd.Series(list(values)), errors="coerce").dropna()
    if len(v) and np.allclose(v, np.round(v)):
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def predictor_panels(df: pd.DataFrame, table: pd.DataFrame, labels: dict, bounds: dict,
                     target: str = "precision_trained_range", ncols: int = 4):
    """Each predictor against in-range precision, one panel each, seeds numbered where the numbers fit
    (_seed_numbers; both ensembles drawn; the test and its Theil-Sen line, from MIN_N_LINE seeds on,
    are the main ensemble's); the title gives rho, its permutation p and the Holm-adjusted p of that test."""
    cols = list(labels)
    nrows = int(np.ceil(len(cols) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 3.2 * nrows), squeeze=False)
    ens = df["ensemble"] if "ensemble" in df else pd.Series(["main"] * len(df))
    n_main = int((ens == "main").sum())
    numbered = []  # (axes, x, y, seed, colour) of every drawn point, numbered once the layout is fixed
    for ax, col in zip(axes.flat, cols):
        for name in dict.fromkeys(ens):
            sub = df[ens == name]
            x = pd.to_numeric(sub[target], errors="coerce").to_numpy(float)
            y = pd.to_numeric(sub[col], errors="coerce").to_numpy(float)
            ax.scatter(x, y, s=MARKER_AREA, color=_colour(name), label=name, zorder=3)
            numbered += [(ax, xi, yi, int(s), _colour(name)) for xi, yi, s in zip(x, y, sub["seed"])
                         if np.isfinite(xi) and np.isfinite(yi)]
            if name == "main" and n_main >= MIN_N_LINE:
                _theil_sen(ax, x, y, bounds.get(col, (None, None)), _colour(name))
        row = table[(table.measure == col) & (table.target == target)]
        stat = ""
        if len(row) and np.isfinite(row.rho.iloc[0]):
            r = row.iloc[0]
            stat = f"main: rho {r.rho:.2f}, {stats.p_text(r.p, r.n)}, {stats.p_text(r.p_holm, r.n, 'Holm', r.p)}"
        ax.set_xscale("log")
        _decade_ticks(ax, "x")
        ax.set(xlabel="in-range precision (MSE, a.u.²)")
        ax.set_ylabel(textwrap.fill(labels[col], 28), fontsize=9)
        _integer_ticks(ax, df[col])
        ax.set_title(stat, fontsize=9, pad=12)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(cols):]:
        ax.axis("off")
    if len(cols):
        axes.flat[0].legend(fontsize=7, loc="best")
    line = " and a Theil-Sen line within its data" if n_main >= MIN_N_LINE else f"; no line below {MIN_N_LINE} seeds"
    other = "; control seeds drawn, not tested" if (ens != "main").any() else ""
    fig.suptitle(f"Each measure against in-range precision (main ensemble, n = {n_main}: Spearman{line}{other}; "
                 f"seed numbers where they fit)", fontsize=10)
    fig.tight_layout()
    _seed_numbers(fig, numbered)
    return fig


#: the predictor panels' marker area (points²)
MARKER_AREA = 16

#: where a seed's number may sit beside its point (offset in points, horizontal alignment), in order
NUMBER_PLACES = (((3, 2), "left"), ((3, -9), "left"), ((-3, 2), "right"), ((-3, -9), "right"))


#: the clear space kept around a seed number, in pixels (two numbers that touch read as one)
NUMBER_GAP_PX = 3.0


def _seed_numbers(fig, points) -> None:
    """Each point's seed number, in its ensemble's colour, at the first of NUMBER_PLACES where it lies
    within its panel and keeps NUMBER_GAP_PX from every number already placed there and from every
    other point's marker; none where no place does (a cluster's numbers would overprint, run together
    into another number or hide under a marker; a number past the panel's edge would be cut off or run
    into the tick labels)."""
    renderer = fig.canvas.get_renderer()
    radius = np.sqrt(MARKER_AREA) / 2 * fig.dpi / 72  # pixels
    markers = [Bbox.from_extents(cx - radius, cy - radius, cx + radius, cy + radius)
               for cx, cy in (ax.transData.transform((x, y)) for ax, x, y, _, _ in points)]
    placed: dict = {}
    for i, (ax, x, y, seed, colour) in enumerate(points):
        boxes = placed.setdefault(ax, [])
        others = [m for j, m in enumerate(markers) if j != i and points[j][0] is ax]
        panel = ax.get_window_extent(renderer)
        for offset, ha in NUMBER_PLACES:
            text = ax.annotate(str(seed), (x, y), fontsize=8, xytext=offset, textcoords="offset points", ha=ha,
                               color=colour)
            extent = text.get_window_extent(renderer)
            box = extent.padded(NUMBER_GAP_PX / 2)  # two such boxes apart: the gap kept
            inside = (panel.x0 <= extent.x0 and extent.x1 <= panel.x1 and panel.y0 <= extent.y0 and extent.y1 <= panel.y1)
            if inside and not any(box.overlaps(b) for b in boxes + others):
                boxes.append(box)
                break
            text.remove()


def rho_table_plot(table: pd.DataFrame, labels: dict):
    """Spearman's rho of every test with its 95 % interval where one is shown; filled: significant
    after Holm's correction."""
    fig, ax = plt.subplots(figsize=(6.5, 0.32 * len(table) + 1.3))
    ys = np.arange(len(table))[::-1]
    for y, (_, r) in zip(ys, table.iterrows()):
        colour = "C3" if r["significant"] else "C0"
        if np.isfinite(r["ci_low"]):
            ax.plot([r["ci_low"], r["ci_high"]], [y, y], color=colour, lw=2)
        ax.plot(r["rho"], y, "o", color=colour, mfc=colour if r["significant"] else "white")
    ax.axvline(0, color="k", lw=1)
    ax.set_yticks(ys, [labels.get(m, m) for m in table["measure"]], fontsize=7)
    n = int(table["n"].max()) if len(table) else 0
    shown = bool(np.isfinite(table["ci_low"]).any()) if len(table) else False
    ax.set(xlim=(-1.15, 1.15), xlabel="Spearman's rho (dimensionless" + ("; bars: 95 % intervals)" if shown else
                                                                          "; no interval below 8 seeds)"),
           title=f"Measures against in-range precision (main ensemble, n = {n}; filled: claimed)")
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig


def correlation_heatmap(matrix: pd.DataFrame, title: str = "Spearman correlation between measures"):
    matrix = matrix.rename(index=lambda s: textwrap.fill(s, 30), columns=lambda s: textwrap.fill(s, 30))
    fig, ax = plt.subplots(figsize=(0.8 * len(matrix) + 4.5, 0.7 * len(matrix) + 3))
    shown = matrix.round(1) + 0.0  # a rho that rounds to 0 reads 0.0, not -0.0
    _seaborn().heatmap(matrix, vmin=-1, vmax=1, cmap="RdBu_r", annot=shown, fmt=".1f", annot_kws={"size": 9}, ax=ax,
                       square=True, cbar_kws={"shrink": 0.7, "label": "Spearman's rho (dimensionless)"})
    ax.tick_params(labelsize=8)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def overlap_heatmap(matrix: pd.DataFrame, k: int, n_units: int):
    """The overlap of every pair of seeds' k leading memory PCs, with the chance level of unrelated
    random subspaces, k / N."""
    fig, ax = plt.subplots(figsize=(0.45 * len(matrix) + 3, 0.42 * len(matrix) + 1.8))
    _seaborn().heatmap(matrix, vmin=0, vmax=1, cmap="viridis", annot=len(matrix) <= 12, fmt=".2f",
                       annot_kws={"size": 7}, ax=ax, square=True,
                       cbar_kws={"shrink": 0.7, "label": "mean cos² of the principal angles (dimensionless)"})
    ax.set_title(f"Overlap of the seeds' memory subspaces ({k} leading PCs; 1 = the same subspace, "
                 f"chance k/N = {k / n_units:.2g})", fontsize=max(9, min(14, 0.3 * len(matrix))))
    fig.tight_layout()
    return fig


def plateau_curves(curves: pd.DataFrame, trained_ms: tuple[float, float]):
    """The plateau against pulse duration across seeds: mean and range per ensemble, the target and
    the trained range (trained_ms: plots.shade_trained)."""
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    _plateau_axes(ax, curves, lambda ens, sub: f"{ens}: mean, range over {sub.seed.nunique()} seeds", trained_ms)
    ax.set(xlabel="pulse duration (ms)", ylabel="plateau (mean output, a.u.)", title="Duration → plateau across seeds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def _plateau_axes(ax, curves: pd.DataFrame, label, trained_ms: tuple[float, float]) -> None:
    """The trained range shaded (plots.shade_trained), the target (dashed), and per ensemble the mean
    plateau over the seeds with their range; label(ensemble, its rows) names each ensemble's line."""
    shade_trained(ax, trained_ms)
    first = curves[(curves["seed"] == curves["seed"].iloc[0]) & (curves["ensemble"] == curves["ensemble"].iloc[0])]
    ax.plot(first["duration_ms"], first["target"], "k--", lw=1, label="target")
    for ens, sub in curves.groupby("ensemble", sort=False):
        g = sub.groupby("duration_ms")["plateau"]
        d = np.array(list(g.groups))
        ax.fill_between(d, g.min(), g.max(), color=_colour(ens), alpha=0.2)
        ax.plot(d, g.mean(), color=_colour(ens), lw=1.5, label=label(ens, sub))


def error_over_time(err: pd.DataFrame, trained_end_s: float):
    """|output − target| / target of the in-range test trials against time since the pulse's onset,
    pooled over seeds and durations: median and interquartile range per ensemble."""
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    for ens, sub in err.groupby("ensemble", sort=False):
        g = sub.groupby("time_s")["rel_error"]
        t = np.array(list(g.groups))
        ax.fill_between(t, 100 * g.quantile(0.25), 100 * g.quantile(0.75), color=_colour(ens), alpha=0.2)
        ax.plot(t, 100 * g.median(), color=_colour(ens), lw=1.2, label=f"{ens}: median, IQR")
    ax.axvline(trained_end_s, color="k", ls=":", lw=1, label="end of trained window")
    ax.axhline(100 * HOLD_TOLERANCE, color="0.5", ls="--", lw=1, label=f"{100 * HOLD_TOLERANCE:g} % band")
    ax.set_yscale("log")
    ax.set(xlabel="time since the pulse's onset (s)", ylabel="|output − target| / target (%)",
           title="Error over time, pooled over seeds and in-range durations")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def ensemble_comparison(df: pd.DataFrame, columns: dict, tests: pd.DataFrame | None = None, log: tuple = ()):
    """Each measure per ensemble, every seed a point (no box: at a handful of seeds a box hides
    them), one panel per measure (log scale for those in `log`); the title gives the exact
    Mann-Whitney p of the comparison (stats.compare_groups) where tested."""
    n = len(columns)
    fig, axes = plt.subplots(1, n, figsize=(3.4 * n, 3.3), squeeze=False)
    for ax, (col, lab) in zip(axes[0], columns.items()):
        _stripplot(data=df, x="ensemble", y=col, ax=ax, size=6, jitter=0.12, hue="ensemble",
                   palette=ENSEMBLE_COLOURS, legend=False)
        for ens, sub in df.groupby("ensemble", sort=False):
            xi = list(dict.fromkeys(df["ensemble"])).index(ens)
            ax.plot([xi - 0.25, xi + 0.25], [sub[col].median()] * 2, color="k", lw=1.5, zorder=1)
        if col in log:
            ax.set_yscale("log")
        row = tests[tests.measure == col] if tests is not None else []
        if len(row):
            r = row.iloc[0]
            ax.set_title(f"Mann-Whitney p {r.p:.2g}{' (exact)' if r.exact else ''}, Holm {r.p_holm:.2g}", fontsize=8)
        ax.set(xlabel="", ylabel=lab)
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle("The two ensembles side by side (bars: medians)", fontsize=10)
    fig.tight_layout()
    return fig


def overview(both: pd.DataFrame, curves: pd.DataFrame, trained_ms: tuple[float, float], cfg=None):
    """The index's figure: in-range precision and the I–w cosine (at initialisation and trained) of
    every network of both ensembles, and the plateau against duration (trained_ms:
    plots.shade_trained). With the run's configuration `cfg`, its title names the profile and, for a
    configuration other than the paper's, that it is not the paper's networks (the figure is also
    a file of its own, population.png, which may travel without its page)."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    _stripplot(data=both, x="ensemble", y="precision_trained_range", hue="ensemble", palette=ENSEMBLE_COLOURS,
               ax=axes[0], size=6, legend=False)
    axes[0].set(yscale="log", xlabel="", ylabel="in-range MSE (a.u.², lower is better)",
                title="Precision inside the trained range")
    _decade_ticks(axes[0])
    long = pd.concat([both.assign(stage="initialisation", cos=both["weight_correlation_init"]),
                      both.assign(stage="trained", cos=both["weight_correlation"])])
    _stripplot(data=long, x="stage", y="cos", hue="ensemble", palette=ENSEMBLE_COLOURS, dodge=True, ax=axes[1],
               size=6)
    axes[1].set(xlabel="", ylabel="I–w cosine (dimensionless)", ylim=(-1.05, 1.05), title="I–w cosine")
    axes[1].legend(fontsize=7)
    _plateau_axes(axes[2], curves, lambda ens, sub: ens, trained_ms)
    axes[2].set(xlabel="pulse duration (ms)", ylabel="plateau (a.u.)", title="Duration → plateau (mean, range)")
    axes[2].legend(fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3)
    if cfg is not None:
        other = "" if cfg.miniature_text() is None else ": not the paper's networks, not comparable with the original's"
        fig.suptitle(f"System A, profile {cfg.profile}{other}", fontsize=10)
    fig.tight_layout()
    return fig


def _decade_ticks(ax, axis: str = "y") -> None:
    """Labels at 1, 2 and 5 of each decade on a log axis ("x" or "y"; written 2e-03), at each decade
    only where the axis is too short for those not to overlap, and none at the minor ticks, so that
    every point lies between labelled ticks that do not overlap."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    get_lim, set_lim = (ax.get_ylim, ax.set_ylim) if axis == "y" else (ax.get_xlim, ax.set_xlim)
    which = ax.yaxis if axis == "y" else ax.xaxis
    lo, hi = get_lim()
    subs = (1.0, 2.0, 5.0)
    if lo > 0 and hi > lo:  # widen to the labelled ticks around the data
        ticks = [m * 10.0 ** k for k in range(int(np.floor(np.log10(lo))) - 1, int(np.ceil(np.log10(hi))) + 1)
                 for m in subs]
        lo, hi = max(t for t in ticks if t <= lo) * 0.9, min(t for t in ticks if t >= hi) * 1.1
        set_lim(lo, hi)
        # the axis's length in inches (tight_layout shortens it by up to a fifth) against a label's extent
        # along it ("5e-03": five characters of about 0.6 em across, one line of about 1.2 em up)
        box = ax.get_position()
        length = 0.8 * (box.width * ax.figure.get_figwidth() if axis == "x" else box.height * ax.figure.get_figheight())
        em = FontProperties(size=plt.rcParams[f"{axis}tick.labelsize"]).get_size_in_points() / 72
        label = 1.2 * (5 * 0.6 * em if axis == "x" else 1.2 * em)  # with a fifth to spare
        per_decade = length / np.log10(hi / lo)
        if np.log10(2.0) * per_decade < label:  # 1 to 2 is the closest pair of 1, 2 and 5
            subs = (1.0,)
    which.set_major_locator(LogLocator(base=10, subs=subs))
    which.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0e}"))
    which.set_minor_formatter(NullFormatter())


def beside_original(published: dict, main: pd.DataFrame, measures: dict, labels: dict):
    """Each published measure against sysa's, every seed a point, one panel per measure (precision on
    a log scale), medians as bars. measures: {published column: (sysa metric, tested)} (analysis.published.MEASURES)."""
    n = len(measures)
    fig, axes = plt.subplots(1, n, figsize=(3.3 * n, 3.4), squeeze=False)
    for ax, (col, (metric, tested)) in zip(axes[0], measures.items()):
        df = pd.concat([pd.DataFrame({"source": "original", "value": [r[col] for r in published.values()]}),
                        pd.DataFrame({"source": "sysa", "value": pd.to_numeric(main[metric], errors="coerce")})])
        _stripplot(data=df, x="source", y="value", ax=ax, size=5, jitter=0.12, hue="source",
                   palette={"original": "0.45", "sysa": "C0"}, legend=False)
        for xi, src in enumerate(("original", "sysa")):
            ax.plot([xi - 0.25, xi + 0.25], [df.loc[df.source == src, "value"].median()] * 2, color="k", lw=1.5, zorder=1)
        if col == "precision":
            ax.set_yscale("log")
        ax.set(xlabel="", ylabel=labels.get(col, col) + ("" if col == "precision" else " (no unit)"))
        ax.set_title("tested" if tested else "ranges only: not the same formula", fontsize=8)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle("sysa's main seeds beside the original's published table (bars: medians)", fontsize=10)
    fig.tight_layout()
    return fig
