"""What is checked before a run or a training writes anything into its folder (the folder can be
made and written, the configuration against the folder's, memory and disk), and the manifest that
marks the folder as sysa's."""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from .. import files, training
from ..config import Config
from ..errors import UserError
from .ensembles import Ensemble


def check_output_dir(out: Path, option: str = "--out") -> None:
    """Create the output folder (and its parents) and check it is writable; `option` names it in
    the error."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{option} {out}: cannot create the folder ({exc.strerror})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise UserError(f"{option} {out}: the folder is not writable")


def check_trained_with(out: Path, ens: list[Ensemble], seeds: list[int],
                       hint: str = "use --force to retrain them here, or another --out") -> None:
    """Refuse, before anything is written, a run into a folder whose models were trained with
    another training configuration (its manifest or its seeds' metadata say so)."""
    marker = out / files.RUN_MARKER
    if marker.is_file():
        try:
            old_cfg = Config.from_manifest(files.read_manifest(marker), source=str(marker))
        except UserError as exc:
            raise UserError(f"{exc}; {hint}") from None
        if replace(old_cfg, seed=0).training_id() != replace(ens[0].cfg, seed=0).training_id():
            raise UserError(f"{out}: its models were trained with another training configuration; {hint}")
    for e in ens:
        for s in seeds:
            meta = files.meta_path(e.seed_dir(s), s)
            if not meta.exists():
                continue
            try:
                got = files.read_json(meta).get("training_id")
            except (UserError, AttributeError):
                continue  # unreadable metadata: the seed's check reports it and retrains
            if got != replace(e.cfg, seed=s).training_id():
                raise UserError(f"{e.seed_dir(s)}: was trained with another training configuration; {hint}")


def check_resources(out: Path, ens: list[Ensemble], seeds: list[int], batch_seeds: bool | None) -> None:
    """Refuse, before any work, a run that cannot fit in this machine's memory or on the output
    folder's disk."""
    cfg = ens[0].cfg
    n_models = len(ens) * len(seeds)
    per_batch = n_models if batch_seeds else 1 if batch_seeds is False else min(n_models, training.models_per_batch(cfg))
    training.check_memory(cfg, per_batch)
    networks = n_models if cfg.model.G_per_seed else 1
    files.check_free_disk(out, training.disk_needed(cfg, n_models, networks), f"{n_models} models")


def manifest(cfg: Config, overrides, seeds: list[int], control: bool, kind: str = "run", states: dict | None = None) -> dict:
    """What a run folder's RUN_MARKER holds: its kind, the configuration (without the seed), the
    analysis settings' id, the code version, and the state of each seed of each ensemble."""
    return {"kind": kind, "profile": cfg.profile, "overrides": list(overrides), "seeds": list(seeds),
            "control": control, "config": {k: v for k, v in cfg.to_dict().items() if k != "seed"},
            "analysis_id": cfg.analysis_id(), "code_version": files.code_version(), "state": states or {}}
