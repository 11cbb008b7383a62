"""Figures. Each function returns a matplotlib Figure; `save` writes it atomically as PNG."""
from __future__ import annotations

import io as _io
from pathlib import Path

import matplotlib

matplotlib.use("Agg") if not matplotlib.get_backend().lower().startswith(("module://", "nbagg", "ipympl")) else None
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from . import files  # noqa: E402


def save(fig, path: Path, dpi: int = 110, close: bool = True) -> None:
    """Write `fig` as PNG (atomically); close=False keeps it open so a notebook still shows it."""
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    if close:
        plt.close(fig)
    files.write_bytes(path, buf.getvalue())


def loss_history(loss, seed: int | None = None):
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.semilogy(np.arange(1, len(loss) + 1), loss, lw=1)
    ax.set(xlabel="training step", ylabel="training loss (MSE)",
           title=f"Loss history{'' if seed is None else f', seed {seed}'}")
    ax.grid(alpha=0.3)
    return fig


def grad_norm_history(grad_I, grad_w, seed: int | None = None):
    fig, ax = plt.subplots(figsize=(6, 3.2))
    steps = np.arange(1, len(grad_I) + 1)
    ax.semilogy(steps, grad_I, lw=1, label="|dL/dI|")
    ax.semilogy(steps, grad_w, lw=1, label="|dL/dw|")
    ax.set(xlabel="training step", ylabel="gradient norm (per step)",
           title=f"Gradient norms{'' if seed is None else f', seed {seed}'}")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def evaluation(a: dict, title: str = ""):
    """Output, target and input for each test duration over the extended window (arrays eval_* of
    analysis.metrics)."""
    durations = a["eval_durations_ms"]
    fig, axes = plt.subplots(len(durations), 1, figsize=(8, 1.9 * len(durations)), sharex=True)
    axes = np.atleast_1d(axes)
    t_s = a["eval_t_ms"] / 1000.0
    for ax, d, x, y, tg in zip(axes, durations, a["eval_x"], a["eval_y"], a["eval_target"]):
        ax.plot(t_s, x * 0.25, color="0.6", lw=1, label="input (x 0.25)")
        ax.plot(t_s, np.where(tg >= 0, tg, np.nan), color="k", ls="--", lw=1, label="target")
        ax.plot(t_s, y, color="C3", lw=1.2, label="output")
        ax.set_ylabel(f"{d} ms pulse\noutput (a.u.)")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper left", fontsize=8, ncol=3)
    axes[0].set_title(title or "Network output for each test pulse")
    axes[-1].set_xlabel("time (s)")
    fig.tight_layout()
    return fig


def weights(sd: dict, sd_init: dict):
    """I against w after training and at initialisation (scaled to unit norm)."""
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
    for ax, (d, lab) in zip(axes, ((sd_init, "initialisation"), (sd, "after training"))):
        I = d["I"].detach().double().flatten().numpy()
        w = d["w"].detach().double().flatten().numpy()
        ax.scatter(I / np.linalg.norm(I), w / np.linalg.norm(w), s=4, alpha=0.6)
        cos = float(I @ w / np.linalg.norm(I) / np.linalg.norm(w))
        ax.set(xlabel="I / |I|", ylabel="w / |w|", title=f"{lab}: cos(I, w) = {cos:.3f}")
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
    ax.set(xlabel="number of PCs", ylabel="cumulative explained variance (fraction)", ylim=(0, 1.02),
           title="Explained variance of the leading PCs")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def loadings(coef, name: str, k: int = 50):
    """|c_i| / |c| of a weight vector's coefficients on the PCs (PC order), first k."""
    c = np.abs(np.asarray(coef, dtype=np.float64))
    k = min(k, len(c))
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(np.arange(1, k + 1), c[:k] / np.linalg.norm(c))
    ax.set(xlabel="PC (by explained variance)", ylabel=f"|PC . {name}| / |{name}| (fraction)",
           title=f"Loadings of {name} on the first {k} PCs")
    return fig


