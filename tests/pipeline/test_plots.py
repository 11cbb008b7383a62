"""sysa_core.plots: every figure of one model, drawn from a real analysis, has a unit on every
labelled axis, and alt text made from its titles; `show` puts it in a notebook with that text."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sysa_core import config, files
from sysa_core.pipeline import plots, store


def assert_units(fig):
    """Every axis label names its unit in parentheses (categorical axes carry no label)."""
    for ax in fig.axes:
        for label in (ax.get_xlabel(), ax.get_ylabel(), getattr(ax, "get_zlabel", lambda: "")()):
            if label:
                assert "(" in label and ")" in label, f"no unit in {label!r}"
    plots.plt.close(fig)


@pytest.fixture(scope="module")
def seed1(smoke_run):
    d = smoke_run / "seed_1"
    with np.load(files.arrays_path(d)) as z:
        arrays = {k: z[k] for k in z.files}
    return json.loads(files.metrics_path(d).read_text()), arrays, files.load_checkpoint(d / "sys_A1_state.pth")


def test_every_figure_of_a_model_has_units(seed1, smoke_run):
    m, A, ck = seed1
    cfg = config.resolve("smoke", seed=1)
    meta = json.loads((smoke_run / "seed_1" / "sys_A1_train.json").read_text())["history"]
    sd = ck["state_dict"]
    figs = [plots.loss_history(meta["loss"], "seed 1", meta["monitor_step"], meta["monitor_loss"]),
            plots.grad_norm_history(meta["grad_norm_I"], meta["grad_norm_w"], "seed 1"),
            plots.evaluation(A, "test", cfg.task.Nt_ms), plots.weights(sd, sd), plots.generalisation(A, cfg.trained_span_ms),
            plots.spectrum({"a": A["spont_eigvals"]}), plots.loadings(A["mem_coef_w"], "w", "memory-period"),
            plots.phase_trajectories(A, cfg.analysis.durations_ms, cfg.model.dt_ms),
            plots.fixed_point_spectra(store.load_network(smoke_run, m["network_key"]).points)]
    for fig in figs:
        assert_units(fig)


def test_the_trajectory_legend_keys_each_phases_line_style(seed1):
    """The phases are told apart by line style alone: the legend shows each style with its phase, beside
    the durations' colours, and stays clear of the 3-D panel."""
    m, A, _ = seed1
    cfg = config.resolve("smoke", seed=1)
    fig = plots.phase_trajectories(A, cfg.analysis.durations_ms, cfg.model.dt_ms)
    fig.canvas.draw()
    legend = fig.legends[0]
    keyed = {t.get_text(): h for t, h in zip(legend.get_texts(), legend.legend_handles)}
    assert [f"{d} ms" in keyed for d in cfg.analysis.durations_ms] == [True] * len(cfg.analysis.durations_ms)
    styles = {k: (keyed[k].get_linestyle(), keyed[k].get_linewidth())
              for k in ("input (the pulse)", "intrinsic (after it)", "memory window")}
    assert len(set(styles.values())) == 3
    renderer = fig.canvas.get_renderer()
    assert not legend.get_window_extent(renderer).overlaps(fig.axes[2].get_tightbbox(renderer))
    plots.plt.close(fig)


@pytest.mark.parametrize("n_points", [10, 85])
def test_the_fixed_point_numbers_do_not_overlap(n_points):
    """Ten fixed points: each numbered, with its count of growing modes; 85 (as many as a 500-unit G's
    census and its memory searches find): every k-th, k the fewest that keeps the labels apart, and the
    axis says so."""
    from sysa_core.analysis import dynamics

    rng = np.random.default_rng(n_points)
    n = 20
    h = rng.normal(size=(n_points, n)) * np.linspace(1, 5, n_points)[:, None]
    eig = rng.normal(size=(n_points, n)) + 1j * rng.normal(size=(n_points, n))
    pts = dynamics.Points(h=h, q=np.zeros(n_points), start_index=np.arange(n_points), eigvals=eig, tau_ms=100.0,
                          q_fixed=1e-18, zero_tol=1e-9)
    fig = plots.fixed_point_spectra(pts)
    fig.canvas.draw()
    ax = fig.axes[1]
    renderer = fig.canvas.get_renderer()
    labels = [lab for lab in ax.get_xticklabels() if lab.get_text()]
    every = int(np.ceil(n_points / plots.MAX_POINT_LABELS))
    assert len(labels) == len(range(0, n_points, every)) == len(ax.texts)
    boxes = [lab.get_window_extent(renderer) for lab in labels]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    assert ("every 4th" in ax.get_xlabel()) == (n_points == 85) and (every == 4) == (n_points == 85)
    assert "its mirror" not in ax.get_xlabel()  # no mirror pairs given
    plots.plt.close(fig)
    assert [plots.ordinal(k) for k in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st"]


def test_the_loss_figure_shows_the_convergence_window_and_its_verdict():
    """Two monitor points or more: a second panel with the window's trend and the recorded verdict
    (a loss falling linearly by 0.2 over a window whose mean is 1.0: 20 %, not converged); fewer:
    the loss history alone."""
    steps = list(range(800, 1001, 20))  # the last 20 % of 1000 steps
    fig = plots.loss_history(np.linspace(1.0, 0.5, 1000), "seed 1", steps, [1.1 - 0.2 * (s - 800) / 200 for s in steps])
    assert len(fig.axes) == 2 and "the trend falls 20.0 %\nof the window's mean, not converged" in fig.axes[1].get_title()
    assert_units(fig)
    plots.plt.close(fig)
    fig = plots.loss_history(np.linspace(1.0, 0.5, 1000), "seed 1", [1000], [0.5])
    assert len(fig.axes) == 1
    plots.plt.close(fig)


def test_alt_text_comes_from_the_titles():
    fig, axes = plots.plt.subplots(1, 2)
    axes[0].set_title("Left")
    axes[1].set_title("Right")
    fig.suptitle("Both")
    assert plots.alt_text(fig) == "Both; Left; Right"
    plots.plt.close(fig)
    fig, _ = plots.plt.subplots()
    assert plots.alt_text(fig) == "figure"
    plots.plt.close(fig)
