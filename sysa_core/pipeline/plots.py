"""Figures of one model: its training, its test trials, its weights, its PCs and its dynamics.
Each function returns a matplotlib Figure; `save` writes one atomically as PNG and `show` puts one
in a notebook with alt text made from its titles. Every axis carries its unit ("a.u." for the
task's output, whose target is thresh x duration)."""
from __future__ import annotations

import io as _io
from pathlib import Path

import matplotlib

matplotlib.use("Agg") if not matplotlib.get_backend().lower().startswith(("module://", "nbagg", "ipympl")) else None
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from .. import files  # noqa: E402
from ..analysis.alignment import cosine_chance  # noqa: E402
from ..analysis.plateau import HOLD_TOLERANCE  # noqa: E402
from ..training import CONVERGENCE_FALL, CONVERGENCE_WINDOW, convergence, loss_trend  # noqa: E402


def _png(fig, dpi: int) -> bytes:
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def save(fig, path: Path, dpi: int = 110, close: bool = True) -> None:
    """Write `fig` as PNG (atomically); close=False keeps it open (`show` it afterwards)."""
    data = _png(fig, dpi)
    if close:
        plt.close(fig)
    files.write_bytes(path, data)


def alt_text(fig) -> str:
    """A figure's description for readers who cannot see it: its suptitle and its axes' titles."""
    titles = [fig._suptitle.get_text()] if getattr(fig, "_suptitle", None) is not None else []
    titles += [ax.get_title() for ax in fig.axes if ax.get_title()]
    return "; ".join(dict.fromkeys(t for t in titles if t)) or "figure"


def show(fig, alt: str | None = None, dpi: int = 90) -> None:
    """Display `fig` in the notebook as a PNG with alt text (alt_text by default), and close it."""
    from IPython.display import Image, display

    data = _png(fig, dpi)
    text = alt or alt_text(fig)
    plt.close(fig)
    display(Image(data=data, format="png", metadata={"alt": text}))


def loss_history(loss, who: str | None = None, monitor_step=None, monitor_loss=None):
    """The per-step training loss, and the monitor set's loss at the end of the last epochs; with
    two monitor points or more, a second panel shows them over the convergence window, in % of
    their mean, with the trend on which convergence is judged (training.convergence, over the
    len(loss) steps recorded) and the steepest trend the criterion allows."""
    trend = loss_trend(monitor_step, monitor_loss) if monitor_step is not None else None
    judged = trend is not None
    fig, axes = plt.subplots(1, 2 if judged else 1, figsize=(11, 3.2) if judged else (6, 3.2), squeeze=False)
    ax = axes[0, 0]
    ax.semilogy(np.arange(1, len(loss) + 1), loss, lw=1, label="batch loss (per step)")
    if monitor_step is not None and len(monitor_step):
        ax.semilogy(monitor_step, monitor_loss, "o-", ms=3, color="C3", label="monitor set (convergence)")
        ax.legend(fontsize=8)
    ax.set(xlabel="training step (Adam updates)", ylabel="training loss (MSE, a.u.²)",
           title=f"Loss history{'' if who is None else f', {who}'}")
    ax.grid(alpha=0.3)
    if judged:
        slope, intercept = trend
        c = convergence(monitor_step, monitor_loss, len(loss))
        scale = 100.0 / float(np.mean(monitor_loss))  # % of the window's mean loss, as the criterion is
        s = np.asarray(monitor_step, dtype=np.float64)
        mid = 0.5 * (s[0] + s[-1])
        ends = np.array([s[0], s[-1]])
        ax = axes[0, 1]
        ax.plot(s, scale * np.asarray(monitor_loss), "o-", ms=3, color="C3",
                label=f"monitor set (final loss {monitor_loss[-1]:.3g} a.u.²)")
        ax.plot(ends, scale * (intercept + slope * ends), "--", color="k", lw=1.2, label="its trend (Theil–Sen line)")
        limit = -CONVERGENCE_FALL * 100.0 / (CONVERGENCE_WINDOW * len(loss))  # % per step
        ax.plot(ends, scale * (intercept + slope * mid) + limit * (ends - mid), ":", color="0.4", lw=1.2,
                label=f"a fall of {100 * CONVERGENCE_FALL:g} % over the window (the criterion)")
        ax.set(xlabel="training step (Adam updates)", ylabel="monitor loss (% of the window's mean)",
               title=f"The last {100 * CONVERGENCE_WINDOW:g} % of the steps: the trend falls {100 * c['loss_fall']:.1f} %\nof the window's mean, "
                     f"{'converged' if c['converged'] else 'not converged'} (converged: under {100 * CONVERGENCE_FALL:g} %)")
        ax.title.set_fontsize(10)
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return fig


