"""sysa_core.population_plots: every population figure, drawn from the session's smoke run (both
ensembles), has a unit on every labelled axis; fitted lines stay within the data and the
measure's possible values."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.transforms import Bbox
from test_plots import assert_units

from sysa_core import config
from sysa_core.analysis import population
from sysa_core.pipeline import plots, store
from sysa_core.pipeline import population_plots as pp


@pytest.fixture(scope="module")
def pop(smoke_run):
    runs = store.runs({"main": (smoke_run, [1, 2]), "control": (smoke_run / "control", [1, 2])})
    both = population.combine({"main": store.table(smoke_run),
                               "control": store.table(smoke_run / "control")})
    t, _ = population.statistics(both[both.ensemble == "main"])
    return both, runs, t


def test_every_population_figure_has_units(pop):
    both, runs, t = pop
    cfg = config.resolve("smoke")
    labels = {**population.PREDICTORS, **population.NETWORK_MEASURES}
    curves = population.plateau_curves(runs)
    figs = [pp.performance_original(both), pp.rho_table_plot(t, labels),
            pp.predictor_panels(both, t, {k: labels[k] for k in population.predictors(both)}, population.BOUNDS),
            pp.plateau_curves(curves, cfg.trained_span_ms),
            pp.error_over_time(population.error_over_time(runs, cfg), 0.45),
            pp.ensemble_comparison(both, {"precision": "precision (MSE, a.u.²)"}),
            pp.overview(both, curves, cfg.trained_span_ms)]
    for fig in figs:
        assert_units(fig)


def test_fitted_lines_stay_within_the_data_and_the_possible_values_and_need_8_seeds():
    x = np.geomspace(1e-3, 8e-3, 8)
    df = pd.DataFrame({"seed": range(1, 9), "precision_trained_range": x,
                       "weight_correlation": [0.5, 0.8, 0.95, 0.99, 0.995, 0.997, 0.998, 0.999], "ensemble": ["main"] * 8})
    t = pd.DataFrame({"measure": ["weight_correlation"], "target": ["precision_trained_range"], "n": [8],
                      "rho": [1.0], "p": [2 / 40320], "p_holm": [2 / 40320]})
    fig = pp.predictor_panels(df, t, {"weight_correlation": "I–w cosine"}, {"weight_correlation": (-1, 1)})
    (line,) = fig.axes[0].get_lines()
    lx, ly = line.get_data()
    assert lx.min() >= 1e-3 * (1 - 1e-9) and lx.max() <= 8e-3 * (1 + 1e-9)
    assert ly.max() <= 1.0 and ly.min() >= -1.0
    plots.plt.close(fig)
    fig = pp.predictor_panels(df.head(4), t, {"weight_correlation": "I–w cosine"}, {"weight_correlation": (-1, 1)})
    assert not fig.axes[0].get_lines()  # no line through 4 points
    plots.plt.close(fig)


@pytest.mark.parametrize("lo, hi", [(1.2e-3, 6e-3), (5.5e-4, 1.9e-2), (2e-6, 3e-1)])
def test_the_precision_axis_labels_do_not_overlap(lo, hi):
    """Precisions within a decade (1.2e-3 to 6e-3: 1, 2 and 5 of it labelled), over 1.5 decades (as the
    shipped study's) and over five: the labelled ticks around the data do not overlap, and the minor
    ticks are unlabelled."""
    x = np.geomspace(lo, hi, 8)
    df = pd.DataFrame({"seed": range(1, 9), "precision_trained_range": x, "weight_correlation": np.linspace(0.8, 0.9, 8),
                       "ensemble": ["main"] * 8})
    t = pd.DataFrame({"measure": ["weight_correlation"], "target": ["precision_trained_range"], "n": [8],
                      "rho": [1.0], "p": [2 / 40320], "p_holm": [2 / 40320]})
    fig = pp.predictor_panels(df, t, {"weight_correlation": "I–w cosine"}, {"weight_correlation": (-1, 1)})
    fig.canvas.draw()
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    labelled = [lab for lab in ax.get_xticklabels(minor=False) + ax.get_xticklabels(minor=True)
                if lab.get_visible() and lab.get_text() and ax.get_xlim()[0] <= lab.get_position()[0] <= ax.get_xlim()[1]]
    boxes = [lab.get_window_extent(renderer) for lab in labelled]
    assert len(boxes) >= 2  # the data lie between labelled ticks
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:]), [lab.get_text() for lab in labelled]
    assert not any(lab.get_text() for lab in ax.get_xticklabels(minor=True))
    if hi / lo < 10:
        assert {"2e-03", "5e-03"} <= {lab.get_text() for lab in labelled}
    plots.plt.close(fig)


def _shaded(fig) -> list[tuple[float, float]]:
    """The x extent of every span labelled "trained range" in a figure."""
    return [(float(p.get_x()), float(p.get_x() + p.get_width()))
            for ax in fig.axes for p in ax.patches if p.get_label() == "trained range"]


def test_the_trained_range_is_shaded_from_the_shortest_to_the_longest_pulse_training_draws(pop):
    """The paper draws 50-249 ms pulses; its sweep's in-range durations end at 240 ms. The shading
    covers what training draws, in the model's figure, the population's and the index's."""
    both, runs, _ = pop
    cfg = config.resolve("paper")
    span = cfg.trained_span_ms
    assert span == (50.0, 249.0) and cfg.trained_range_text == "50–249 ms"
    d = np.arange(10.0, 410.0, 10.0)
    arrays = {"gen_durations_ms": d, "gen_in_range": (d >= 50) & (d < 250), "gen_target": 0.007 * d,
              "gen_plateau": 0.007 * d, "gen_hold_ms": np.full(d.shape, 2500.0), "gen_horizon_ms": np.array(10000.0),
              "gen_trained_window_ms": np.array(2500.0)}
    curves = population.plateau_curves(runs)
    assert _shaded(plots.generalisation(arrays, span)) == [span, span]
    assert _shaded(pp.plateau_curves(curves, span)) == [span]
    assert _shaded(pp.overview(both, curves, span)) == [span]
    assert pp.overview(both, curves, span)._suptitle is None  # without the configuration, no title
    assert pp.overview(both, curves, span, cfg)._suptitle.get_text() == "System A, profile paper"
    quick = config.resolve("quick")
    assert (pp.overview(both, curves, quick.trained_span_ms, quick)._suptitle.get_text()
            == "System A, profile quick: not the paper's networks, not comparable with the original's")
    # the smoke profile's: 20-99 ms, what its training draws (its test pulses are 30, 60 and 100 ms)
    assert _shaded(pp.plateau_curves(curves, config.resolve("smoke").trained_span_ms)) == [(20.0, 99.0)]


def test_the_correlation_heatmap_writes_a_rho_that_rounds_to_zero_as_0_0():
    m = pd.DataFrame([[1.0, -0.04, 0.36], [-0.04, 1.0, -0.52], [0.36, -0.52, 1.0]],
                     index=list("abc"), columns=list("abc"))
    fig = pp.correlation_heatmap(m)
    texts = sorted(t.get_text() for t in fig.axes[0].texts)
    assert texts == sorted(["1.0"] * 3 + ["0.0"] * 2 + ["0.4"] * 2 + ["-0.5"] * 2)
    assert_units(fig)
    plots.plt.close(fig)


@pytest.mark.parametrize("n", [4, 40])
def test_the_overlap_heatmaps_title_grows_with_the_figure(n):
    """Forty seeds make a figure five times as wide as four: the title grows with it, to a cap."""
    m = pd.DataFrame(np.eye(n), index=[f"main {i}" for i in range(1, n + 1)], columns=[f"main {i}" for i in range(1, n + 1)])
    fig = pp.overlap_heatmap(m, 3, 500)
    size = fig.axes[0].title.get_fontsize()
    assert size == (9 if n == 4 else 12) and "chance k/N = 0.006" in fig.axes[0].get_title()
    assert_units(fig)
    plots.plt.close(fig)


def _numbered_panel(x, y, seeds=None):
    """The predictor panel of I–w cosine against in-range precision for main seeds `seeds` (default
    1, 2, ...) at (x, y), drawn: (figure, its axes, its renderer)."""
    seeds = list(range(1, len(x) + 1)) if seeds is None else seeds
    df = pd.DataFrame({"seed": seeds, "precision_trained_range": x, "weight_correlation": y, "ensemble": ["main"] * len(x)})
    t = pd.DataFrame({"measure": ["weight_correlation"], "target": ["precision_trained_range"], "n": [len(x)],
                      "rho": [0.1], "p": [0.7], "p_holm": [0.7]})
    fig = pp.predictor_panels(df, t, {"weight_correlation": "I–w cosine (dimensionless)"}, {"weight_correlation": (-1, 1)})
    fig.canvas.draw()
    return fig, fig.axes[0], fig.canvas.get_renderer()


def _marker_box(fig, ax, x, y):
    """The display box of the panel's marker at data point (x, y)."""
    cx, cy = ax.transData.transform((x, y))
    r = np.sqrt(pp.MARKER_AREA) / 2 * fig.dpi / 72
    return Bbox.from_extents(cx - r, cy - r, cx + r, cy + r)


def test_seed_numbers_never_overprint_and_every_isolated_point_is_numbered():
    """Twelve seeds, five of them in one cluster: no two numbers overlap once drawn, and none lies
    under another point's marker; the seven apart are all numbered; the cluster loses some of its
    numbers rather than overprint them."""
    rng = np.random.default_rng(7)
    apart = np.geomspace(1e-3, 3e-2, 7)
    x = np.concatenate([apart, 4e-3 * (1 + 0.01 * rng.standard_normal(5))])
    y = np.concatenate([np.linspace(0.1, 0.9, 7)[::-1], 0.5 + 0.002 * rng.standard_normal(5)])
    fig, ax, renderer = _numbered_panel(x, y)
    numbers = [tx for tx in ax.texts if tx.get_text().isdigit()]
    boxes = [tx.get_window_extent(renderer).padded(pp.NUMBER_GAP_PX / 2) for tx in numbers]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])  # apart, not only not over
    for tx in numbers:  # nor under another point's marker
        text = tx.get_window_extent(renderer)
        for xi, yi in zip(x, y):
            if (xi, yi) != tuple(tx.xy):
                assert not text.overlaps(_marker_box(fig, ax, xi, yi)), tx.get_text()
    shown = {int(tx.get_text()) for tx in numbers}
    assert set(range(1, 8)) <= shown and len(shown & set(range(8, 13))) < 5
    assert "seed numbers where they fit" in fig._suptitle.get_text()
    plots.plt.close(fig)


