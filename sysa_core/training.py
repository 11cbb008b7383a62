"""Training (README, Definitions 4): Adam on I and w, per-step loss and gradient norms, a checkpoint
after every epoch in the original's format, resumable, several seeds as one computation.

Convergence is judged on a fixed monitor set (the first MONITOR_TRIALS training trials): its
loss is measured at the end of every epoch in the last 20 % of the steps, free of the batch-to-
batch noise of the per-step losses (see `convergence`)."""
from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch.optim.adam import adam as adam_update
from tqdm import tqdm

from . import files, runtime
from .config import Config
from .engine import ENGINES, clear_scratch, forward_loss
from .errors import TrainingDiverged, UserError
from .files import bare_path, checkpoint_path, code_version, meta_path
from .model import DTYPES, derive_seed, generator, init_weights
from .runtime import resolve_device
from .task import draw_trials

#: training trials whose loss is measured at the end of the epochs of the last 20 % of the steps
MONITOR_TRIALS = 128
#: the share of the steps at the end of training over which convergence is judged
CONVERGENCE_WINDOW = 0.2
#: a model has converged when its loss falls by less than this share over that window
CONVERGENCE_FALL = 0.10

ADAM_GROUP = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-08, "weight_decay": 0, "amsgrad": False,
              "maximize": False, "foreach": None, "capturable": False, "differentiable": False,
              "fused": None, "params": [0, 1, 2, 3]}


@dataclass
class SeedState:
    """Everything that evolves for one model during training."""

    seed: int
    cfg: Config
    folder: Path | None
    weights: dict
    batch_gen: torch.Generator
    epoch: int = 0  # epochs completed
    loss: list = field(default_factory=list)
    grad_I: list = field(default_factory=list)
    grad_w: list = field(default_factory=list)
    adam: dict | None = None  # {'step', 'I': (m, v), 'w': (m, v)} from a checkpoint
    seconds: float = 0.0  # this model's share of the training time (a batch's time split evenly)
    together: int = 1  # the most models it was trained with in one computation (itself included)
    trained_with: list = field(default_factory=list)  # per batch it trained in: its models' names (_name)
    devices: list = field(default_factory=list)  # where the training steps ran, in order of first use
    foreign: bool = False  # loaded from a finished checkpoint without sysa's metadata (the original's files)
    monitor_step: list = field(default_factory=list)  # steps after which the monitor loss was measured
    monitor_loss: list = field(default_factory=list)  # the training loss of the monitor set there
    _trials: object = None  # drawn when its batch trains, released after (release_trials)

    @property
    def trials(self):
        """The model's training trials, drawn from its own seed's stream when first needed: only the
        models of the batch in training hold theirs, as training.memory_needed counts."""
        if self._trials is None:
            self._trials = draw_trials(self.cfg, self.cfg.train.n_trials, generator(derive_seed(self.seed, "trials")))
        return self._trials

    def release_trials(self) -> None:
        self._trials = None


def batch_indices(gen: torch.Generator, n_trials: int, batch_size: int) -> torch.Tensor:
    """One step's batch: batch_size distinct trial indices, uniform, drawn only from `gen`."""
    return torch.randperm(n_trials, generator=gen)[:batch_size]


def _new_state(cfg: Config, folder: Path | None) -> SeedState:
    """The model cfg.seed at initialisation, with its training trials and batch generator."""
    seed = cfg.seed
    dtype = DTYPES[cfg.model.dtype]
    weights = {k: v.to(dtype) for k, v in init_weights(cfg.model, seed).items()}
    return SeedState(seed, cfg, folder, weights, generator(derive_seed(seed, "batches")))


def _resume(st: SeedState) -> SeedState:
    """Continue from the last complete epoch if the folder holds a checkpoint of this configuration."""
    if st.folder is None:
        return st
    path = checkpoint_path(st.folder, st.seed)
    if not path.exists():
        return st
    ck = files.load_checkpoint(path, hidden_size=st.cfg.model.hidden_size)
    ex = ck["extra"]
    if "training_id" not in ex:
        return _foreign(st, path, ck)
    if ex["training_id"] != st.cfg.training_id():
        raise UserError(f"{path}: was trained with another configuration; use another output folder "
                        f"(or delete this one; sysa run --force does that)")
    dtype = DTYPES[st.cfg.model.dtype]
    st.weights = {k: v.to(dtype) for k, v in ck["state_dict"].items()}
    st.epoch = ck["epoch"] + 1
    st.batch_gen.set_state(ex["batch_rng"])
    st.loss, st.grad_I, st.grad_w = (ex[k].tolist() for k in ("loss", "grad_I", "grad_w"))
    st.monitor_step, st.monitor_loss = (ex[k].tolist() for k in ("monitor_step", "monitor_loss"))
    st.seconds, st.trained_with = _so_far(st)
    st.devices = [d for d in str(ex.get("devices", "")).split("+") if d]
    o = ck["optimizer"]["state"]
    st.adam = {"step": o[1]["step"], "I": (o[1]["exp_avg"], o[1]["exp_avg_sq"]),
               "w": (o[2]["exp_avg"], o[2]["exp_avg_sq"])}
    return st


