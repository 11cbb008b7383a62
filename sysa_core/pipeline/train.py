"""`sysa train`: the models of some seeds trained into a run folder (checkpoints, metadata and the
training figures in OUT/seed_<s>), opened like a run's (pipeline.folder), without the notebooks."""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from .. import training
from ..config import Config
from . import plots
from .ensembles import ensembles
from .folder import RunFolder


def train(cfg: Config, seeds: list[int], out: Path, overrides=(), batch_seeds: bool | None = None,
          progress: bool = True, device: str = "auto") -> float:
    """Train (or resume, or repair) the seeds' models in `out`; returns the training's wall seconds."""
    folder = RunFolder(out, cfg, ensembles(cfg, out, overrides, False), seeds, kind="train", overrides=overrides,
                       batch_seeds=batch_seeds)
    folder.check()
    with folder.open():
        t = time.perf_counter()
        training.train_models([(replace(e.cfg, seed=s), e.seed_dir(s)) for e, s in folder.todo],
                              batch_seeds=batch_seeds, progress=progress, device=device,
                              figures=plots.training_figures, replay=folder.replay_of(folder.todo))
        return time.perf_counter() - t
