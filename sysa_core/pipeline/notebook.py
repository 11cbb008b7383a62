"""Helpers the notebooks call, so each notebook stays a parameters cell plus a few calls.

`setup` checks the parameters papermill injected (unknown names, wrong types) and resolves the
one `Config` and the folder the notebook works in; `model` trains or loads the network; `analysis`
reads the per-model analysis from the folder's cache or computes it once (analysis.metrics)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from IPython.display import Markdown, display

from .. import config as _config
from .. import files, training
from ..analysis import metrics as _metrics
from ..errors import UserError

_SEED = {"profile": str, "seed": int, "overrides": list, "run_dir": str}
PARAMETERS = {
    "train": _SEED,
    "inspect": {**_SEED, "checkpoint": str},
    "pca": {**_SEED, "checkpoint": str},
    "population": {"profile": str, "run_dir": str, "control_dir": str},
}
#: the profile of an empty `profile` parameter (a checkpoint without sysa's metadata: `paper`)
DEFAULT_PROFILE = "quick"
_KERNEL_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}


@dataclass
class Context:
    """What a notebook works on: the configuration, its folder, and the checkpoint file it reads.

    run_dir: the seed's folder (per-seed notebooks; for a checkpoint given by path, the folder of
    its analysis) or the run's folder (population); checkpoint: the file given by the `checkpoint`
    parameter, else None (the seed folder's own checkpoint, trained there when needed)."""

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
    def label(self) -> str:
        """'seed 3 (quick)', 'control seed 3 (quick)' or the checkpoint's file name."""
        if self.checkpoint is not None:
            return f"{self.checkpoint.name} ({self.cfg.profile})"
        return f"{'control ' if self.control else ''}seed {self.seed} ({self.cfg.profile})"

    def checkpoint_file(self) -> Path:
        """The checkpoint the analyses read: the one given, else the seed folder's."""
        return self.checkpoint or files.checkpoint_path(self.run_dir, self.seed)


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
    """Validate the parameters of notebook `name` and resolve its configuration and folder."""
    p = check_parameters(name, namespace)
    profile = p["profile"] or None
    if name == "population":
        cfg = _config.resolve(profile or DEFAULT_PROFILE)
        run_dir = Path(p["run_dir"]) if p["run_dir"] else files.default_run_dir(cfg.profile)
        p["control_dir"] = Path(p["control_dir"]) if p["control_dir"] else None
        return Context(name, cfg, run_dir, p)
    if p.get("checkpoint"):
        path = Path(p["checkpoint"])
        seed = files.seed_from_name(path)  # the file's own seed; the `seed` parameter when its name has none
        cfg = _config.for_checkpoint(path, profile, p["overrides"], p["seed"] if seed is None else seed)
        files.load_checkpoint(path, hidden_size=cfg.model.hidden_size)  # a readable checkpoint, before any work
        run_dir = Path(p["run_dir"]) if p["run_dir"] else files.default_analysis_dir(path, files.sha256(path))
        return Context(name, cfg, run_dir, p, checkpoint=path)
    cfg = _config.resolve(profile or DEFAULT_PROFILE, p["overrides"], seed=p["seed"])
    run_dir = Path(p["run_dir"]) if p["run_dir"] else files.seed_dir(files.default_run_dir(cfg.profile), cfg.seed)
    return Context(name, cfg, run_dir, p)


def model(ctx: Context, progress: bool = True) -> dict:
    """The network's state dict {G, I, w, h0}: the checkpoint given, else this seed's, loaded from
    its folder or trained there first (an interrupted training resumes)."""
    if ctx.checkpoint is not None:
        return files.load_checkpoint(ctx.checkpoint)["state_dict"]
    return training.train(ctx.cfg, ctx.run_dir, progress=progress)


def history(ctx: Context) -> dict | None:
    """The training metadata (configuration, histories) beside the checkpoint, or None when it
    has none (the original's checkpoints)."""
    path = files.meta_path(ctx.checkpoint_file().parent, ctx.seed)
    if not path.exists():
        return None
    meta = files.read_json(path)
    return meta if isinstance(meta, dict) and "history" in meta else None


def analysis(ctx: Context) -> _metrics.ModelAnalysis:
    """Every per-model number and the arrays the figures need, for the checkpoint on disk: read from
    the cache in ctx.run_dir when it was computed from the same bytes, configuration and code,
    else computed once and cached there (analysis.metrics.load_or_analyse)."""
    path = ctx.checkpoint_file()
    ck = files.load_checkpoint(path, hidden_size=ctx.cfg.model.hidden_size)
    result, _ = _metrics.load_or_analyse(ctx.cfg, ck["state_dict"], ctx.run_dir, files.sha256(path), ck["epoch"],
                                         ck["extra"])
    return result


def describe(ctx: Context) -> None:
    """A short statement of what this notebook shows: the model, its configuration and folder."""
    c = ctx.cfg
    m, t = c.model, c.task
    lo, hi = c.trained_range_ms
    init = ("I and w initialised independently (control)" if ctx.control
            else "the original's seed-compatible initialisation (I = √N·w at the start)")
    source = (f"checkpoint `{ctx.checkpoint}`" if ctx.checkpoint is not None else f"seed {ctx.seed}")
    display(Markdown(
        f"**{source}**, profile `{c.profile}`: {m.hidden_size} units, τ = {m.tau_ms:g} ms, dt = {m.dt_ms:g} ms, "
        f"g = {m.g_G:g}; {init}. Trials of {t.Nt_ms / 1000:g} s, pulses of {lo:g}–{hi - m.dt_ms:g} ms, "
        f"plateau target from {t.cost_onset_ms / 1000:g} s on. Test durations "
        f"{', '.join(f'{d} ms' for d in c.analysis.durations_ms)}. Folder: `{ctx.run_dir}`."))


def training_summary(ctx: Context, hist: dict | None) -> None:
    """Epochs, steps, training time and the final loss of this model's training."""
    if hist is None:
        display(Markdown(f"`{ctx.checkpoint_file().name}` has no sysa training metadata beside it (the "
                         "original's checkpoints have none): no histories to show."))
        return
    loss = hist["history"]["loss"]
    tail = loss[-max(1, len(loss) // 10):]
    display(Markdown(f"{hist['epochs_done']} epochs, {len(loss)} steps, {hist['train_seconds']:.1f} s of training; "
                     f"mean loss over the last {len(tail)} steps {sum(tail) / len(tail):.4g}."))