def _so_far(st: SeedState) -> tuple[float, list]:
    """The training time and the batches recorded in the metadata beside the checkpoint (kept out
    of the checkpoint itself, so that the same training writes the same bytes)."""
    try:
        meta = files.read_json(meta_path(st.folder, st.seed))
        return float(meta.get("train_seconds") or 0.0), list(meta.get("trained_with") or [])
    except (UserError, AttributeError, TypeError, ValueError):
        return 0.0, []


def _foreign(st: SeedState, path: Path, ck: dict) -> SeedState:
    """A checkpoint without sysa's resume data (the original's files): taken as the finished model of
    this configuration when it is one of its last epoch; it cannot be continued."""
    last = st.cfg.train.epochs - 1
    if ck["epoch"] != last:
        raise UserError(f"{path}: a checkpoint without sysa's resume data at epoch {ck['epoch']} (this "
                        f"configuration ends at epoch {last}); sysa continues only its own checkpoints, so "
                        f"use another folder")
    dtype = DTYPES[st.cfg.model.dtype]
    st.weights = {k: v.to(dtype) for k, v in ck["state_dict"].items()}
    st.epoch = st.cfg.train.epochs
    st.foreign = True
    return st


#: draws a finished training's figures into its folder: figures(folder, seed, history, cfg), history
#: as in the metadata (train_models' `figures`; the pipeline passes pipeline.plots.training_figures)
Figures = Callable[[Path, int, dict, Config], None]


def _history(st: SeedState) -> dict:
    return {"loss": st.loss, "grad_norm_I": st.grad_I, "grad_norm_w": st.grad_w,
            "monitor_step": st.monitor_step, "monitor_loss": st.monitor_loss}


def _meta(st: SeedState, status: str, message: str | None = None, history: bool = True) -> dict:
    """The training's metadata (the JSON beside the checkpoint). The one written after every epoch
    while training runs leaves out the histories and the convergence (history=False): the
    checkpoint holds them, and encoding thousands of floats as JSON for every model after every
    epoch would take a share of a short epoch that grows with the training."""
    meta = {"seed": st.seed, "status": status, "message": message, "epochs_done": st.epoch,
            "config": st.cfg.to_dict(), "training_id": st.cfg.training_id(), "code_version": code_version(),
            "train_seconds": st.seconds, "trained_together": st.together, "trained_with": st.trained_with,
            # float results are bit-reproducible for the same CPU and thread count (a BLAS product
            # may split its rows differently with another thread count)
            # (and on a GPU they are not claimed bit-reproducible at all: its sums run in any order)
            "torch_threads": torch.get_num_threads(), "device": "+".join(st.devices) or None}
    if history:
        meta["history"] = _history(st)
        meta["convergence"] = convergence(st.monitor_step, st.monitor_loss, st.cfg.train.total_steps)
    return meta


def _epoch_checkpoint(st: SeedState, I: torch.Tensor, w: torch.Tensor, opt_state: dict, row: int) -> dict | None:
    """Take the model's weights after its epoch; its checkpoint object (None when kept in memory)."""
    sd = {"G": st.weights["G"], "I": I[row].clone(), "w": w[row].clone(), "h0": st.weights["h0"]}
    st.weights = sd
    if st.folder is None:
        return None
    optim = {"state": {1: {"step": opt_state["step"].clone(), "exp_avg": opt_state["I"][0][row].clone(),
                           "exp_avg_sq": opt_state["I"][1][row].clone()},
                       2: {"step": opt_state["step"].clone(), "exp_avg": opt_state["w"][0][row].clone(),
                           "exp_avg_sq": opt_state["w"][1][row].clone()}},
             "param_groups": [dict(ADAM_GROUP, lr=learning_rate(st.cfg.train, st.epoch * st.cfg.train.steps_per_epoch - 1))]}
    extra = {"training_id": st.cfg.training_id(), "batch_rng": st.batch_gen.get_state(),
             "loss": torch.tensor(st.loss, dtype=torch.float64),
             "grad_I": torch.tensor(st.grad_I, dtype=torch.float64),
             "grad_w": torch.tensor(st.grad_w, dtype=torch.float64), "devices": "+".join(st.devices),
             "monitor_step": torch.tensor(st.monitor_step, dtype=torch.int64),
             "monitor_loss": torch.tensor(st.monitor_loss, dtype=torch.float64)}
    return {"epoch": st.epoch - 1, "state_dict": sd, "optimizer": optim, "sysa": extra}