def grad_norm_history(grad_I, grad_w, who: str | None = None):
    fig, ax = plt.subplots(figsize=(6, 3.2))
    steps = np.arange(1, len(grad_I) + 1)
    ax.semilogy(steps, grad_I, lw=1, label="|dL/dI|")
    ax.semilogy(steps, grad_w, lw=1, label="|dL/dw|")
    ax.set(xlabel="training step (Adam updates)", ylabel="gradient norm (a.u.² per unit weight)",
           title=f"Gradient norms{'' if who is None else f', {who}'}")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def model_label(cfg, seed: int) -> str:
    """'seed 2', or 'control seed 2' for a model whose I and w were drawn independently."""
    return f"{'control ' if cfg.model.init == 'independent' else ''}seed {seed}"


def training_figures(folder: Path, seed: int, history: dict, cfg) -> None:
    """A finished training's loss and gradient-norm plots, into its folder (training's `figures`;
    history: the training metadata's "history"; cfg: the model's configuration, which names it)."""
    who = model_label(cfg, seed)
    save(loss_history(history["loss"], who, history["monitor_step"], history["monitor_loss"]),
         files.loss_plot_path(folder, seed))
    save(grad_norm_history(history["grad_norm_I"], history["grad_norm_w"], who), files.grad_plot_path(folder, seed))


def evaluation(a: dict, title: str = "", trained_end_ms: float | None = None):
    """Output, target and input for each test duration over the extended window (arrays eval_* of
    analysis.metrics), the end of the trained window marked."""
    durations = a["eval_durations_ms"]
    fig, axes = plt.subplots(len(durations), 1, figsize=(8, 1.9 * len(durations)), sharex=True)
    axes = np.atleast_1d(axes)
    t_s = a["eval_t_ms"] / 1000.0
    for ax, d, x, y, tg in zip(axes, durations, a["eval_x"], a["eval_y"], a["eval_target"]):
        ax.plot(t_s, x * 0.25, color="0.6", lw=1, label="input (x 0.25)")
        ax.plot(t_s, np.where(tg >= 0, tg, np.nan), color="k", ls="--", lw=1, label="target")
        ax.plot(t_s, y, color="C3", lw=1.2, label="output")
        _clip_to_plateau(ax, t_s, y, tg, trained_end_ms)
        if trained_end_ms is not None:
            ax.axvline(trained_end_ms / 1000.0, color="0.4", ls=":", lw=1, label="end of trained window")
        ax.set_ylabel(f"{d} ms pulse\noutput (a.u.)")
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.suptitle(title or "Network output for each test pulse", fontsize=11)
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.955), ncol=4, fontsize=8, frameon=False)
    axes[-1].set_xlabel("time since trial start (s)")
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig


def _clip_to_plateau(ax, t_s, y, target, trained_end_ms: float | None) -> None:
    """Scale the y-axis to the target and to the output on the scored steps of the trained window
    (target >= 0, up to trained_end_ms), so that a plateau's error stays visible; where the output
    goes beyond (the unscored transient after the pulse, or its course after the trained window), say
    so in the panel's corner (it is drawn clipped)."""
    scored = target >= 0
    if trained_end_ms is not None:
        scored &= t_s <= trained_end_ms / 1000.0
    if not scored.any():
        return
    top = max(2.0 * float(target[scored].max()), 1.1 * float(y[scored].max()), 0.1)
    bottom = min(-0.25 * top, 1.1 * float(y[scored].min()))
    ax.set_ylim(bottom, top)
    if y.max() > top or y.min() < bottom:
        ax.text(0.01, 0.95, f"output clipped to this range (it spans {y.min():.3g} to {y.max():.3g} a.u.)",
                transform=ax.transAxes, fontsize=7, color="C3", va="top",
                bbox=dict(facecolor="white", edgecolor="none", alpha=0.85, pad=1))


