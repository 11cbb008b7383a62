"""When a seed's folder is complete: verified, not assumed. Training is complete when its metadata
says so for this training configuration and the checkpoint loads safely, is at the last epoch and
has the sha256 training recorded when it finished, with the bare state dict and the plots beside
it. A `sysa run` seed is complete when, besides, its chain's record says so for these analysis
settings, the metrics and arrays were computed from that checkpoint, every notebook ran to its
last cell, and every file the chain wrote (metrics, arrays, notebooks, reports, the bare state dict,
the plots) still has the sha256 its record took when it was written; so does the population report.
A file that differs is set aside (*.bad-<time>) and written again by the repair. `check_seed` says what is wrong and what a re-run must redo; `check_run` does it for a
whole run folder (`sysa check`)."""
from __future__ import annotations

import datetime
import json
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .. import files, training
from ..config import Config
from ..errors import UserError
from .ensembles import SEED_NOTEBOOKS, ensembles_of

#: what a re-run does with a seed, from nothing to everything: finish training's own files, run
#: the notebooks again on the good checkpoint, retrain (the checkpoint does not verify), or run
#: the whole chain (it never completed)
ACTIONS = ("none", "finish", "reanalyse", "retrain", "run")


@dataclass
class SeedCheck:
    """The verdict on one seed's folder: the action a re-run takes and the problems found, one line each."""

    action: str = "none"
    problems: list = field(default_factory=list)
    actions: list = field(default_factory=list)  # the action each problem asks for, in the same order
    differing: list = field(default_factory=list)  # outputs whose bytes are not those recorded (set aside on repair)
    replay: list | None = None  # retrain: the batch (model names, in order) its first training ran in

    def need(self, action: str, problem: str) -> None:
        self.problems.append(problem)
        self.actions.append(action)
        if ACTIONS.index(action) > ACTIONS.index(self.action):
            self.action = action


def notebook_problem(path: Path) -> str | None:
    """Why an executed notebook is not complete (missing, unreadable, a cell not run or failed), or None."""
    if not path.is_file():
        return f"{path.name} is missing"
    try:
        code = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return f"{path.name} is not a readable notebook"
    if any(o.get("output_type") == "error" for c in code for o in c.get("outputs", [])):
        return f"{path.name} ended with an error"
    if not code or any(c.get("execution_count") is None for c in code):
        return f"{path.name} did not run to its last cell"
    return None


def outputs(folder: Path, names=None, skip=()) -> dict[str, str]:
    """{file name: sha256} of the files of `folder` a run wrote (`names`, else every regular file
    except `skip`, the folders' records and lock, and temporary or set-aside files), as recorded
    when they were written and verified by `sysa check`."""
    folder = Path(folder)
    if names is None:
        names = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.is_symlink())
        names = [n for n in names if n not in set(skip) | {files.record_path(folder).name, files.LOCK_NAME}
                 and not files.is_temporary(n) and ".bad-" not in n]
    return {n: files.sha256(folder / n) for n in names if (folder / n).is_file()}


def check_outputs(folder: Path, recorded, chk: SeedCheck, action_of) -> None:
    """Compare the files of `folder` with their sha256 recorded when the run wrote them
    (`outputs`); each missing or differing file is a problem whose action is action_of(name)."""
    if not isinstance(recorded, dict):
        return
    for name, sha in recorded.items():
        if not isinstance(name, str) or Path(name).name != name or name in ("", ".", ".."):
            chk.need("reanalyse", f"its record names {str(name)[:60]!r}, not a file of its folder")
            continue  # a record never makes sysa read or move a file outside the folder
        p = Path(folder) / name
        if not p.is_file():
            if not any(problem.startswith(f"{name} ") for problem in chk.problems):  # said once
                chk.need(action_of(name), f"{name} is missing")
        elif files.sha256(p) != sha:
            chk.need(action_of(name), f"{name} differs from what the run wrote")
            chk.differing.append(p)


def seed_outputs(sdir: Path, seed: int) -> dict[str, str]:
    """The outputs of a seed's chain (outputs): every file of its folder but the checkpoint and its
    training metadata, which training verifies itself."""
    return outputs(sdir, skip=(files.checkpoint_path(sdir, seed).name, files.meta_path(sdir, seed).name))


def _training_file(seed: int):
    names = {files.bare_path(Path("."), seed).name, files.loss_plot_path(Path("."), seed).name,
             files.grad_plot_path(Path("."), seed).name}
    return lambda name: "finish" if name in names else "reanalyse"


