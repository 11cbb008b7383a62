"""The interactive explorer behind notebooks/explore.ipynb: what a trained network does with one pulse.

`Probe` loads one checkpoint with the configuration recorded beside it (else the original's paper
configuration), simulates a single pulse of any duration, onset and state noise, and projects the
firing rates on three kinds of direction: the readout w, the direction that codes the pulse's
duration (the least-squares slope of every unit's memory-period rate against duration, over pulses
of the trained range), and the top principal components of those memory-period rates. `explorer`
wraps it in ipywidgets (a checkpoint chooser and three sliders) and redraws on every change."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import files, model, task
from ..analysis import pca
from ..config import Config

#: the pulse durations the sliders span, and the reference pulses the directions are fitted on
DURATION_RANGE_MS = (10, 400)
N_REFERENCE = 8
N_PCS = 2


def checkpoints(root: Path | None = None) -> list[Path]:
    """The checkpoints of every run (and any study) under data/, sorted: sys_A<s>_state.pth files."""
    root = files.project_root() / "data" if root is None else Path(root)
    return sorted(root.rglob("sys_A*_state.pth")) if root.is_dir() else []


@dataclass
class Trial:
    """One simulated pulse: times (ms), input, output, target (NaN where it is not scored) and the
    rates projected on each direction, {name: (T,)}; `plateau` is the mean output over the
    trained plateau window, `target_level` thresh × duration."""

    t_ms: np.ndarray
    x: np.ndarray
    y: np.ndarray
    target: np.ndarray
    projections: dict
    plateau: float
    target_level: float
    duration_ms: float
    onset_ms: float


class Probe:
    """A checkpoint ready to be probed with single pulses (the directions are fitted once, here)."""

    def __init__(self, checkpoint: Path, extra_ms: int | None = None, profile: str = ""):
        """profile: the configuration of a checkpoint without sysa's metadata beside it (default paper)."""
        from .notebook import checkpoint_config

        self.path = Path(checkpoint)
        seed = files.seed_from_name(self.path)
        self.cfg: Config = checkpoint_config("explore", self.path, 1 if seed is None else seed, profile)
        self.sd = files.load_checkpoint(self.path, hidden_size=self.cfg.model.hidden_size)["state_dict"]
        self.extra_ms = self.cfg.analysis.eval_extra_ms if extra_ms is None else extra_ms
        dtype = model.DTYPES[self.cfg.model.dtype]
        self._w = {k: v.detach().to("cpu", dtype).clone() for k, v in self.sd.items()}
        self.directions = self._directions()

    @property
    def dt_ms(self) -> float:
        return self.cfg.model.dt_ms

    def default_onset_ms(self) -> float:
        """The mean training onset, rounded to dt."""
        return self.dt_ms * self.cfg.steps(self.cfg.task.O_on_ms)

    def _rates(self, durations_ms, onset_ms: float, T_ms: float, noise_std: float = 0.0):
        trials = task.fixed_trials(self.cfg, [int(round(d)) for d in durations_ms], int(round(onset_ms)),
                                   int(round(T_ms)))
        w = self._w
        y, r = model.simulate(w["G"], w["I"], w["w"], w["h0"], trials.x.to(w["G"].dtype), self.cfg.alpha,
                              self.cfg.model.g_G, return_r=True, noise_std=noise_std,
                              noise=model.generator(self.cfg.seed) if noise_std else None)
        return trials, y.double().numpy(), r.double().numpy()

    def _directions(self) -> dict:
        """Unit vectors (N,): the readout, the duration-coding direction and the top PCs of the memory-period
        rates of N_REFERENCE pulses spanning the trained range."""
        c = self.cfg
        lo, hi = c.trained_range_ms
        durations = np.unique(np.round(np.linspace(lo, hi - c.model.dt_ms, N_REFERENCE) / c.model.dt_ms) * c.model.dt_ms)
        _, _, r = self._rates(durations, self.default_onset_ms(), c.task.Nt_ms)
        window = slice(c.steps(c.task.cost_onset_ms), c.steps(c.task.Nt_ms))
        mean = r[:, window].mean(axis=1)  # (durations, N)
        out = {"readout w": self._w["w"][:, 0].double().numpy()}
        if len(durations) > 1:
            out["duration"] = pca.duration_slope(durations, mean)
        flat = r[:, window].reshape(-1, r.shape[-1])
        _, _, vt = np.linalg.svd(flat - flat.mean(axis=0), full_matrices=False)
        for k in range(min(N_PCS, len(vt))):
            out[f"PC{k + 1}"] = vt[k]
        return {k: v / (np.linalg.norm(v) or 1.0) for k, v in out.items()}

    def trial(self, duration_ms: float, onset_ms: float | None = None, noise_std: float = 0.0) -> Trial:
        """One pulse of duration_ms starting at onset_ms (default: the mean training onset), followed
        extra_ms past the trial's end; noise_std: Gaussian noise added to the state at every step."""
        c = self.cfg
        onset_ms = self.default_onset_ms() if onset_ms is None else onset_ms
        trials, y, r = self._rates([duration_ms], onset_ms, c.task.Nt_ms + self.extra_ms, noise_std)
        t_ms = np.arange(y.shape[1]) * c.model.dt_ms
        target = trials.target[0, :, 0].double().numpy().copy()
        target[target == task.MARKER] = np.nan
        window = slice(c.steps(c.task.cost_onset_ms), c.steps(c.task.Nt_ms))
        proj = {k: r[0] @ v for k, v in self.directions.items()}
        return Trial(t_ms, trials.x[0, :, 0].double().numpy(), y[0], target, proj, float(y[0, window].mean()),
                     float(c.task.thresh * trials.duration_ms[0]), float(trials.duration_ms[0]), onset_ms)

    def figure(self, tr: Trial):
        """Two panels: the output against its target over the trial and beyond; the rates projected on
        each direction."""
        import matplotlib.pyplot as plt

        c = self.cfg
        fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
        fig.subplots_adjust(left=0.09, right=0.98, top=0.94, bottom=0.09, hspace=0.12)
        s = 1e-3
        scale = max(abs(tr.target_level), 1e-9) / c.task.sig
        ax1.fill_between(tr.t_ms * s, 0, tr.x * scale, color="0.85", label="input pulse (scaled)")
        ax1.plot(tr.t_ms * s, tr.target, "k--", lw=1, label="target")
        ax1.plot(tr.t_ms * s, tr.y, color="tab:red", lw=1.5, label="output")
        for ax in (ax1, ax2):
            ax.axvline(c.task.cost_onset_ms * s, color="0.5", lw=0.8)
            ax.axvline(c.task.Nt_ms * s, color="0.5", lw=0.8, ls=":")
        ax1.set_ylabel("output (a.u.)")
        ax1.set_title(f"{self.path.name}: a {tr.duration_ms:g} ms pulse; plateau {tr.plateau:.3g} "
                      f"(target {tr.target_level:.3g}); dotted: end of the trained window")
        ax1.legend(loc="upper left", fontsize=8)
        for name, v in tr.projections.items():
            ax2.plot(tr.t_ms * s, v, lw=1.2, label=name)
        ax2.set_xlabel("time (s)")
        ax2.set_ylabel("rates projected")
        ax2.legend(loc="upper left", fontsize=8, ncol=len(tr.projections))
        return fig