#: a batch's epoch checkpoints are committed in two phases: each model's new checkpoint is first
#: written beside its current one under this suffix (with the epoch and the batch's names), then
#: each is moved into place. A kill between the phases is settled on resume (_settle_commits).
NEXT = ".next"


def _next_path(st: SeedState, names: list[str]) -> Path:
    return checkpoint_path(st.folder, st.seed).with_name(
        f"{checkpoint_path(st.folder, st.seed).name}{NEXT}-e{st.epoch - 1}-{','.join(names)}")


def _save_group_epoch(group: list[SeedState], I: torch.Tensor, w: torch.Tensor, opt_state: dict) -> None:
    """Write the checkpoints of a batch's epoch so that a kill never leaves its models at different
    epochs for good: all new checkpoints first (NEXT), then each moved into place, then the metadata."""
    names = [_name(st) for st in group]
    objs = [(st, _epoch_checkpoint(st, I, w, opt_state, row)) for row, st in enumerate(group)]
    saved = [(st, obj) for st, obj in objs if obj is not None]
    if len(saved) == 1:
        st, obj = saved[0]
        files.save_torch(checkpoint_path(st.folder, st.seed), obj)
    else:
        for st, obj in saved:
            files.save_torch(_next_path(st, names), obj)
        for st, _ in saved:
            os.replace(_next_path(st, names), checkpoint_path(st.folder, st.seed))
    for st, _ in saved:
        files.write_json(meta_path(st.folder, st.seed), _meta(st, "running", history=False))


def _settle_commits(models: list[tuple[Config, Path | None]]) -> None:
    """Finish or undo a batch's epoch commit that a kill interrupted (_save_group_epoch): when a
    member of the batch already holds the new epoch, every member still holding its NEXT file takes
    it (the commit had begun); otherwise the NEXT files are removed and the epoch is trained again,
    by the whole batch, to the same bits. Members are found among `models` by name, in the same run."""
    disk = [(cfg, Path(folder)) for cfg, folder in models if folder is not None]
    nexts = {i: sorted(f.glob(f"{checkpoint_path(f, cfg.seed).name}{NEXT}-e*-*")) for i, (cfg, f) in enumerate(disk)}
    for i, paths in nexts.items():
        cfg, folder = disk[i]
        for p in paths:
            m = re.fullmatch(rf".*{re.escape(NEXT)}-e(\d+)-([c0-9,]+)", p.name)
            epoch, names = (int(m.group(1)), m.group(2).split(",")) if m else (None, [])
            members = [next((j for j, (c, f) in enumerate(disk) if model_name(c) == n and _run_of(f) == _run_of(folder)),
                            None) for n in names]
            begun = m is not None and None not in members and any(
                not nexts[j] and _checkpoint_epoch(*disk[j]) == epoch for j in members)
            if begun:
                os.replace(p, checkpoint_path(folder, cfg.seed))
            else:
                p.unlink()


def _run_of(folder: Path) -> Path:
    """The run folder a seed folder belongs to (its control ensemble's seeds included)."""
    parent = Path(folder).resolve().parent
    return parent.parent if parent.name == "control" else parent


def _checkpoint_epoch(cfg: Config, folder: Path) -> int | None:
    try:
        return files.load_checkpoint(checkpoint_path(folder, cfg.seed))["epoch"]
    except UserError:
        return None


def _finish(st: SeedState, figures: Figures | None) -> None:
    """The files of a finished training: the bare state dict, the figures (when given), and the
    metadata saying "complete" with the checkpoint's sha256 (written last: until then the training
    is not complete)."""
    if st.folder is None or st.foreign:
        return
    files.save_torch(bare_path(st.folder, st.seed), st.weights)
    if figures is not None:
        figures(st.folder, st.seed, _history(st), st.cfg)
    files.write_json(meta_path(st.folder, st.seed),
                     {**_meta(st, "complete"), "checkpoint_sha256": files.sha256(checkpoint_path(st.folder, st.seed))})


