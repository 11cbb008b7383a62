"""Helpers the notebooks call, so each notebook stays a parameters cell plus a few calls.

`setup` checks the parameters papermill injected (unknown names, wrong types) and resolves the
one `Config` and the folder the notebook works in: paths relative to the notebook's working folder,
a checkpoint's own recorded configuration, and never another model's folder (`checkpoint_config`,
`analysis_dir`); `model` trains the network (train notebook) or loads it; `analysis` reads the
per-model analysis from the folder's cache or computes it once (analysis.metrics)."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from IPython.display import Markdown, display

from .. import config as _config
from .. import files, original, training
from ..analysis import alignment, dynamics, pca, stats
from ..analysis import metrics as _metrics
from ..analysis import precision as _precision
from ..analysis import published
from ..analysis import population as pop
from ..analysis.mechanism import NOISE_DRAWS, NOISE_SIGMAS
from ..analysis.pca import ratios_of_coefficients
from ..analysis.plateau import HOLD_TOLERANCE, sweep_durations
from ..errors import UserError
from . import plots, population_plots, prose, report, store, tables

_SEED = {"profile": str, "seed": int, "overrides": list, "run_dir": str}
PARAMETERS = {
    "train": _SEED,
    "inspect": {**_SEED, "checkpoint": str},
    "pca": {**_SEED, "checkpoint": str},
    "population": {"profile": str, "run_dir": str, "control_dir": str, "pool_ensembles": bool},
    "explore": {"checkpoint": str},
}


def _user_errors_in_one_line() -> None:
    """In a kernel, show a UserError as its one line (no traceback of sysa's code): papermill then
    ends its report of a refused parameter with that line."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return

    def one_line(self, etype, value, tb, tb_offset=None):
        stb = [f"{etype.__name__}: {value}"]
        self._showtraceback(etype, value, stb)  # the kernel sends this as the cell's error
        return stb

    shell.set_custom_exc((UserError,), one_line)


_user_errors_in_one_line()

#: the profile whose run folder holds a seed's model when neither `profile` nor `run_dir` names it
DEFAULT_PROFILE = "quick"
_KERNEL_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}


@dataclass
class Context:
    """What a notebook works on: the configuration, its folder, and the checkpoint file it reads.

    run_dir: the folder the notebook writes into: the seed's folder (train), the folder of the
    checkpoint's analysis (inspect, pca) or the run's folder (population); checkpoint: the file the
    analysis reads (inspect, pca; None for train and population). Paths are absolute, resolved
    against the notebook's working folder (its own folder in JupyterLab and under `sysa run`)."""

    name: str
    cfg: _config.Config
    run_dir: Path
    params: dict
    checkpoint: Path | None = None

    @property
    def seed(self) -> int:
        return self.cfg.seed

    @property
    def control(self) -> bool:
        """Whether this is a control model (I and w initialised independently)."""
        return self.cfg.model.init == "independent"

    @property
    def in_run(self) -> bool:
        """Whether run_dir is a seed folder of a `sysa run` or `sysa train` folder (its G is then
        analysed once for the whole run)."""
        return files.shared_dir(self.run_dir) != self.run_dir

    @property
    def label(self) -> str:
        """'seed 3 (quick)', 'control seed 3 (quick)' in a run, else the checkpoint's file name."""
        if self.checkpoint is not None and not self.in_run:
            return f"{self.checkpoint.name} ({self.cfg.profile})"
        return f"{'control ' if self.control else ''}seed {self.seed} ({self.cfg.profile})"

    def checkpoint_file(self) -> Path:
        """The checkpoint the analyses read: the one given, else the seed folder's."""
        return self.checkpoint or files.checkpoint_path(self.run_dir, self.seed)


def shown(path: Path) -> str:
    """A path as the notebook shows it: relative to its working folder, so that an executed
    notebook names no folder of the machine it ran on."""
    return ". (this notebook's folder)" if _is_cwd(path) else os.path.relpath(os.path.abspath(path), Path.cwd())


def _is_cwd(path: Path) -> bool:
    """Whether `path` is the notebook's working folder."""
    return os.path.abspath(path) == os.path.abspath(Path.cwd())


def _path(text: str) -> Path:
    """A path parameter, resolved against the notebook's working folder."""
    return Path(os.path.abspath(os.path.expanduser(text)))


def check_parameters(name: str, namespace: dict) -> dict:
    """The notebook's parameters from its namespace; UserError for unknown or mistyped ones."""
    spec = PARAMETERS[name]
    # parameters are literals; papermill injects any name it is given, so a literal the
    # notebook does not declare is a misspelt or foreign parameter
    literal = (str, int, float, bool, list, dict, tuple, type(None))
    unknown = sorted(k for k, v in namespace.items()
                     if not k.startswith("_") and k not in _KERNEL_NAMES and k not in spec
                     and isinstance(v, literal))
    if unknown:
        raise UserError(f"{name}.ipynb: unknown parameter {unknown[0]!r} (known: {', '.join(spec)})")
    params = {}
    for k, typ in spec.items():
        if k not in namespace:
            raise UserError(f"{name}.ipynb: parameter {k!r} is missing from the parameters cell")
        v = namespace[k]
        if typ is int and isinstance(v, str) and v.strip().lstrip("-").isdigit():
            v = int(v)  # papermill -p from the shell may pass numbers as text
        if not isinstance(v, typ) or (typ is int and isinstance(v, bool)):
            raise UserError(f"{name}.ipynb: parameter {k!r} must be {typ.__name__}, got {v!r}")
        params[k] = v
    return params