def status(tr: Trial) -> str:
    """The line the explorer prints after each update (read by people and by its browser test)."""
    return (f"duration {tr.duration_ms:g} ms, onset {tr.onset_ms:g} ms: plateau {tr.plateau:.4f} "
            f"(target {tr.target_level:.4f})")


def explorer(checkpoint: str | Path | None = None, extra_ms: int | None = None):
    """The widget: a checkpoint chooser (the runs' seeds under data/, or any file path), sliders for
    the pulse's duration (10-400 ms), its onset and the state noise, the figure and a status line."""
    import ipywidgets as W
    import matplotlib.pyplot as plt
    from IPython.display import display

    found = [str(p.relative_to(files.project_root())) if files.project_root() in p.parents else str(p)
             for p in checkpoints()]
    first = str(checkpoint) if checkpoint else (found[0] if found else "")
    path = W.Combobox(value=first, options=found, description="checkpoint", placeholder="path/to/sys_A1_state.pth",
                      layout=W.Layout(width="70%"), ensure_option=False)
    wide = {"style": {"description_width": "initial"}, "continuous_update": False}
    duration = W.IntSlider(value=150, min=DURATION_RANGE_MS[0], max=DURATION_RANGE_MS[1], step=10,
                           description="duration (ms)", **wide)
    onset = W.IntSlider(description="onset (ms)", **wide)
    noise = W.FloatSlider(value=0.0, min=0.0, max=0.5, step=0.01, description="state noise", **wide)
    text = W.HTML()
    out = W.Output()
    state: dict = {}

    def load(_=None):
        p = Path(path.value).expanduser()
        if not p.is_absolute() and not p.exists():
            p = files.project_root() / p
        try:
            probe = Probe(p, extra_ms)
        except Exception as exc:  # noqa: BLE001 - a bad path or file is shown, the widget stays
            text.value = f'<span class="sysa-explore-status">cannot load {p.name}: {exc}</span>'
            return
        state["probe"] = probe
        c = probe.cfg
        onset.min, onset.max, onset.step = 0, max(0, c.task.cost_onset_ms - DURATION_RANGE_MS[1]), max(1, int(c.model.dt_ms))
        onset.value = int(min(probe.default_onset_ms(), onset.max))
        duration.step = max(int(c.model.dt_ms), 10 if c.model.dt_ms < 10 else int(c.model.dt_ms))
        update()

    def update(_=None):
        probe = state.get("probe")
        if probe is None:
            return
        tr = probe.trial(duration.value, onset.value, noise.value)
        with out:
            out.clear_output(wait=True)
            fig = probe.figure(tr)
            display(fig)
            plt.close(fig)
        text.value = f'<span class="sysa-explore-status">{status(tr)}</span>'

    path.observe(load, names="value")
    for wdg in (duration, onset, noise):
        wdg.observe(update, names="value")
    ui = W.VBox([path, W.HBox([duration, onset, noise]), text, out])
    display(ui)
    load()
    return ui