def check_training(sdir: Path, cfg: Config, chk: SeedCheck) -> str | None:
    """Training's part of check_seed; returns the checkpoint's sha256 when it verifies."""
    seed = cfg.seed
    meta_path, ck = files.meta_path(sdir, seed), files.checkpoint_path(sdir, seed)
    if not meta_path.is_file() and not ck.is_file():
        chk.need("run", "it was not trained")
        return None
    try:
        meta = files.read_json(meta_path)
        if not isinstance(meta, dict):
            raise UserError("not a record")
    except UserError:
        chk.need("retrain", f"{meta_path.name} is missing or unreadable")
        return None
    if meta.get("training_id") != cfg.training_id():
        chk.need("run", "it was trained with another training configuration")
        return None
    if meta.get("status") != "complete":
        chk.need("finish", f"training did not finish ({meta_path.name} says {meta.get('status')!r})")
    try:
        loaded = files.load_checkpoint(ck, hidden_size=cfg.model.hidden_size)
    except UserError as exc:
        chk.need("retrain", str(exc).replace(str(sdir) + "/", ""))
        return None
    sha = files.sha256(ck)
    if loaded["epoch"] != cfg.train.epochs - 1:
        chk.need("retrain" if meta.get("status") == "complete" else "run",
                 f"{ck.name} is at epoch {loaded['epoch']} of {cfg.train.epochs}")
        return None
    if meta.get("status") == "complete" and sha != meta.get("checkpoint_sha256"):
        chk.need("retrain", f"{ck.name} does not match the sha256 recorded when training finished")
        return None
    for p in (files.bare_path(sdir, seed), files.loss_plot_path(sdir, seed), files.grad_plot_path(sdir, seed)):
        if not p.is_file() or p.stat().st_size == 0:
            chk.need("finish", f"{p.name} is missing")
    return sha


def check_seed(sdir: Path, cfg: Config, trained_only: bool = False) -> SeedCheck:
    """Verify the folder of the model cfg.seed (the module docstring); trained_only: training's
    part only (a `sysa train` folder)."""
    chk = SeedCheck()
    sha = check_training(sdir, cfg, chk)
    if trained_only or chk.action in ("retrain", "run"):
        return chk
    rec_path = files.record_path(sdir)
    try:
        rec = files.read_json(rec_path)
    except UserError:
        rec = None
    if not isinstance(rec, dict) or rec.get("status") != "complete":
        status = rec.get("status") if isinstance(rec, dict) else None
        chk.need("reanalyse", "its notebooks did not complete" + (f" (pipeline.json says {status!r})" if status else ""))
    elif rec.get("analysis_id") != cfg.analysis_id():
        chk.need("reanalyse", "it was analysed with other analysis settings")
    try:
        m = files.read_json(files.metrics_path(sdir))
        if not isinstance(m, dict) or m.get("checkpoint_sha256") != sha or m.get("analysis_id") != cfg.analysis_id():
            chk.need("reanalyse", "metrics.json was not computed from this checkpoint with these settings")
    except UserError:
        chk.need("reanalyse", "metrics.json is missing or unreadable")
    try:
        with np.load(files.arrays_path(sdir), allow_pickle=False) as z:
            z["cache_key"]
    except files.NPZ_ERRORS:
        chk.need("reanalyse", "analysis.npz is missing or unreadable")
    for name in SEED_NOTEBOOKS:
        why = notebook_problem(sdir / f"{name}.ipynb")
        if why:
            chk.need("reanalyse", why)
        elif not (sdir / f"{name}.html").is_file():
            chk.need("reanalyse", f"{name}.html is missing")
    if isinstance(rec, dict) and rec.get("status") == "complete" and rec.get("analysis_id") == cfg.analysis_id():
        check_outputs(sdir, rec.get("outputs"), chk, _training_file(cfg.seed))
    return chk


REPAIRS = {"finish": "finishing its training files", "reanalyse": "running its notebooks again",
           "retrain": "training it again", "run": "running its chain again"}


def _retrain_text(replay: list[str] | None, seed_name: str) -> str:
    others = [n for n in (replay or []) if n != seed_name]
    if not others:
        return REPAIRS["retrain"]
    return (f"training it again in the batch it first trained in (with {','.join(others)}, recomputed in memory), "
            f"for the same bits")


