"""Figures. Each function returns a matplotlib Figure; `save` writes it atomically as PNG."""
from __future__ import annotations

import io as _io
from pathlib import Path

import matplotlib

matplotlib.use("Agg") if not matplotlib.get_backend().lower().startswith(("module://", "nbagg", "ipympl")) else None
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from . import io  # noqa: E402


def save(fig, path: Path, dpi: int = 110, close: bool = True) -> None:
    """Write `fig` as PNG (atomically); close=False keeps it open so a notebook still shows it."""
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    if close:
        plt.close(fig)
    io.write_bytes(path, buf.getvalue())


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


def evaluation(ev, title: str = ""):
    """Output, target and input for each test duration over the extended window."""
    fig, axes = plt.subplots(len(ev.durations_ms), 1, figsize=(8, 1.9 * len(ev.durations_ms)), sharex=True)
    axes = np.atleast_1d(axes)
    t_s = ev.t_ms / 1000.0
    for ax, d, x, y, tg in zip(axes, ev.durations_ms, ev.x, ev.y, ev.target):
        ax.plot(t_s, x * 0.25, color="0.6", lw=1, label="input (x 0.25)")
        ax.plot(t_s, np.where(tg >= 0, tg, np.nan), color="k", ls="--", lw=1, label="target")
        ax.plot(t_s, y, color="C3", lw=1.2, label="output")
        ax.set_ylabel(f"{d} ms")
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


def spectrum(pcas: dict, k: int = 20):
    """Explained variance of the top-k PCs for each named PCA."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for name, p in pcas.items():
        ev = p.explained[:k]
        ax.plot(np.arange(1, len(ev) + 1), np.cumsum(ev), marker="o", ms=3, label=f"{name} (dim {p.dimensionality:.2f})")
    ax.set(xlabel="number of PCs", ylabel="cumulative explained variance", ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def loadings(v, pca, name: str, k: int = 50):
    """|c_i| of a weight vector on the PCs, in PC order."""
    c = np.abs(pca.eigvecs.T @ np.asarray(v, dtype=np.float64).reshape(-1))
    k = min(k, len(c))
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar(np.arange(1, k + 1), c[:k] / np.linalg.norm(c))
    ax.set(xlabel="PC", ylabel=f"|PC . {name}| / |{name}|", title=f"Loadings of {name} on the first {k} PCs")
    return fig


def trajectories(rates_dtn: np.ndarray, pca, labels, dt_ms: float, title: str = ""):
    """Trajectories projected on PCs 1-2 and 1-3."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    mean = rates_dtn.reshape(-1, rates_dtn.shape[-1]).mean(0)
    for r, lab in zip(rates_dtn, labels):
        z = (r - mean) @ pca.eigvecs[:, :3]
        for ax, (i, j) in zip(axes, ((0, 1), (0, 2))):
            ax.plot(z[:, i], z[:, j], lw=1, label=lab)
            ax.plot(z[-1, i], z[-1, j], "o", ms=4, color=ax.lines[-1].get_color())
    for ax, (i, j) in zip(axes, ((0, 1), (0, 2))):
        ax.set(xlabel=f"PC{i + 1}", ylabel=f"PC{j + 1}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
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