def _finished(st: SeedState, figures: Figures | None) -> bool:
    """Whether a trained model's folder already holds every file _finish writes, saying "complete"."""
    try:
        meta = files.read_json(meta_path(st.folder, st.seed))
    except UserError:
        return False
    drawn = figures is None or (files.loss_plot_path(st.folder, st.seed).is_file()
                                and files.grad_plot_path(st.folder, st.seed).is_file())
    return isinstance(meta, dict) and meta.get("status") == "complete" and bare_path(st.folder, st.seed).is_file() and drawn


def _train_group(group: list[SeedState], progress: bool, dev: torch.device) -> None:
    """Train seeds that are at the same epoch as one computation, its steps on device `dev`
    (the weights, Adam and the checkpoints stay on the CPU; only G, I, w and h0 travel)."""
    cfg = group[0].cfg
    tc = cfg.train
    step_fn = ENGINES[tc.engine]
    Gs = [st.weights["G"] for st in group]
    G = Gs[0] if all(torch.equal(Gs[0], g) for g in Gs[1:]) else torch.stack(Gs)
    G = G.to(dev)
    I = torch.stack([st.weights["I"] for st in group])
    w = torch.stack([st.weights["w"] for st in group])
    h0 = torch.stack([st.weights["h0"] for st in group]).to(dev)
    names = [_name(st) for st in group]
    for st in group:
        if str(dev) not in st.devices:
            st.devices.append(str(dev))
        if not st.trained_with or st.trained_with[-1] != names:
            st.trained_with.append(names)
    opt = Adam(I, w, [st.adam for st in group] if group[0].adam is not None else None)
    steps_per_epoch = cfg.train.steps_per_epoch
    start = group[0].epoch
    bar = tqdm(total=(tc.epochs - start) * steps_per_epoch, disable=not progress, desc=_label(group))
    try:
        for epoch in range(start, tc.epochs):
            t_epoch = time.perf_counter()
            for it in range(steps_per_epoch):
                batches = [st.trials.subset(batch_indices(st.batch_gen, tc.n_trials, tc.batch_size))
                           for st in group]
                try:
                    res = step_fn(G, I.to(dev), w.to(dev), h0, batches, cfg.alpha,
                                  cfg.model.g_G).cpu()
                except (torch.OutOfMemoryError, MemoryError, RuntimeError) as exc:
                    if isinstance(exc, RuntimeError) and "can't allocate memory" not in str(exc):
                        raise
                    raise UserError(_out_of_memory(group, dev)) from None
                for row, st in enumerate(group):
                    vals = (res.loss[row], res.dI[row], res.dw[row])
                    if not all(torch.isfinite(v).all() for v in vals):
                        _diverged(st, "loss" if not torch.isfinite(vals[0]) else "gradient", epoch, it)
                    st.loss.append(float(res.loss[row]))
                    st.grad_I.append(float(res.dI[row].norm()))
                    st.grad_w.append(float(res.dw[row].norm()))
                try:
                    opt.step(res.dI, res.dw, learning_rate(tc, epoch * steps_per_epoch + it))
                except RuntimeError:  # Adam's step size itself overflows the weights' dtype (huge lr)
                    _diverged(group[0], "parameter update", epoch, it)
                for row, st in enumerate(group):  # never let a non-finite weight reach a checkpoint
                    if not (torch.isfinite(I[row]).all() and torch.isfinite(w[row]).all()):
                        _diverged(st, "weights after the update", epoch, it)
                bar.update(1)
                bar.set_postfix(loss=f"{sum(st.loss[-1] for st in group) / len(group):.4g}")
            if in_monitor_window(tc, epoch):
                losses = monitor_losses(group, G, I.to(dev), w.to(dev), h0)
                for st, loss in zip(group, losses):
                    st.monitor_step.append((epoch + 1) * steps_per_epoch)
                    st.monitor_loss.append(loss)
            elapsed = time.perf_counter() - t_epoch
            opt_state = opt.state()
            for st in group:
                st.epoch = epoch + 1
                st.seconds += elapsed / len(group)
                st.together = max(st.together, len(group))
            _save_group_epoch(group, I, w, opt_state)
    finally:
        bar.close()
        for st in group:
            st.release_trials()