def performance_original(table):
    """The original's figure: every metric against precision on one axis."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for col, lab in (("weight_correlation", "I-w correlation"), ("pr_input_l1", "PR of I (l1)"),
                     ("pr_output_l1", "PR of w (l1)")):
        ax.scatter(table["precision"], table[col], label=lab, s=18)
    ax.set(xlabel="precision loss (lower is better)", ylabel="value", title="sys_A_performance (original layout)")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def performance_panels(table, columns: dict):
    """One panel per metric against precision, with the seed numbers."""
    import seaborn as sns

    n = len(columns)
    fig, axes = plt.subplots(1, n, figsize=(3.3 * n, 3.2), squeeze=False)
    for ax, (col, lab) in zip(axes[0], columns.items()):
        sns.regplot(data=table, x="precision", y=col, ax=ax, ci=95, scatter_kws={"s": 18}, line_kws={"lw": 1})
        for _, row in table.iterrows():
            ax.annotate(str(int(row["seed"])), (row["precision"], row[col]), fontsize=7, alpha=0.7)
        ax.set(xlabel="precision loss", ylabel=lab)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def ensemble_comparison(df, columns: dict):
    """Each measure's distribution per ensemble (one panel per measure, seeds as points)."""
    import seaborn as sns

    n = len(columns)
    fig, axes = plt.subplots(1, n, figsize=(3.0 * n, 3.2), squeeze=False)
    for ax, (col, lab) in zip(axes[0], columns.items()):
        sns.boxplot(data=df, x="ensemble", y=col, ax=ax, color="0.9", showfliers=False)
        sns.stripplot(data=df, x="ensemble", y=col, ax=ax, size=5, jitter=0.15)
        ax.set(xlabel="", ylabel=lab)
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def generalisation(a: dict):
    """Plateau against pulse duration (trained range shaded) and how long each plateau holds
    (arrays gen_* of analysis.metrics)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    d = a["gen_durations_ms"]
    inside = d[a["gen_in_range"]]
    for ax in axes:
        if inside.size:
            ax.axvspan(inside.min(), inside.max(), color="0.92", label="trained range")
        ax.grid(alpha=0.3)
        ax.set_xlabel("pulse duration (ms)")
    axes[0].plot(d, a["gen_target"], "k--", lw=1, label="target")
    axes[0].plot(d, a["gen_plateau"], "o-", ms=3, color="C3", label="plateau (mean output)")
    axes[0].set(ylabel="output (a.u.)", title="Plateau against duration")
    axes[0].legend(fontsize=8)
    horizon = float(a["gen_horizon_ms"])
    axes[1].plot(d, np.asarray(a["gen_hold_ms"]) / 1000.0, "o-", ms=3)
    axes[1].set(ylabel="time held (s)", ylim=(0, horizon / 1000.0 * 1.05),
                title=f"Plateau held within {float(a['gen_tolerance']):.0%} of its target")
    fig.tight_layout()
    return fig


def phase_trajectories(a: dict, durations_ms, dt_ms: float):
    """Trajectories of the memory trials on PCs 1-3 (arrays traj_* of analysis.metrics): 2D
    projections and a 3D view, the input phase (pulse), the intrinsic phase (after the pulse,
    before the memory window) and the memory phase drawn apart; slow points as crosses."""
    z_all = a["traj_pcs"]
    onset, mem = (int(v) for v in a["traj_phase_steps"])
    fig = plt.figure(figsize=(13, 4))
    axes = [fig.add_subplot(1, 3, 1), fig.add_subplot(1, 3, 2), fig.add_subplot(1, 3, 3, projection="3d")]
    styles = {"input": dict(lw=2.2, alpha=1.0), "intrinsic": dict(lw=1.0, ls="--", alpha=0.8),
              "memory": dict(lw=1.2, alpha=0.9)}
    for i, (z, dur) in enumerate(zip(z_all, durations_ms)):
        end = onset + int(round(dur / dt_ms)) + 1
        color = f"C{i}"
        for phase, (lo, hi) in (("input", (onset, end)), ("intrinsic", (end, mem)), ("memory", (mem, len(z)))):
            seg = z[lo:hi]
            lab = f"{dur} ms" if phase == "memory" else None
            axes[0].plot(seg[:, 0], seg[:, 1], color=color, label=lab, **styles[phase])
            axes[1].plot(seg[:, 0], seg[:, 2], color=color, **styles[phase])
            axes[2].plot(seg[:, 0], seg[:, 1], seg[:, 2], color=color, **styles[phase])
    zs = a["slow_pcs"]
    if len(zs):
        axes[0].plot(zs[:, 0], zs[:, 1], "kx", ms=8, mew=2, label="slow points")
        axes[1].plot(zs[:, 0], zs[:, 2], "kx", ms=8, mew=2)
        axes[2].plot(zs[:, 0], zs[:, 1], zs[:, 2], "kx", ms=8, mew=2)
    for ax, (i, j) in zip(axes[:2], ((0, 1), (0, 2))):
        ax.set(xlabel=f"PC{i + 1} (rate units)", ylabel=f"PC{j + 1} (rate units)")
        ax.grid(alpha=0.3)
    axes[2].set(xlabel="PC1", ylabel="PC2", zlabel="PC3")
    axes[0].legend(fontsize=7, loc="best")
    fig.suptitle("Memory-trial trajectories in memory-PC space (thick: input, dashed: intrinsic, thin: memory)",
                 fontsize=10)
    fig.tight_layout()
    return fig


def time_constants(a: dict):
    """Time constants (ms) of the Jacobian's modes at each slow point, slowest first (arrays
    slow_* of analysis.metrics), with the threshold the slow modes were counted against."""
    slow_ms = float(a["slow_ms"])
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for i, (tcs, fixed) in enumerate(zip(a["slow_time_constants_ms"], a["slow_fixed"])):
        tc = np.sort(np.asarray(tcs))[::-1][:30]
        ax.semilogy(np.arange(1, len(tc) + 1), tc, "o-", ms=3, lw=1,
                    label=f"point {i + 1}{' (fixed)' if fixed else ''}")
    ax.axhline(slow_ms, color="k", ls=":", lw=1, label=f"{slow_ms:.0f} ms")
    ax.set(xlabel="mode (slowest first)", ylabel="time constant (ms)", title="Time constants at the slow points")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return fig


def rho_intervals(table, labels: dict | None = None):
    """Spearman's rho of each measure against precision with its bootstrap interval."""
    fig, ax = plt.subplots(figsize=(6, 0.45 * len(table) + 1.2))
    ys = np.arange(len(table))[::-1]
    for y, (_, row) in zip(ys, table.iterrows()):
        color = "C3" if row["excludes_zero"] else "C0"
        ax.plot([row["ci_low"], row["ci_high"]], [y, y], color=color, lw=2)
        ax.plot(row["rho"], y, "o", color=color)
    ax.axvline(0, color="k", lw=1)
    ax.set_yticks(ys, [(labels or {}).get(m, m) for m in table["measure"]])
    ax.set(xlim=(-1.05, 1.05), xlabel="Spearman's rho with precision loss (95 % bootstrap interval)")
    ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig


def correlation_heatmap(matrix):
    """Spearman correlations between the measures."""
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(0.6 * len(matrix) + 2.5, 0.55 * len(matrix) + 1.5))
    sns.heatmap(matrix, vmin=-1, vmax=1, cmap="RdBu_r", annot=True, fmt=".2f", annot_kws={"size": 7}, ax=ax,
                square=True, cbar_kws={"shrink": 0.7})
    ax.set_title("Spearman correlation between measures")
    fig.tight_layout()
    return fig