def weights(sd: dict, sd_init: dict):
    """I against w after training and at initialisation (scaled to unit norm)."""
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
    for ax, (d, lab) in zip(axes, ((sd_init, "initialisation"), (sd, "after training"))):
        I = d["I"].detach().double().flatten().numpy()
        w = d["w"].detach().double().flatten().numpy()
        ax.scatter(I / np.linalg.norm(I), w / np.linalg.norm(w), s=4, alpha=0.6)
        cos = float(I @ w / np.linalg.norm(I) / np.linalg.norm(w))
        ax.set(xlabel="I / |I| (unit vector entries)", ylabel="w / |w| (unit vector entries)",
               title=f"{lab}: cos(I, w) = {cos:.3f}")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def spectrum(eigvals: dict, k: int = 20):
    """Cumulative explained variance of the top-k PCs for each named spectrum {name: eigenvalues}."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for name, lam in eigvals.items():
        lam = np.clip(np.asarray(lam, dtype=np.float64), 0, None)
        ev = (lam / lam.sum())[:k]
        dim = lam.sum() ** 2 / (lam * lam).sum()
        ax.plot(np.arange(1, len(ev) + 1), np.cumsum(ev), marker="o", ms=3, label=f"{name} (dim {dim:.2f})")
    ax.set(xlabel="leading PCs kept (count)", ylabel="cumulative explained variance (fraction)", ylim=(0, 1.02),
           title="Explained variance of the leading PCs")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def loadings(coef, name: str, pcs: str, k: int = 50):
    """|c_i| / |c| of a weight vector's coefficients on the PCs (PC order), first k."""
    c = np.abs(np.asarray(coef, dtype=np.float64))
    k = min(k, len(c))
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(np.arange(1, k + 1), c[:k] / np.linalg.norm(c))
    chance = cosine_chance(len(c))  # E|c_i| of a random unit vector in N dimensions
    ax.axhline(chance, color="C3", ls="--", lw=1, label=f"chance: a random direction's mean, about √(2/(πN)) = {chance:.2g}")
    ax.set(xlabel=f"{pcs} PC (by explained variance)", ylabel=f"|cos(PC, {name})|",
           title=f"Loadings of {name} on the first {k} {pcs} PCs")
    ax.set_ylim(0, 1.25 * max(float(c[:k].max() / np.linalg.norm(c)), chance))  # room for the legend above the bars
    ax.legend(fontsize=8, loc="upper right")
    return fig


def shade_trained(ax, trained_ms: tuple[float, float]) -> None:
    """Shade the trained range: trained_ms, the shortest and longest duration training draws
    (Config.trained_span_ms)."""
    ax.axvspan(*trained_ms, color="0.92", label="trained range")