class Adam:
    """torch's Adam with ADAM_GROUP's settings on the I and w of a batch of models, stacked (Adam is
    elementwise, so stacking is exact): a step is torch.optim.adam.adam, the function
    torch.optim.Adam.step calls, with the arguments it passes and the state it keeps (the same
    bits), without the optimizer object, whose step wrapper imports torch._dynamo, the largest
    import of a training process. resumed: each model's Adam state from its checkpoint
    (SeedState.adam), or None to start."""

    def __init__(self, I: torch.Tensor, w: torch.Tensor, resumed: list[dict] | None = None):
        self.params = [I, w]
        if resumed is None:  # as torch.optim.Adam initialises its state
            scalar = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
            self.steps = [torch.tensor(0.0, dtype=scalar) for _ in self.params]
            self.exp_avg = [torch.zeros_like(p) for p in self.params]
            self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        else:
            self.steps = [resumed[0]["step"].clone() for _ in self.params]
            self.exp_avg = [torch.stack([a[k][0] for a in resumed]) for k in ("I", "w")]
            self.exp_avg_sq = [torch.stack([a[k][1] for a in resumed]) for k in ("I", "w")]

    @torch.no_grad()
    def step(self, dI: torch.Tensor, dw: torch.Tensor, lr: float) -> None:
        """Update I and w in place by their gradients, at learning rate lr."""
        beta1, beta2 = ADAM_GROUP["betas"]
        adam_update(self.params, [dI, dw], self.exp_avg, self.exp_avg_sq, [], self.steps,
                    foreach=ADAM_GROUP["foreach"], capturable=ADAM_GROUP["capturable"],
                    differentiable=ADAM_GROUP["differentiable"], fused=ADAM_GROUP["fused"], grad_scale=None,
                    found_inf=None, has_complex=False, decoupled_weight_decay=False,
                    amsgrad=ADAM_GROUP["amsgrad"], beta1=beta1, beta2=beta2, lr=lr,
                    weight_decay=ADAM_GROUP["weight_decay"], eps=ADAM_GROUP["eps"], maximize=ADAM_GROUP["maximize"])

    def state(self) -> dict:
        """{'step', 'I': (exp_avg, exp_avg_sq), 'w': (...)}, stacked over the models (the checkpoints' source)."""
        return {"step": self.steps[0], "I": (self.exp_avg[0], self.exp_avg_sq[0]),
                "w": (self.exp_avg[1], self.exp_avg_sq[1])}


def learning_rate(tc, step: int) -> float:
    """Adam's learning rate at step `step` (0-based) of the epochs * (n_trials // batch_size) steps:
    train.lr throughout ("constant"), or lr (1 + cos(pi step / steps)) / 2 ("cosine", from lr towards 0)."""
    if tc.lr_schedule == "constant":
        return tc.lr
    total = tc.total_steps
    return tc.lr * 0.5 * (1.0 + math.cos(math.pi * step / total))


def in_monitor_window(tc, epoch: int) -> bool:
    """Whether the end of epoch `epoch` (0-based) lies within the last CONVERGENCE_WINDOW of the steps."""
    return epoch + 1 >= (1.0 - CONVERGENCE_WINDOW) * tc.epochs


def monitor_losses(group: list[SeedState], G: torch.Tensor, I: torch.Tensor, w: torch.Tensor,
                   h0: torch.Tensor) -> list[float]:
    """The training loss (README, Definitions 3) of each model's first MONITOR_TRIALS training
    trials, the models of a batch in one forward pass of the engine (engine.forward_loss)."""
    trials = [st.trials.subset(torch.arange(min(MONITOR_TRIALS, len(st.trials)))) for st in group]
    return forward_loss(G, I, w, h0, trials, group[0].cfg.alpha, group[0].cfg.model.g_G).tolist()


def loss_trend(steps, losses) -> tuple[float, float] | None:
    """The Theil-Sen line of the monitor loss against the step: its slope, the median of the slopes
    between every two points at different steps, which a few upward excursions of the loss cannot
    pull the way they pull a least-squares line, and its intercept, the median of loss - slope *
    step (scipy.stats.theilslopes with method="joint" gives the same; training leaves the import
    of scipy.stats to the population report). None without two points at different steps."""
    s, L = np.asarray(steps, dtype=np.float64), np.asarray(losses, dtype=np.float64)
    i, j = np.triu_indices(len(s), 1)
    i, j = i[s[j] != s[i]], j[s[j] != s[i]]
    if not len(i):
        return None
    slope = float(np.median((L[j] - L[i]) / (s[j] - s[i])))
    return slope, float(np.median(L - slope * s))