def setup(name: str, namespace: dict) -> Context:
    """Validate the parameters of notebook `name` and resolve its configuration and folder.

    inspect and pca analyse one checkpoint and never train: the `checkpoint` file, else the seed
    folder's. It is analysed with the configuration recorded beside it (sysa's training metadata),
    else with `profile` (default paper, the original's); a `profile` or `overrides` that contradict
    the recorded configuration are refused. The analysis is written beside the checkpoint when sysa
    trained it there, else into `run_dir` or a folder of its own, never into another model's folder."""
    p = check_parameters(name, namespace)
    profile = p["profile"] or None
    if name == "population":
        cfg = _config.resolve(profile or DEFAULT_PROFILE)
        run_dir = _path(p["run_dir"]) if p["run_dir"] else files.default_run_dir(cfg.profile)
        p["control_dir"] = _path(p["control_dir"]) if p["control_dir"] else None
        if p["pool_ensembles"] and p["control_dir"] is None:
            raise UserError("population.ipynb: pool_ensembles needs control_dir (the control ensemble's run folder)")
        return Context(name, _run_config(run_dir, cfg), run_dir, p)
    if name == "train":
        cfg = _config.resolve(profile or DEFAULT_PROFILE, p["overrides"], seed=p["seed"])
        run_dir = _path(p["run_dir"]) if p["run_dir"] else files.seed_dir(files.default_run_dir(cfg.profile), cfg.seed)
        files.check_model_folder(run_dir, f"{name}.ipynb: run_dir")
        return Context(name, cfg, run_dir, p)
    if p["checkpoint"]:
        path = _path(p["checkpoint"])
        seed = files.seed_from_name(path)  # the file's own seed; the `seed` parameter when its name has none
        seed = p["seed"] if seed is None else seed
    else:
        folder = (_path(p["run_dir"]) if p["run_dir"] else
                  files.seed_dir(files.default_run_dir(profile or DEFAULT_PROFILE), p["seed"]))
        path, seed = files.checkpoint_path(folder, p["seed"]), p["seed"]
    if not path.exists() and not path.is_symlink():
        raise UserError(f"{name}.ipynb: no checkpoint {shown(path)}; this notebook analyses a trained model and "
                        f"never trains: train it first with train.ipynb (the same profile and seed, run_dir its "
                        f"folder)" + _train_command(path.parent, profile or DEFAULT_PROFILE, seed))
    cfg = checkpoint_config(name, path, seed, p["profile"], p["overrides"])
    files.load_checkpoint(path, hidden_size=cfg.model.hidden_size)  # a readable checkpoint, before any work
    run_dir = analysis_dir(name, path, files.sha256(path), p["run_dir"])
    return Context(name, cfg, run_dir, p, checkpoint=path)


def _train_command(folder: Path, profile: str, seed: int) -> str:
    """', or <the sysa train command that puts seed's checkpoint into folder>' when there is one."""
    if folder.name != f"seed_{seed}":
        return ""
    return f" or, from this notebook's folder, `sysa train --profile {profile} --seeds {seed} --out {os.path.relpath(folder.parent)}`"


def checkpoint_config(name: str, path: Path, seed: int, profile: str = "", overrides=()) -> _config.Config:
    """The configuration notebook `name` analyses the checkpoint `path` with (files.for_checkpoint:
    the recorded one wins; only analysis settings can be overridden)."""
    return files.for_checkpoint(path, profile or None, overrides, seed, who=f"{name}.ipynb")


def models_of(folder: Path) -> set[str]:
    """The sha256 of every checkpoint whose results `folder` holds (empty: it holds none): the one sysa's
    training metadata records there, else the one its metrics were computed from, else those of the
    checkpoint files in it."""
    folder = Path(folder)
    if not folder.is_dir():
        return set()
    metas = sorted(folder.glob("sys_A*_train.json"))
    if metas:
        out = set()
        for m in metas:
            try:
                rec = files.read_json(m)
            except UserError:
                rec = {}
            seed = re.match(r"sys_A(\d+)_train\.json$", m.name)
            ck = files.checkpoint_path(folder, int(seed.group(1))) if seed else None
            sha = rec.get("checkpoint_sha256") if isinstance(rec, dict) else None
            # training not finished: the checkpoint it is writing
            out.add(sha or (files.sha256(ck) if ck is not None and ck.is_file() else f"training:{m.name}"))
        return out
    metrics = files.metrics_path(folder)
    if metrics.is_file():
        try:
            sha = files.read_json(metrics).get("checkpoint_sha256")
        except (UserError, AttributeError):
            sha = None
        return {sha or "unreadable metrics.json"}
    return {files.sha256(p) for p in folder.glob("sys_A*.pth") if p.is_file()}


def analysis_dir(name: str, checkpoint: Path, digest: str, run_dir: str = "") -> Path:
    """Where the analysis of `checkpoint` (its sha256 `digest`) is written: `run_dir` when given,
    else beside the checkpoint when that folder is its model's (sysa trained it there), else a
    folder of its own (files.default_analysis_dir). UserError in one line when `run_dir` holds the
    results of another model: nothing of it is overwritten."""
    if run_dir:
        folder = _path(run_dir)
        files.check_model_folder(folder, f"{name}.ipynb: run_dir")
        owners = models_of(folder)
        if owners and digest not in owners:
            other = sorted(owners)[0]
            raise UserError(f"{name}.ipynb: run_dir {shown(folder)} holds the results of another model (checkpoint "
                            f"sha256 {other[:12]}), not of {shown(checkpoint)} (sha256 {digest[:12]}); analysing it "
                            f"there would overwrite them: leave run_dir empty (the analysis goes beside the "
                            f"checkpoint) or name a new folder")
        return folder
    beside, seed = checkpoint.parent, files.seed_from_name(checkpoint)
    if seed is not None and files.meta_path(beside, seed).is_file() and digest in models_of(beside):
        return beside
    return files.default_analysis_dir(checkpoint, digest)