def generalisation(a: dict, trained_ms: tuple[float, float]):
    """Plateau against pulse duration (the trained range trained_ms shaded, shade_trained) and how
    long each plateau stays within 10 % of its target (arrays gen_* of analysis.metrics), the
    trained window marked."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    d = a["gen_durations_ms"]
    for ax in axes:
        shade_trained(ax, trained_ms)
        ax.grid(alpha=0.3)
        ax.set_xlabel("pulse duration (ms)")
    axes[0].plot(d, a["gen_target"], "k--", lw=1, label="target")
    axes[0].plot(d, a["gen_plateau"], "o-", ms=3, color="C3", label="plateau (mean output)")
    axes[0].set(ylabel="output (a.u.)", title="Plateau against duration")
    axes[0].legend(fontsize=8)
    horizon = float(a["gen_horizon_ms"])
    axes[1].plot(d, np.asarray(a["gen_hold_ms"]) / 1000.0, "o-", ms=3)
    axes[1].axhline(float(a["gen_trained_window_ms"]) / 1000.0, color="k", ls=":", lw=1, label="end of trained window")
    top = max(float(np.max(a["gen_hold_ms"])), float(a["gen_trained_window_ms"])) / 1000.0
    longest = float(np.max(a["gen_hold_ms"])) / 1000.0
    axes[1].set(ylabel="time on target after cost onset (s)", ylim=(0, top * 1.35))  # room for the legend
    axes[1].set_title(f"How long the plateau stays within {100 * HOLD_TOLERANCE:g} % of its target\n(until it first "
                      f"leaves; 0: outside at the cost onset; followed for {horizon / 1000:g} s;\nthe longest stays "
                      f"{longest:.3g} s)", fontsize=10)
    axes[1].legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def phase_trajectories(a: dict, durations_ms, dt_ms: float):
    """Trajectories of the memory trials on PCs 1-3 (arrays traj_*): 2D projections and a 3D view,
    the input phase (pulse), the intrinsic phase (after the pulse, before the memory window) and the
    memory phase drawn apart (the shortest pulses drawn last, on top); fixed points as crosses,
    moving points as circles."""
    z_all = a["traj_pcs"]
    onset, mem = (int(v) for v in a["traj_phase_steps"])
    fig = plt.figure(figsize=(14, 4))
    axes = [fig.add_subplot(1, 3, 1), fig.add_subplot(1, 3, 2), fig.add_subplot(1, 3, 3, projection="3d")]
    styles = {"input": dict(lw=2.2, alpha=1.0), "intrinsic": dict(lw=1.0, ls="--", alpha=0.8),
              "memory": dict(lw=1.2, alpha=0.9)}
    order = sorted(range(len(durations_ms)), key=lambda i: -durations_ms[i])  # longest first: short on top
    for i in order:
        z, dur = z_all[i], durations_ms[i]
        end = onset + int(a["traj_pulse_steps"][i])
        color = f"C{i}"
        for phase, (lo, hi) in (("input", (onset, end)), ("intrinsic", (end, mem)), ("memory", (mem, len(z)))):
            seg = z[lo:hi]
            lab = f"{dur} ms" if phase == "memory" else None
            axes[0].plot(seg[:, 0], seg[:, 1], color=color, label=lab, **styles[phase])
            axes[1].plot(seg[:, 0], seg[:, 2], color=color, **styles[phase])
            axes[2].plot(seg[:, 0], seg[:, 1], seg[:, 2], color=color, **styles[phase])
    zs, fixed = a["points_pcs"], np.asarray(a["points_fixed"], dtype=bool)
    for mask, marker, lab in ((fixed, "kx", "fixed points"), (~fixed, "ko", "moving points")):
        if mask.any():
            kw = dict(ms=7, mew=2, mfc="none")
            axes[0].plot(zs[mask, 0], zs[mask, 1], marker, label=lab, **kw)
            axes[1].plot(zs[mask, 0], zs[mask, 2], marker, **kw)
            axes[2].plot(zs[mask, 0], zs[mask, 1], zs[mask, 2], marker, **kw)
    for ax, (i, j) in zip(axes[:2], ((0, 1), (0, 2))):
        ax.set(xlabel=f"PC{i + 1} (rate)", ylabel=f"PC{j + 1} (rate)")
        ax.grid(alpha=0.3)
    axes[2].set(xlabel="PC1 (rate)", ylabel="PC2 (rate)", zlabel="PC3 (rate)")
    for axis in (axes[2].xaxis, axes[2].yaxis, axes[2].zaxis):  # a 3-D panel's foreshortened ticks crowd
        axis.set_major_locator(MaxNLocator(4))
    handles, labels = axes[0].get_legend_handles_labels()
    phases = {"input": "input (the pulse)", "intrinsic": "intrinsic (after it)", "memory": "memory window"}
    handles += [Line2D([], [], color="0.35", **styles[k]) for k in phases]
    fig.legend(handles, labels + list(phases.values()), fontsize=8, loc="center right", frameon=False)
    fig.suptitle("Memory-trial trajectories in memory-PC space (thick: input, dashed: intrinsic, thin: memory)",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0, 0.88, 1))
    return fig


def coding_fitted_ms(a: dict, durations_ms) -> list[int]:
    """The test durations (ms) the duration-coding direction was fitted to (analysis.pca.coding_fit),
    from the arrays' traj_duration_fitted; all of them for arrays made before it was recorded."""
    fitted = np.asarray(a.get("traj_duration_fitted", np.ones(len(durations_ms), dtype=bool)), dtype=bool)
    return [int(d) for d, f in zip(durations_ms, fitted) if f]


def coding_projections(a: dict, durations_ms, dt_ms: float):
    """The memory trials projected on the readout direction and on the direction that codes duration
    (arrays traj_readout, traj_duration) over time, and against each other, the memory window marked."""
    r, u = np.asarray(a["traj_readout"]), np.asarray(a["traj_duration"])
    onset, mem = (int(v) for v in a["traj_phase_steps"])
    t = np.arange(r.shape[1]) * dt_ms / 1000.0
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    for i, dur in enumerate(durations_ms):
        kw = dict(color=f"C{i}", lw=1.2)
        axes[0].plot(t, r[i], label=f"{dur} ms", **kw)
        axes[1].plot(t, u[i], **kw)
        axes[2].plot(u[i, mem:], r[i, mem:], **kw)
        axes[2].plot(u[i, mem], r[i, mem], "o", color=f"C{i}", ms=4)
    for ax in axes[:2]:
        ax.axvspan(mem * dt_ms / 1000.0, t[-1], color="0.93", zorder=0, label="memory window")
        ax.axvline(onset * dt_ms / 1000.0, color="k", ls=":", lw=1, label="pulse onset")
        ax.set_xlabel("time from the trial's start (s)")
        ax.grid(alpha=0.3)
    axes[0].set(ylabel="rate · w/|w| (rate units)")
    axes[0].set_title("On the readout direction (the output / |w|)", fontsize=10)
    axes[1].set(ylabel="rate · u (rate units)")
    on = " and ".join(str(d) for d in coding_fitted_ms(a, durations_ms))
    axes[1].set_title(f"On the duration axis u (fitted to the {on} ms trials)", fontsize=10)
    axes[2].set(xlabel="rate · u (rate units)", ylabel="rate · w/|w| (rate units)")
    axes[2].set_title("Memory window: w/|w| (vertical) against u; dot: its start", fontsize=10)
    axes[2].grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()  # above the panels, where it covers no curve
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    return fig