def convergence(steps: list, losses: list, total_steps: int) -> dict:
    """Whether training converged: the fall of the monitor loss's trend (`loss_trend`) across the
    last CONVERGENCE_WINDOW of the steps relative to the window's mean loss (`loss_fall`, negative
    when the loss rose), `converged` = loss_fall < CONVERGENCE_FALL, and `final_loss` (the monitor
    loss at the end). None values without two points at different steps."""
    trend = loss_trend(steps, losses)
    if trend is None:
        return {"final_loss": float(losses[-1]) if len(losses) else None, "loss_fall": None, "converged": None}
    fall = -trend[0] * CONVERGENCE_WINDOW * total_steps / float(np.mean(losses))
    return {"final_loss": float(losses[-1]), "loss_fall": fall, "converged": bool(fall < CONVERGENCE_FALL)}


def model_name(cfg: Config) -> str:
    """A model's name within a batch (the metadata's trained_with): its seed ('1'; control models,
    independently initialised, 'c1')."""
    return f"{'c' if cfg.model.init == 'independent' else ''}{cfg.seed}"


def _name(st: SeedState) -> str:
    return model_name(st.cfg)


def _label(group: list[SeedState]) -> str:
    """'train seeds 1,2' (control models as c1, c2)."""
    return f"train seed{'s' if len(group) > 1 else ''} {','.join(_name(st) for st in group)}"


def _out_of_memory(group: list[SeedState], dev: torch.device) -> str:
    """The one-line message when a training step does not fit in the device's memory."""
    cfg = group[0].cfg
    need = cfg.steps(cfg.task.Nt_ms) * cfg.train.batch_size * len(group) * cfg.model.hidden_size
    gb = need * DTYPES[cfg.model.dtype].itemsize / 1e9
    seeds = ",".join(str(st.seed) for st in group)
    hint = "train one seed at a time (--no-batch-seeds)" if len(group) > 1 else "use a machine with more memory"
    return (f"seed{'s' if len(group) > 1 else ''} {seeds}: a training step does not fit in the memory of {dev} "
            f"(its rates need up to {gb:.1f} GB); {hint}")


def _diverged(st: SeedState, what: str, epoch: int, it: int) -> None:
    """Stop training: record the failure in the seed's metadata; its checkpoints stay as they are."""
    kept = (f"the last good checkpoint (epoch {st.epoch - 1}) is kept" if st.epoch > 0
            else "no epoch was completed, so no checkpoint was written")
    msg = f"seed {st.seed}: non-finite {what} at epoch {epoch}, step {it} (lr={st.cfg.train.lr}); {kept}"
    if st.folder is not None:
        files.write_json(meta_path(st.folder, st.seed), _meta(st, "failed", msg))
    raise TrainingDiverged(msg)


def _batch_key(cfg: Config) -> str:
    """Models whose training steps can be one computation: the same settings apart from the seed and
    the initialisation scheme (the engine stacks models that share G and those that do not)."""
    m = replace(cfg.model, init="seed_compatible", G_per_seed=False)
    return replace(cfg, seed=0, model=m).training_id()


#: how many models that can share a computation (_batch_key) are stepped as one by default: with
#: 8 x 32 trials the per-step products have enough rows to run near the machine's matrix-product
#: rate (`python -m sysa_core.bench` measures a batch of this size against its FLOP bound). A number
#: of the command, not of the machine, so that the same command forms the same batches, and gives
#: the same bits, on any machine that can hold them; each model's metadata names its batch.
MODELS_PER_BATCH = 8
#: the same on a GPU, where a step's time is set by its thousands of small kernels more than by
#: its FLOPs, so that more models per step cost little more than one: the paper's ensemble,
#: main and control (40 models), as one computation
MODELS_PER_BATCH_GPU = 40
#: the share of the memory available when training starts (runtime.available_memory) that one
#: batch's training step may take; a machine that cannot hold MODELS_PER_BATCH models within it
#: steps fewer at a time (never fewer than one)
BATCH_MEMORY_SHARE = 0.5


def rates_bytes(cfg: Config) -> int:
    """An upper bound of the engine's memory for one model's training step: a batch's rates over
    every step of the trial."""
    return cfg.train.batch_size * cfg.steps(cfg.task.Nt_ms) * cfg.model.hidden_size * DTYPES[cfg.model.dtype].itemsize


def model_bytes(cfg: Config) -> int:
    """A bound on the memory one model adds to a batch: its training step's rates and its training
    trials (inputs and targets)."""
    trials = 2 * cfg.train.n_trials * cfg.steps(cfg.task.Nt_ms) * DTYPES[cfg.model.dtype].itemsize
    return rates_bytes(cfg) + trials