def test_seed_numbers_stay_inside_their_panel_and_a_corner_point_is_numbered():
    """A point in each corner of the panel: every number lies within the panel (none cut off or over
    the tick labels), and the corner points are numbered all the same."""
    fig, ax, renderer = _numbered_panel([1e-3, 1e-3, 3e-2, 3e-2, 5e-3], [0.1, 0.9, 0.1, 0.9, 0.5], [11, 12, 13, 14, 15])
    panel = ax.get_window_extent(renderer)
    numbers = {int(tx.get_text()): tx.get_window_extent(renderer) for tx in ax.texts if tx.get_text().isdigit()}
    assert set(numbers) == {11, 12, 13, 14, 15}
    for box in numbers.values():
        assert panel.x0 <= box.x0 and box.x1 <= panel.x1 and panel.y0 <= box.y0 and box.y1 <= panel.y1
    plots.plt.close(fig)


def test_a_seed_number_moves_off_a_marker_that_sits_where_it_would_go():
    """A point placed exactly where another point's number goes first: that number takes its next
    place, clear of the marker, rather than hide under it."""
    x, y = [1e-3, 3e-2, 5e-3], [0.1, 0.9, 0.5]  # two corners fix the limits; seed 3 in the middle
    fig, ax, renderer = _numbered_panel(x, y)
    first = next(tx for tx in ax.texts if tx.get_text() == "3").get_window_extent(renderer)
    bx, by = ax.transData.inverted().transform(((first.x0 + first.x1) / 2, (first.y0 + first.y1) / 2))
    plots.plt.close(fig)
    fig, ax, renderer = _numbered_panel(x + [bx], y + [by])  # seed 4's marker where seed 3's number was
    number = next(tx for tx in ax.texts if tx.get_text() == "3").get_window_extent(renderer)
    assert not number.overlaps(_marker_box(fig, ax, bx, by))
    plots.plt.close(fig)