def _run_config(run_dir: Path, default: _config.Config) -> _config.Config:
    """The configuration a run folder was made with (its RUN_MARKER file), else `default`."""
    marker = Path(run_dir) / files.RUN_MARKER
    if not marker.is_file():
        return default
    rec = files.read_manifest(marker)
    return _config.Config.from_manifest(rec, source=str(marker), default_profile=default.profile)


def model(ctx: Context, progress: bool = True) -> dict:
    """The network's state dict {G, I, w, h0}. The train notebook trains it in its folder first (or
    resumes an interrupted training, or loads a finished one); the others only load the checkpoint."""
    if ctx.name != "train":
        return files.load_checkpoint(ctx.checkpoint_file(), hidden_size=ctx.cfg.model.hidden_size)["state_dict"]
    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    with files.FolderLock(files.run_root(ctx.run_dir)):  # the run's writer (a `sysa run` holding it) or this one
        return training.train(ctx.cfg, ctx.run_dir, progress=progress, figures=plots.training_figures)


def _training_meta(ctx: Context) -> dict | None:
    """The training metadata beside the checkpoint, or None when there is none (the original's
    checkpoints)."""
    path = files.meta_path(ctx.checkpoint_file().parent, ctx.seed)
    if not path.exists():
        return None
    meta = files.read_json(path)
    return meta if isinstance(meta, dict) else None


def history(ctx: Context) -> dict | None:
    """The training metadata (configuration, histories) beside the checkpoint, or None when it
    has none (the original's checkpoints) or holds no histories yet (a training still running
    writes them when it finishes; its checkpoint holds them meanwhile)."""
    meta = _training_meta(ctx)
    return meta if meta is not None and "history" in meta else None


def analysis(ctx: Context) -> _metrics.ModelAnalysis:
    """Every per-model number and the arrays the figures need, for the checkpoint on disk: read from
    the cache in ctx.run_dir when it was computed from the same bytes, configuration and code,
    else computed once and cached there (pipeline.store.load_or_analyse_model)."""
    path = ctx.checkpoint_file()
    ck = files.load_checkpoint(path, hidden_size=ctx.cfg.model.hidden_size)
    ctx.run_dir.mkdir(parents=True, exist_ok=True)
    with files.FolderLock(files.run_root(ctx.run_dir)):
        result, _ = store.load_or_analyse_model(ctx.cfg, ck["state_dict"], ctx.run_dir, files.sha256(path), ck["epoch"],
                                                 ck["extra"], network_folder=files.shared_dir(ctx.run_dir))
    return result


def describe(ctx: Context) -> None:
    """A short statement of what this notebook shows: the model, its configuration and folder."""
    c = ctx.cfg
    m, t = c.model, c.task
    init = ("I and w initialised independently (control)" if ctx.control
            else "the original's seed-compatible initialisation (I = √N·w at the start)")
    if ctx.control and not m.G_per_seed:
        init += ("; G is the one every seed shares, the main ensemble's too, so G's own dynamics and the spontaneous "
                 "PCs are the same there: only the initialisation of I and w differs")
    source = f"checkpoint `{shown(ctx.checkpoint_file())}`"
    display(Markdown(
        f"### {ctx.label}\n\n**{source}**, profile `{c.profile}`: {m.hidden_size} units, τ = {m.tau_ms:g} ms, dt = {m.dt_ms:g} ms, "
        f"g = {m.g_G:g}; {init}. Trials of {t.Nt_ms / 1000:g} s, pulses of {c.trained_range_text}, "
        f"plateau target from {t.cost_onset_ms / 1000:g} s on. Test durations "
        f"{', '.join(f'{d} ms' for d in c.analysis.durations_ms)} ({c.pulse_rule_text}). Results in "
        + ("this notebook's folder." if _is_cwd(ctx.run_dir) else f"`{shown(ctx.run_dir)}`.")))
    _miniature(c)


def _miniature(c: _config.Config) -> None:
    """The line that says this is not the paper's configuration and how it differs (nothing for the paper's)."""
    text = c.miniature_text()
    if text:
        display(Markdown(f"**{text}**"))