def analysis_bytes(cfg: Config) -> int:
    """A bound on the memory one model's analysis needs at its peak: its longest simulation's rates
    and states (the spontaneous run, the memory trials or the evaluation trials, float64), twice
    over for the copies the analysis makes, or its N x N float64 matrices."""
    a, n = cfg.analysis, cfg.model.hidden_size
    runs = (cfg.steps(a.spont_T_ms), len(a.durations_ms) * cfg.steps(a.mem_T_ms),
            len(a.durations_ms) * cfg.steps(cfg.task.Nt_ms + a.eval_extra_ms))
    return max(2 * 2 * max(runs) * n * 8, 16 * n * n * 8)


def memory_needed(cfg: Config, models_per_batch: int = 1) -> int:
    """A bound on the memory (bytes) a run needs at its peak: a batch's training trials and its
    training step's rates, or a model's analysis, whichever is larger."""
    return max(models_per_batch * model_bytes(cfg), analysis_bytes(cfg))


def models_per_batch(cfg: Config, memory: int | None = None, dev: torch.device = torch.device("cpu")) -> int:
    """How many models of configuration `cfg` the default batching steps as one computation on
    `dev`: MODELS_PER_BATCH on the CPU, MODELS_PER_BATCH_GPU elsewhere, or fewer when their memory
    (model_bytes each) would exceed BATCH_MEMORY_SHARE of `memory` (bytes; default the memory
    available now), at least one."""
    memory = runtime.available_memory() if memory is None else memory
    fits = int(BATCH_MEMORY_SHARE * memory // max(1, model_bytes(cfg)))
    return max(1, min(MODELS_PER_BATCH if dev.type == "cpu" else MODELS_PER_BATCH_GPU, fits))


def check_memory(cfg: Config, models_per_batch: int = 1) -> None:
    """Refuse, before any work, a configuration whose models cannot fit in this machine's memory,
    naming the settings of the part (training or analysis) that needs the most."""
    need, avail = memory_needed(cfg, models_per_batch), runtime.available_memory()
    if need <= avail:
        return
    if analysis_bytes(cfg) >= models_per_batch * model_bytes(cfg):
        a = cfg.analysis
        what = (f"model.hidden_size={cfg.model.hidden_size}, analysis.spont_T_ms={a.spont_T_ms}, "
                f"analysis.mem_T_ms={a.mem_T_ms}, analysis.eval_extra_ms={a.eval_extra_ms}: a model's analysis")
    else:
        what = (f"model.hidden_size={cfg.model.hidden_size}, task.Nt_ms={cfg.task.Nt_ms}, "
                f"train.n_trials={cfg.train.n_trials}: training "
                + (f"{models_per_batch} models at once" if models_per_batch > 1 else "a model"))
    hint = "; train them one at a time (--no-batch-seeds)" if "models at once" in what else ""
    raise UserError(f"{what} needs about {_gb(need)} of memory; {_gb(avail)} are available{hint}")


def _gb(nbytes: float) -> str:
    """A memory size for a message: '3.4 GB', and '> 1,000,000 GB' rather than a 40-digit number."""
    gb = nbytes / 1e9
    return f"{gb:.1f} GB" if gb < 1e6 else "> 1,000,000 GB"


def disk_needed(cfg: Config, n_models: int, n_networks: int = 1) -> int:
    """A bound on the disk (bytes) a run's outputs take: per model two checkpoints, its metadata,
    analysis and reports; per network its two N x N eigenvector matrices."""
    n = cfg.model.hidden_size
    per_model = 2 * (n * n + 4 * n) * 4 + 8 * cfg.train.total_steps * 3 + (4 << 20)
    return n_models * per_model + n_networks * (2 * n * n * 8 + (1 << 20)) + (8 << 20)


def batches(states: list[SeedState], batch_seeds: bool | None, dev: torch.device,
            memory: int | None = None) -> list[list[SeedState]]:
    """The groups of models trained as one computation: models at the same epoch with compatible
    settings (_batch_key), in the order given, split into as few groups of at most
    models_per_batch(cfg, memory, dev) as they need, their sizes as equal as possible (batch_seeds
    None, the default; 20 models of 8 per batch: 7, 7, 6); all compatible models together (True);
    one at a time (False). memory: bytes the batches may use (default: the memory available on
    this machine; on a GPU its total memory)."""
    if batch_seeds is False:
        return [[st] for st in states]
    by_key: dict[tuple, list[SeedState]] = {}
    for st in states:
        by_key.setdefault((st.epoch, _batch_key(st.cfg)), []).append(st)
    if batch_seeds:
        return list(by_key.values())
    if memory is None and dev.type == "cuda":
        memory = torch.cuda.get_device_properties(dev).total_memory
    groups = []
    for group in by_key.values():
        n_groups = math.ceil(len(group) / models_per_batch(group[0].cfg, memory, dev))
        size, extra = divmod(len(group), n_groups)
        lo = 0
        for i in range(n_groups):
            hi = lo + size + (i < extra)
            groups.append(group[lo:hi])
            lo = hi
    return groups


def companion_config(cfg: Config, name: str) -> Config:
    """The configuration of the model called `name` (_name: '3', or 'c3' for an independently
    initialised one) in a batch with the model of `cfg`: the same settings, that seed and scheme."""
    init = "independent" if name.startswith("c") else "seed_compatible"
    m = replace(cfg.model, init=init, G_per_seed=cfg.model.G_per_seed if init == cfg.model.init else False)
    return replace(cfg, seed=int(name.lstrip("c")), model=m)


def _replay_groups(todo: list[SeedState], replay: dict[int, list[str]], states: list[SeedState]) -> list[list[SeedState]]:
    """The batches that train models from the start again in the batch their first training ran in
    (replay {index in states: the names of that batch, in order}), so that they get the same bits:
    members being trained here take their places; the others are trained beside them in memory only."""
    groups, taken = [], set()
    for i, names in replay.items():
        st = states[i]
        if id(st) in taken or st.epoch != 0 or not any(o is st for o in todo) or _name(st) not in names:
            continue
        group = []
        for name in names:
            member = next((o for o in todo if _name(o) == name and o.epoch == 0 and id(o) not in taken
                           and _batch_key(o.cfg) == _batch_key(st.cfg)), None)
            group.append(member or _new_state(companion_config(st.cfg, name), None))
        if all(_batch_key(m.cfg) == _batch_key(st.cfg) for m in group):
            taken.update(id(m) for m in group)
            groups.append(group)
    return groups


def train_models(models: list[tuple[Config, Path | None]], *, batch_seeds: bool | None = None,
                 progress: bool = True, device: str = "auto", figures: Figures | None = None,
                 replay: dict[int, list[str]] | None = None) -> list[dict]:
    """Train each (configuration, folder) pair; the configuration's seed selects the model.

    folder: where its checkpoints, metadata and figures go (None: keep in memory). A folder holding
    a checkpoint of the same training configuration is resumed from its last epoch (or only loaded
    when complete). batch_seeds: how models are stepped together (`batches`; a batch gives the
    results of training its models one at a time up to float rounding, and the same bits for the
    same batch). device: where the training steps run (runtime.resolve_device: auto = a CUDA GPU
    when there is one; the CPU is the tested path). figures: draws a finished model's figures into
    its folder (`Figures`; this layer draws none itself). replay: {index in models: the names of
    the batch (_name, in order) its first training ran in}, for a model trained again from the
    start: it is trained in that batch again (its other members beside it in memory), so that it
    gets the bits of its first training. Returns the state dicts {G, I, w, h0} in the order given.
    """
    dev = resolve_device(device)
    _settle_commits(models)
    states = [_resume(_new_state(cfg, folder)) for cfg, folder in models]
    todo = [st for st in states if st.epoch < st.cfg.train.epochs]
    replayed = _replay_groups(todo, replay or {}, states)
    in_replay = {id(m) for g in replayed for m in g}
    rest = [st for st in todo if id(st) not in in_replay]
    try:
        for group in replayed + batches(rest, batch_seeds, dev):
            _train_group(group, progress, dev)
    finally:
        clear_scratch()
    for st in states:
        if st.folder is not None and (st in todo or not _finished(st, figures)):
            _finish(st, figures)
    return [st.weights for st in states]


def train_seeds(cfg: Config, seeds: list[int], folders: dict | None = None, *, batch_seeds: bool | None = None,
                progress: bool = True, device: str = "auto", figures: Figures | None = None) -> dict[int, dict]:
    """Train the models of `seeds` with configuration `cfg` (its own seed is ignored); folders:
    {seed: folder} (train_models). Returns {seed: state_dict}."""
    folders = folders or {}
    sds = train_models([(replace(cfg, seed=s), folders.get(s)) for s in seeds], batch_seeds=batch_seeds,
                       progress=progress, device=device, figures=figures)
    return dict(zip(seeds, sds))


def train(cfg: Config, folder: Path | None = None, progress: bool = True, device: str = "auto",
          figures: Figures | None = None) -> dict:
    """Train the single model `cfg.seed`; returns its state dict {G, I, w, h0}."""
    return train_models([(cfg, folder)], progress=progress, device=device, figures=figures)[0]