def prepare(sdir: Path, cfg: Config, who: str, prog: str, trained_only: bool = False,
            repairs: dict | None = None) -> SeedCheck:
    """check_seed, then make ready what a re-run repairs: say what is repaired and why (on stderr,
    when the folder held an earlier attempt), and set a checkpoint that does not verify aside.
    repairs: what `prog` does for each action ({action: text}), where it is not a run's REPAIRS;
    it announces the problems of those actions only (another command repairs the rest)."""
    chk = check_seed(sdir, cfg, trained_only)
    # an earlier attempt: its notebooks started (pipeline.json), or its training did, unless the
    # training verifies and the notebooks never ran (a trained model to analyse is nothing to repair)
    tried = files.record_path(sdir).exists() or (
        chk.action != "reanalyse" and files.meta_path(sdir, cfg.seed).exists())
    if chk.action == "retrain":
        chk.replay = first_batch(sdir, cfg.seed)
    if repairs is not None:  # what prog repairs is always a repair
        covered = [(p, a) for p, a in zip(chk.problems, chk.actions) if a in repairs]
        problems = [p for p, _ in covered]
        what = repairs[max((a for _, a in covered), key=ACTIONS.index)] if covered else None
    else:
        problems = chk.problems
        what = None
        if chk.action != "none" and (tried or chk.action == "retrain"):
            what = _retrain_text(chk.replay, training.model_name(cfg)) if chk.action == "retrain" else REPAIRS[chk.action]
    if what:
        print(f"{prog}: repairing {who}: {'; '.join(problems)}; {what}", file=sys.stderr)
    if chk.action == "retrain":
        set_aside(sdir, cfg.seed)
    set_aside_files(chk.differing)
    return chk


def set_aside_files(paths) -> None:
    """Keep files whose bytes are not those the run wrote as *.bad-<time>, so that the repair writes
    them afresh (a cached analysis is not read back from an edited metrics.json): nothing is deleted."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    for p in paths:
        if Path(p).is_file():
            Path(p).rename(Path(p).with_name(f"{Path(p).name}.bad-{stamp}"))


def first_batch(sdir: Path, seed: int) -> list[str] | None:
    """The batch (model names, in order) the seed's training ran in, when its metadata records that
    it ran in one batch throughout; None when it does not say, or says it was resumed in another."""
    try:
        rec = files.read_json(files.meta_path(sdir, seed))
        batches = rec.get("trained_with")
    except (UserError, AttributeError):
        return None
    if (isinstance(batches, list) and len(batches) == 1 and isinstance(batches[0], list)
            and all(isinstance(n, str) for n in batches[0])):
        return list(batches[0])
    return None


def set_aside(sdir: Path, seed: int) -> None:
    """Keep a checkpoint that does not verify (and the files made from it) as *.bad-<time>, out of
    training's way: nothing is deleted."""
    set_aside_files([files.checkpoint_path(sdir, seed), files.bare_path(sdir, seed), files.meta_path(sdir, seed)])


def check_run(run_dir: Path) -> dict:
    """Every seed of a run folder (both ensembles) and, for a `sysa run`, its population report,
    against the folder's manifest: {"<ensemble> seed <s>": SeedCheck, "population": SeedCheck}.
    UserError when the folder is not sysa's."""
    run_dir = Path(run_dir)
    marker = run_dir / files.RUN_MARKER
    if not marker.is_file():
        raise UserError(f"{run_dir}: not a sysa run folder (no {files.RUN_MARKER})")
    manifest = files.read_manifest(marker)
    trained_only = manifest["kind"] == "train"
    out = {}
    for ens in ensembles_of(run_dir, manifest):
        for s in manifest.get("seeds", []):
            out[f"{ens.label} seed {s}"] = check_seed(ens.seed_dir(s), replace(ens.cfg, seed=s), trained_only)
    if not trained_only:
        pop = check_population(run_dir)
        if not (run_dir / "index.html").is_file():
            pop.need("reanalyse", "index.html is missing")
        out["population"] = pop
    return out


#: the files of a run folder's population report, recorded (outputs) in its population.json
POPULATION_FILES = ("population.ipynb", "population.html", "population.csv", "answer.json")


def check_population(run_dir: Path) -> SeedCheck:
    """What is wrong with a run folder's population report: its notebook not executed to the end,
    its HTML or CSV missing or not the bytes recorded in population.json when they were written
    (action "none" when it verifies)."""
    chk = SeedCheck()
    why = notebook_problem(run_dir / "population.ipynb")
    if why:
        chk.need("reanalyse", why)
    for name in POPULATION_FILES[1:]:
        if not (run_dir / name).is_file():
            chk.need("reanalyse", f"{name} is missing")
    try:
        rec = files.read_json(run_dir / "population.json")
    except UserError:
        rec = None
    check_outputs(run_dir, rec.get("outputs") if isinstance(rec, dict) else None, chk, lambda name: "reanalyse")
    return chk