#: modes of each fixed point shown in the right panel of fixed_point_spectra (those growing fastest)
LEADING_MODES = 12
#: the most fixed points fixed_point_spectra numbers along its axis (7-point labels stay apart)
MAX_POINT_LABELS = 25


def ordinal(n: int) -> str:
    """2nd, 3rd, 4th, 11th, 21st."""
    end = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{end}"


def fixed_point_spectra(points, title: str = "Modes around the fixed points", mirror=None):
    """The Jacobian's eigenvalues at each fixed point (analysis.dynamics.Points), in 1/s. Left: all
    of them in the complex plane, growing modes (Re > 0) right of the dotted line, decaying ones
    left of it. Right: per fixed point, ordered by |h|, the real parts of its LEADING_MODES fastest
    growing modes, with the number of its growing modes above it (0: the point is stable); beyond
    MAX_POINT_LABELS points, every k-th point's number and count are written, so that none overlap.
    mirror (Points.mirrors): draw one point of each mirror pair (their spectra are the same)."""
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.8), gridspec_kw={"width_ratios": [1.25, 1]})
    to_s = 1000.0 / points.tau_ms
    fixed = np.flatnonzero(points.fixed)
    drawn = []  # (row in eigvals, index, mirror index)
    for f, k in enumerate(fixed):
        j = -1 if mirror is None else int(mirror[k])
        if j >= 0 and j < k and j != k:
            continue  # its mirror is drawn
        drawn.append((f, k, j))
    norms = np.linalg.norm(points.h, axis=1)
    drawn.sort(key=lambda d: norms[d[1]])
    cmap = ListedColormap(plt.get_cmap("viridis")(np.linspace(0.0, 0.85, 256)))  # no pale yellow on white
    top = max(float(norms.max()), 1e-12) if len(norms) else 1.0
    every = max(1, int(np.ceil(len(drawn) / MAX_POINT_LABELS)))
    for x, (f, k, j) in enumerate(drawn):
        lam = points.eigvals[f] * to_s
        colour = cmap(norms[k] / top)
        ax.plot(lam.real, lam.imag, "o", ms=2, alpha=0.5, color=colour, rasterized=True)
        lead = np.sort(lam.real)[::-1][:LEADING_MODES]
        ax2.plot(np.full(len(lead), x), lead, "_", ms=9, mew=1.5, color=colour)
        n_grow = int((lam.real > 0).sum())
        if x % every == 0:
            ax2.annotate(str(n_grow), (x, lead[0]), textcoords="offset points", xytext=(0, 4), ha="center",
                         fontsize=7, color="C3" if n_grow else "k")
    for a in (ax, ax2):
        a.grid(alpha=0.3)
    ax.axvline(0, color="k", ls=":", lw=1)
    ax.set(xlabel="Re λ (1/s): growth > 0 > decay", ylabel="Im λ (rad/s)")
    ax.set_title(title, fontsize=9)
    ax2.axhline(0, color="k", ls=":", lw=1)
    ax2.set_xticks(range(0, len(drawn), every),
                   [str(k + 1) + ("±" if j >= 0 and j != k else "") for _, k, j in drawn[::every]],
                   fontsize=8, rotation=90 if len(drawn) > 12 else 0)
    which = "" if every == 1 else f", every {ordinal(every)}"
    paired = "; k±: k and its mirror" if any(j >= 0 and j != k for _, k, j in drawn) else ""
    ax2.set(xlabel=f"fixed point (table number, by |h|{which}{paired})", ylabel="Re λ (1/s)")
    above = "its" if every == 1 else "every labelled point's"
    ax2.set_title(f"Each point's {LEADING_MODES} fastest-growing modes\n(above: {above} number of growing modes)",
                  fontsize=9)
    ax2.margins(y=0.12)
    if drawn:
        sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, top))
        fig.colorbar(sm, ax=ax2, label="|h| of the point (h units)")
    fig.tight_layout()
    return fig