def training_summary(ctx: Context, hist: dict | None) -> None:
    """Epochs, steps, training time and the final loss of this model's training."""
    if hist is None:
        status = (_training_meta(ctx) or {}).get("status")
        if status is not None:
            display(Markdown(f"`{files.meta_path(Path('.'), ctx.seed).name}` says the training is {status}: its "
                             "histories are written when it completes."))
        else:
            display(Markdown(f"`{ctx.checkpoint_file().name}` has no sysa training metadata beside it (the "
                             "original's checkpoints have none): no histories to show."))
        return
    loss = hist["history"]["loss"]
    tail = loss[-max(1, len(loss) // 10):]
    k = hist.get("trained_together") or 1
    secs = hist["train_seconds"]
    took = (f"{secs:.1f} s of training steps" if k == 1 else
            f"{secs:.1f} s of training steps (its share: {k} models trained together as one computation, "
            f"about {secs * k:.0f} s of steps in all)")
    monitor = hist["history"].get("monitor_loss") or []
    final = (f"final loss {monitor[-1]:.4g} (the loss of a fixed set of training trials at the end, the index's "
             f"\"final loss\"); " if monitor else "")
    display(Markdown(f"{hist['epochs_done']} epochs, {len(loss)} steps, {took}; {final}"
                     f"mean loss of the training batches over the last {len(tail)} steps {sum(tail) / len(tail):.4g} "
                     f"(convergence is judged on the fixed set's loss over the last "
                     f"{100 * training.CONVERGENCE_WINDOW:g} % of the steps)."))


def _blindness(m: dict) -> str:
    """' (the memory-period activity's variance along w is ... of its leading PC's, ...× a random
    direction's)', from w's variance alignment; '' where it is not known."""
    va, null = m.get("output_var_alignment"), m.get("output_var_alignment_null_mean")
    if va is None or not null:
        return ""
    return (f" (the memory-period activity's variance along w is {va:.2g} of its leading PC's, {va / null:.2g}× a "
            "random direction's)")


def participation_summary(coef_I, coef_w) -> None:
    """Whether I's and w's participation ratios lie within the middle 95 % of a random direction's
    (alignment.participation_chance), said in one sentence."""
    chance = alignment.participation_chance(len(coef_I))
    ratios = [(name, k, v) for name, coef in (("I", coef_I), ("w", coef_w))
              for k, v in ratios_of_coefficients(coef).items() if k in chance]
    inside = [(name, k) for name, k, v in ratios if chance[k][1] <= v <= chance[k][2]]
    if len(inside) == len(ratios):
        text = (f"All {len(ratios)} ratios lie within the middle 95 % of a random direction's: over all N eigenvectors "
                "they cannot tell I or w from a random vector (the top-k shares below test each against random vectors).")
    else:
        outside = ", ".join(f"{k} of {name}" for name, k, v in ratios if (name, k) not in inside)
        text = (f"{len(inside)} of the {len(ratios)} ratios lie within the middle 95 % of a random direction's; "
                f"outside it: {outside}.")
    display(Markdown(text))


def weights_summary(ctx: Context, sd: dict) -> None:
    """How far I and w each moved from their initialisation (analysis.precision.init_confound), beside
    their cosine before and after training: where they start as one direction, the final cosine mostly
    says how far w moved."""
    c = _precision.init_confound(ctx.cfg, sd)
    moved = (f"In training I turned from its initialisation to cos(I, I₀) = {c['input_drift_cosine']:.3f} and w to "
             f"cos(w, w₀) = {c['output_drift_cosine']:.3f}; cos(I, w) went from {c['weight_correlation_init']:.3f} to "
             f"{_precision.weight_correlation(sd['I'], sd['w']):.3f}.")
    display(Markdown(moved + (" I₀ and w₀ are one direction here, so the final cos(I, w) mostly measures how far "
                              "w moved from its start, not an alignment training made." if not ctx.control else "")))


def _noise_growth(m: dict) -> str:
    """'Under state noise the in-range error grows 7.5× at σ = 0.01, ...': each precision_noise_<σ> over
    the in-range precision without noise ('' where either is missing)."""
    inr = m.get("precision_trained_range")
    levels = [(s, m[f"precision_noise_{s:g}"]) for s in NOISE_SIGMAS if m.get(f"precision_noise_{s:g}") is not None]
    if not inr or not levels:
        return ""
    grows = ", ".join(f"{float(f'{v / inr:.2g}'):g}× at σ = {s:g}" for s, v in levels)  # 2 digits, no exponent
    return (f"Under state noise (s.d. σ·√(dt/τ) per step, σ in units of h; {NOISE_DRAWS} seeded draws per duration) "
            f"the in-range error grows {grows}.")


def _sweep_in_range(cfg, m: dict) -> str:
    """'; of the sweep's 20 in-range durations (50–240 ms, every 10 ms), 13 do' (sweep_held_in_range),
    '' where the metrics have no such share."""
    share = m.get("sweep_held_in_range")
    ds = [d for d in sweep_durations(cfg) if cfg.in_trained_range(d)]
    if share is None or not ds:
        return ""
    k = round(share * len(ds))
    step = ds[1] - ds[0] if len(ds) > 1 else None
    every = f", every {step} ms" if step and all(b - a == step for a, b in zip(ds, ds[1:])) else ""
    return (f"; of the sweep's {len(ds)} in-range durations ({ds[0]}–{ds[-1]} ms{every}), "
            f"{'none does' if not k else 'all do' if k == len(ds) else f'{k} do'}")


def summary(ctx: Context, m: dict) -> None:
    """What this model does, in a few sentences computed from its metrics."""
    cfg = ctx.cfg
    inr, better, ex = m.get("precision_trained_range"), m.get("improvement_over_untrained"), m.get("precision_extrapolation")
    parts = []
    if inr is not None:
        parts.append(f"Inside the trained range ({cfg.trained_range_text}) the plateau's mean squared error "
                     f"is {inr:.3g} a.u.²" + (f", {better:.0f}× better than the same network untrained" if better else "")
                     + ".")
    if ex is not None:
        parts.append(f"Outside it (extrapolation) the error is {ex:.3g} a.u.²; the original's precision, the mean "
                     f"over all test durations, is {m['precision']:.3g}.")
    held = m.get("plateau_held_trained_window")
    n_in = sum(cfg.in_trained_range(int(d)) for d in m.get("precision_by_duration", {}))
    n_held = round(held * n_in) if held is not None and n_in else None
    if n_held is not None:
        parts.append(f"{n_held} of the {n_in} in-range test plateaus {'stays' if n_held == 1 else 'stay'} within "
                     f"{100 * HOLD_TOLERANCE:g} % of {'its' if n_held == 1 else 'their'} target "
                     f"through the trained window ({cfg.trained_window_ms / 1000:g} s after the "
                     f"cost onset)" + _sweep_in_range(cfg, m) + ".")
    if m.get("converged") is not None:
        fall = f"{100 * m['loss_fall_last_20pct']:.0f} % of the window's mean loss"
        decays = cfg.train.lr_schedule != "constant"
        last = f"{100 * training.CONVERGENCE_WINDOW:g} %"
        parts.append(f"Training converged: the loss's trend fell {fall} over the last {last} of the steps"
                     + (" (the learning rate decays to 0 there, so this says the loss settled, not that more steps "
                        "could not lower it)." if decays else ".") if m["converged"] else
                     f"Training had not converged: the loss's trend still fell {fall} over the last {last} of the "
                     "steps.")
    a = cfg.analysis
    window = (f"the memory window: {a.mem_start_ms / 1000:g}–{a.mem_T_ms / 1000:g} s from the start of the memory "
              f"trials, which have a pulse of each test duration with its onset at {a.mem_onset_ms:g} ms")
    mech = m.get("memory_mechanism")
    if mech in ("attractor", "transient"):
        parts.append(f"By the mechanism rule the plateau is held by a {mech}: the state "
                     + ("settles" if mech == "attractor" else "keeps moving") + f" (it travels "
                     f"{100 * m['state_travel']:.0f} % of its norm over {window}) while the output "
                     + ("holds" if n_held == n_in else "error stays far below the untrained network's (the ratio "
                        "above), though not every in-range plateau stays within its band")
                     + ("." if mech == "attractor" else "; the readout is nearly blind to the state's motion"
                        + _blindness(m) + ". The rule reads only how far the state travels: a limit cycle or "
                        "chaotic motion the readout ignores would read the same."))
    elif mech == "no memory":
        parts.append("The network does not hold the trained plateaus.")
    if noise := _noise_growth(m):
        parts.append(noise)
    by, se = m.get("lyapunov_per_s_by_duration") or {}, m.get("lyapunov_se_per_s_by_duration") or {}
    spread = m.get("lyapunov_start_spread_per_s_by_duration") or {}
    lag = m.get("lyapunov_decorrelation_ms_by_duration") or {}
    inside = [d for d in by if cfg.in_trained_range(int(d))]
    if inside:
        blocks = m.get("lyapunov_blocks")
        block_ms = cfg.memory_window_ms / blocks if blocks else None
        each = "; ".join(f"{d} ms: {by[d]:.3g} /s, "
                         + prose.lyapunov_phrase(by[d], se.get(d), blocks, spread.get(d), block_ms, lag.get(d))
                         for d in inside)
        parts.append(f"The largest finite-time Lyapunov exponent along each in-range memory trajectory, over the memory "
                     f"window: {each}.")
    display(Markdown(" ".join(parts)))


def alignment_summary(m: dict, A: dict) -> None:
    """I's and w's share of their squared norm in the PCs that carry 90 % of the variance, against
    a random vector's (k/N on average; the percentile among 1000 of them and its two-sided Monte Carlo
    p), and what w's alignment with the memory PCs can show: their covariance is taken within each
    trial, so w'Cw is the output's variance within the window (pca.readout_variances)."""
    n_null = alignment.N_NULL

    def rank(pct: float) -> str:
        p = alignment.null_p(pct, n_null)
        where = (f"above every one of the {n_null} random vectors" if pct >= 100 - 50 / n_null else
                 f"below every one of the {n_null} random vectors" if pct <= 50 / n_null else
                 f"above {pct:.1f} % of {n_null} random vectors" if pct >= 50 else
                 f"below {100 - pct:.1f} % of {n_null} random vectors")
        p_said = f"p ≤ {p:.1g}" if p <= 2.0 / (n_null + 1) * (1 + 1e-9) else f"p = {p:.2g}"
        return f"{where} (two-sided {p_said}{'; consistent with chance' if p > 0.05 else ''})"

    parts = []
    for v, name, where in (("input", "I", "spontaneous"), ("output", "w", "memory-period")):
        k, f, null = m[f"{v}_topk90_k"], m[f"{v}_topk90_fraction"], m[f"{v}_topk90_null_mean"]
        parts.append(f"{name} puts {f:.2g} of |{name}|² in the {k} PC{'s' if k != 1 else ''} that carry 90 % of the "
                     f"{where} variance, where a random vector puts {null:.2g} on average (k/N in expectation): "
                     f"{f / null:.2g}× chance, "
                     f"{rank(m[f'{v}_topk90_null_pct'])}.")
    n_measures = len(alignment.LEVELS) + 1
    parts.append(f"Each vector is measured {n_measures} ways in the table below ({len(alignment.LEVELS)} top-k levels and "
                 f"the variance alignment), {2 * n_measures} p values in all, uncorrected: a single p near 0.05 among them "
                 "is weak evidence.")
    w_norm = float(np.linalg.norm(A["mem_coef_w"]))
    y = np.asarray(A["traj_readout"]) * w_norm  # the output of the memory trials
    within, between = pca.readout_variances(y[:, int(A["traj_phase_steps"][1]):])
    parts.append(f"What w's place among the memory PCs can show is limited: their covariance is taken within each "
                 f"trial, so w'Cw is the output's variance within the memory window ({within:.2g} a.u.², the mean over "
                 f"the {len(y)} trials), which any readout that holds flat plateaus keeps small; the variance w must "
                 f"carry, between the durations' plateaus ({between:.2g} a.u.²), is not in that covariance.")
    parts.append(coding_sentence(m.get("readout_coding_cosine"), m.get("readout_coding_cosine_untrained"),
                                 len(A["mem_coef_w"]), plots.coding_fitted_ms(A, A["eval_durations_ms"])))
    display(Markdown(" ".join(parts)))


def coding_sentence(c: float | None, c0: float | None, n: int, fitted_ms: list) -> str:
    """How w lies to the direction u that codes duration (metrics readout_coding_cosine c and
    readout_coding_cosine_untrained c0, N = n, u fitted to the trials of fitted_ms): its cosine
    against a random direction's mean |cos| with the exact two-sided p, the untrained network's,
    why a trained readout cannot be orthogonal to u (and that the mean output falls with the
    duration where w·u < 0), and the share of the squared separation along
    u that a readout along w sees (cos²)."""
    if c is None:
        return "The memory window's mean rate does not change with the pulse's duration: there is no coding direction."
    chance, p = alignment.cosine_chance(n), alignment.cosine_null_p(c, n)
    p_said = f"p = {p:.2g}" if p >= 1e-4 else "p < 1e-4"
    before = ("" if c0 is None else f" (before training {c0:.2f}, the untrained w against the untrained network's "
                                     f"own u: exact p = {alignment.cosine_null_p(c0, n):.2g})")
    on = " and ".join(f"{d}" for d in fitted_ms)
    task = ("so a trained w off orthogonal to u is what the task asks, no separate finding; what the number adds is"
            if c > 0 else "and here w·u < 0: the window's mean output falls as the pulse lengthens, against what the "
            "task asks. What the number adds is")
    return (f"Against the direction u along which the memory window's mean rate changes with the pulse's duration "
            f"(the least-squares slope over the {on} ms trials{': with two, their difference' if len(fitted_ms) == 2 else ''}; "
            f"the coding projections below), w lies at cosine "
            f"{c:.2f}{before}, where a random direction's mean |cos| is {chance:.3f} ({abs(c) / chance:.2g}×; exact "
            f"two-sided {p_said} for N = {n}). An output that rises with the pulse's duration needs w·u > 0, {task} how "
            f"much of the separation along u a readout along w sees: cos² = {100 * c * c:.2g} % of its square.")


@dataclass
class Population:
    """What the population notebook shows, read from the run's folders (analysis.population)."""

    main: "object"  # pandas DataFrame, one row per seed
    control: "object | None"
    both: "object"  # both ensembles, with an `ensemble` column
    runs: dict  # {ensemble: {seed: its analysis arrays}} (pipeline.store.runs)
    table: "object"  # the statistics (analysis.stats.against)
    power: dict
    labels: dict
    networks: list
    curves: "object"
    error: "object"
    overlaps: "object"
    ensembles: "object | None"  # main against control (analysis.stats.compare_groups), or None
    pooled: "object | None" = None  # both ensembles tested together, the ensemble a covariate, or None
    run_dir: Path = Path(".")
    beside: "object | None" = None  # the main seeds beside the original's table (analysis.published.distributions)


def population(ctx: Context) -> Population:
    """Read the run's seeds (and its control ensemble) and compute the population statistics."""

    main = store.table(ctx.run_dir)
    control = store.table(ctx.params["control_dir"]) if ctx.params["control_dir"] is not None else None
    folders = {"main": (ctx.run_dir, main["seed"].tolist())}
    tables = {"main": main}
    if control is not None:
        folders["control"] = (ctx.params["control_dir"], control["seed"].tolist())
        tables["control"] = control
    runs = store.runs(folders)
    both = pop.combine(tables)
    table, power = pop.statistics(main)
    pooled = (pop.statistics(both, pool_by="ensemble")[0] if ctx.params["pool_ensembles"] and control is not None
              else None)
    labels = {**pop.PREDICTORS, **pop.NETWORK_MEASURES}
    # the original's table holds networks of the paper's configuration: only such a run is compared with it
    beside = None if ctx.cfg.miniature_text() else published.distributions(original.published_table(), main)
    return Population(main, control, both, runs, table, power, labels, store.networks(ctx.run_dir, main),
                      pop.plateau_curves(runs), pop.error_over_time(runs, ctx.cfg), pop.subspace_overlaps(runs),
                      pop.compare_ensembles(main, control), pooled, Path(ctx.run_dir), beside)


def memory_points_section(m: dict, A: dict) -> None:
    """Where the memory states lie in G's flow: the fixed point nearest the mid-window state of each
    test duration, then every point that searches started from the memory trajectories found (a fixed
    point: q at most the threshold in A's points_constants)."""
    norm, near = m["memory_state_norm_by_duration"], m["memory_nearest_point_norm_by_duration"]
    unstable, dist = m["memory_nearest_point_unstable_by_duration"], m["memory_nearest_point_relative_distance_by_duration"]

    other = {k: m.get(f"memory_nearest_nonzero_point_{k}_by_duration", {}) for k in ("norm", "unstable",
                                                                                      "relative_distance")}

    # the origin: a point within the merge tolerance of it, as dynamics.nearest_fixed_points counts it
    at_origin = {d: near[d] <= dynamics.merge_tolerance(len(A["mem_coef_w"])) for d in norm}

    def nearest(d) -> str:
        modes = prose.count(unstable[d], "unstable mode")
        if not at_origin[d]:
            return (f"{d} ms: the state's |h| = {norm[d]:#.3g}; the nearest point has |h*| = {near[d]:#.3g} and {modes}, "
                    f"{prose.share_of_norm(dist[d])} of |h| away")
        # every state lies exactly |h| from the origin: that distance says nothing more; the next one does
        said = f"{d} ms: the state's |h| = {norm[d]:#.3g}; the nearest point is the origin (h* = 0, {modes})"
        if other["relative_distance"].get(d) is None:
            return said + ", and G has no other known fixed point"
        return (said + f"; the nearest other has |h*| = {other['norm'][d]:#.3g} and "
                f"{prose.count(other['unstable'][d], 'unstable mode')}, {other['relative_distance'][d]:.1%} of |h| away")

    origin = any(at_origin.values())
    closest = min(dist[d] for d in norm)
    display(Markdown(f"At the middle of the memory window, the state h and the fixed point h* of G nearest it (of the "
                     f"{m['fixed_points_with_memory']} known: G's census and those that searches started from these "
                     f"trajectories found; the searches are not exhaustive, so a point none of them reached may lie "
                     f"nearer): {'; '.join(nearest(d) for d in norm)}. "
                     + ("Where the origin is the nearest, no other known fixed point lies within |h| of the state. "
                        if origin else "")
                     + (f"A state at least {prose.share_of_norm(closest, down=True)} of its norm away from every fixed "
                        f"point known "
                        f"to this analysis is not held at one of them. " if closest >= 0.1 else "")
                     + f"Below, a point is fixed where q ≤ {float(A['points_constants'][1]):.0e} "
                     "(q = |F(h)|²/2, F in units of h per τ)."))
    display(tables.points(m["memory_points"]))


def fine_step_section(ctx: Context, m: dict) -> None:
    """For a model trained with a step coarser than the paper's: its test plateaus again at the
    paper's 1 ms step (analysis.stepsize), and what that says; nothing for the paper's step."""
    if "fine_step_dt_ms" not in m:
        return
    cfg, f = ctx.cfg, m["fine_step_dt_ms"]
    display(Markdown(f"## The same network at a {f:g} ms step\n\n" + prose.fine_step_phrase(m, cfg) + "."))
    display(tables.fine_step(m, cfg))


def network_section(ctx: Context, m: dict) -> None:
    """The network G's own dynamics for a checkpoint analysed on its own; in a run, a pointer to the
    population report, where they are shown once per G."""

    if ctx.in_run:
        display(Markdown("This seed's G is analysed once for its whole run: see the population report "
                         f"(network `{m['network_key']}`)."))
        return
    net = store.load_network(ctx.run_dir, m["network_key"])
    display(Markdown(f"Spontaneous dimensionality {m['network_dim_spontaneous']:.3g} PCs. The spontaneous activity is "
                     + prose.spontaneous_phrase(m) + ". " + prose.census_phrase(m) + "."))
    display(tables.census(m["network_points"]))
    if net is not None and len(net.census):
        plots.show(plots.fixed_point_spectra(net.points, "Modes around G's fixed points (one of each mirror pair)",
                                             net.points.mirrors()))


def describe_population(ctx: Context, P: Population) -> None:
    """Which run and which ensembles the population report shows."""

    c = ctx.cfg
    shared = pop.shares_G(P.both)
    where = "this notebook's folder" if _is_cwd(ctx.run_dir) else f"`{shown(ctx.run_dir)}`"
    text = (f"**Run in {where}**, profile `{c.profile}`: {prose.count(len(P.main), 'seed')} of the seed-compatible "
            "ensemble"
            + (f" and {len(P.control)} of the control ensemble (I and w initialised independently)"
               if P.control is not None else " (no control ensemble)") + ". "
            + ("Every network shares one recurrent matrix G" + (", the control ones included." if P.control is not None
                                                                    else ".") if shared else
               "Every seed has a G of its own.")
            + f" {c.model.hidden_size} units, τ = {c.model.tau_ms:g} ms, dt = {c.model.dt_ms:g} ms; trained pulses "
              f"{c.trained_range_text}; test durations {', '.join(f'{d} ms' for d in c.analysis.durations_ms)} "
              f"({c.pulse_rule_text}).")
    display(Markdown(text))
    _miniature(c)


def answer(P: Population, cfg) -> None:
    """The original question answered from this run (configuration `cfg`), one point per line."""

    lines = prose.answer(P.main, P.control, P.table, P.power, P.labels, P.ensembles, cfg)
    if P.beside is not None:
        lines.append(prose.original_line(P.beside, tables.PUBLISHED_LABELS))
    display(Markdown("\n".join(f"- {line}" for line in lines)))
    store.write_answer(P.run_dir, len(P.main), len(P.control) if P.control is not None else 0, lines)


def networks_section(P: Population) -> None:
    """G's analysis once when the seeds share it: the spontaneous activity, and every point of G's
    flow the run found (from G's own search and near every seed's memory trajectories), united, with
    their modes (one of each mirror pair); else a row per seed."""

    if not pop.shares_G(P.main):
        display(tables.network_measures(P.main))
        return
    m = P.main.iloc[0]
    n_ctl = len(P.control) if P.control is not None and pop.shares_G(P.both) else 0
    who = ("**G**" if len(P.main) + n_ctl == 1 else
           f"**G, shared by all {len(P.main) + n_ctl} networks ({len(P.main)} main, {n_ctl} control)**" if n_ctl else
           f"**G, shared by all {len(P.main)} seeds**")
    display(Markdown(f"{who} (network `{m['network_key']}`): one observation of the architecture, not one per seed. "
                     f"Spontaneous dimensionality {m['network_dim_spontaneous']:.3g} PCs; the spontaneous activity is "
                     + prose.spontaneous_phrase(m) + ". " + prose.census_phrase(m) + "."))
    for net in P.networks:
        pts, found, mirror = pop.points_of_G(net, P.both, P.runs)
        n_fixed = int(pts.fixed.sum())
        unreached = int((pts.fixed & (mirror < 0)).sum())  # the origin is its own mirror
        known = (f"the mirrors of {prose.count(unreached, 'fixed point')} were not reached, so G has at least "
                 f"{n_fixed + unreached} fixed points" if unreached else "every fixed point's mirror was reached")
        display(Markdown(f"United with the points that searches started from every seed's memory trajectories found "
                         f"(the memory period has no input: the state follows G's flow): {n_fixed} fixed points and "
                         f"{len(pts) - n_fixed} "
                         f"moving points (local minima of the speed, not necessarily on a trajectory; several may "
                         f"belong to one slow region). The flow is odd, F(−h) = −F(h), so the mirror −h of every point "
                         f"is a point of the flow too, with the same speed and, at a fixed point, the same modes. The "
                         f"table pairs a point with the one a search reached within "
                         f"{dynamics.MERGE_TOLERANCE_PER_ROOT_N:g}√N of its −h (each point with one other): a fixed "
                         f"point with its mirror; a moving point, which the searches reach only approximately, with a "
                         f"point near its mirror whose speed can differ; {known}."))
        display(tables.collapsed(tables.points(pts.records(), found, mirror), "Every point, with where it was found"))
        if n_fixed:
            plots.show(plots.fixed_point_spectra(pts, "Modes around G's fixed points (one of each mirror pair)",
                                                 mirror))
        plots.show(plots.spectrum({"spontaneous activity of G": net.spontaneous.eigvals}))


def statistics_section(P: Population, cfg: _config.Config) -> None:
    """The tests of every measure against in-range precision, what this n can detect, and the
    measures shown but not tested, with why (and what the memory exponents show one by one and
    together: prose.memory_exponents_summary)."""

    if not len(P.table):
        _too_few(P, "measure is tested against precision")
        return
    display(tables.statistics(P.table, P.labels))
    tables.power(P.power)
    if P.pooled is not None:
        display(tables.statistics(P.pooled, P.labels, pooled=True))
    plots.show(population_plots.rho_table_plot(P.table, P.labels))
    spread = [c for c in ("pr_input_l1_spread", "pr_input_l2_spread", "pr_output_l1_spread", "pr_output_l2_spread")
              if c in P.main]
    worst = float(P.main[spread].max().max()) if spread else None
    ks = [f"{prose.span(P.main[f'{v}_topk90_k'])} for {name}" for v, name in (("input", "I"), ("output", "w"))
          if f"{v}_topk90_k" in P.main]
    display(Markdown("Not tested: " + "; ".join(f"**{k}**: {v}" for k, v in pop.UNTESTED.items())
                     + (f". In this run the seeds' k (the PCs that carry 90 % of the variance) is "
                        f"{' and '.join(ks)}" if ks else "")
                     + (f". In this run the participation ratios of the same model simulated in float32 and float64 "
                        f"differ by up to {prose.ceil_sig(100 * worst):.2g} %" if worst is not None else "")
                     + "." + prose.memory_exponents_summary(P.both, cfg)
                     + " The original's precision (the mean over every test duration, extrapolation included) is "
                       "shown in the tables but not tested: it mixes the trained task with extrapolation."))


#: Spearman's rho needs at least this many seeds to say anything (at n = 2 it is always +-1)
MIN_N_RHO = 3
#: the fewest seeds a matrix of correlations between the measures is drawn for
MIN_N_HEATMAP = 8


def _too_few(P: Population, what: str) -> bool:
    """True (after saying so) when the main ensemble has too few seeds, or no measure that varies, for `what`."""
    n = len(P.main)
    if n < MIN_N_RHO:
        display(Markdown(f"No {what}: the main ensemble has {prose.count(n, 'seed')}, and a rank correlation needs "
                         f"at least {MIN_N_RHO} to mean anything."))
        return True
    if not pop.predictors(P.main):
        display(Markdown(f"No {what}: no per-seed measure takes more than one value in this run."))
        return True
    return False


def predictor_figure(P: Population) -> None:
    """Each measure against in-range precision, one panel each (population_plots.predictor_panels)."""
    if _too_few(P, "panels of the measures against precision"):
        return
    labels = {k: P.labels[k] for k in pop.predictors(P.main)}
    plots.show(population_plots.predictor_panels(P.both, P.table, labels, pop.BOUNDS))


def correlation_figure(P: Population) -> None:
    """Spearman's rho between every pair of per-seed measures and the two precisions (descriptive)."""
    if _too_few(P, "correlations between the measures"):
        return
    if len(P.main) < MIN_N_HEATMAP:
        display(Markdown(f"No correlation matrix at n = {len(P.main)}: below {MIN_N_HEATMAP} seeds rank correlations "
                         "between measures take few distinct values and many reach ±1 by chance. Each measure is set "
                         "against precision above."))
        return
    cols = ["precision", "precision_trained_range", *pop.predictors(P.main)]
    names = {"precision": "precision", "precision_trained_range": "in-range precision", **P.labels}
    title = f"Spearman correlation between measures (main ensemble, n = {len(P.main)}; descriptive)"
    matrix = stats.correlation_matrix(P.main, cols).rename(index=names, columns=names)
    plots.show(population_plots.correlation_heatmap(matrix, title))


def overlap_section(ctx: Context, P: Population) -> None:
    """The overlap of the seeds' memory subspaces (their N_PROJECTED leading memory PCs): read out
    per kind of pair, and the matrix."""
    k = _metrics.N_PROJECTED
    display(Markdown(prose.overlap_summary(P.overlaps, k, ctx.cfg.model.hidden_size)))
    plots.show(population_plots.overlap_heatmap(P.overlaps, k, ctx.cfg.model.hidden_size))


def ensembles_section(P: Population) -> None:
    """Main against control, when the run has a control ensemble: the exact tests and every seed."""

    if P.control is None:
        display(Markdown("This run has no control ensemble (`sysa run --control`)."))
        return
    display(tables.ensemble_tests(P.ensembles, pop.ENSEMBLE_MEASURES))
    plots.show(population_plots.ensemble_comparison(P.both, pop.ENSEMBLE_MEASURES, P.ensembles,
                                                    log=("precision_trained_range",)))


def beside_original_section(P: Population) -> None:
    """The main seeds beside the original's published table, for a run of the paper's configuration
    (the table holds paper-scale networks): what must match, the exact tests, every seed."""
    if P.beside is None:
        display(Markdown("The original's table holds networks of the paper's configuration; this run's differ "
                         "(above), so they are not compared with it. The shipped paper study (`make paper-report`) is."))
        return
    pub = original.published_table()
    display(Markdown(prose.beside_original(P.beside, published.init_cosines(P.main), original.source(),
                                           tables.PUBLISHED_LABELS)))
    display(tables.beside_original(P.beside))
    plots.show(population_plots.beside_original(pub, P.main, published.MEASURES, tables.PUBLISHED_LABELS))
    sbs = published.side_by_side(pub, P.main)
    display(tables.collapsed(tables.published_rows(sbs), f"Seed by seed ({len(sbs)} seeds in both)"))


def terms(ctx: Context) -> None:
    """What the report's terms and abbreviations mean, for the run's configuration (report.legend)."""
    display(Markdown("\n".join(f"- **{k}**: {v}" for k, v in report.legend(ctx.cfg).items())))
