"""A run folder's lifecycle, the one sequence `sysa run` and `sysa train` both open their folder
with: the folder is sysa's (files.check_owned), its models were trained with this configuration,
memory and disk suffice and the folder can be written (pipeline.preflight), all before anything
is written; then its lock (files.FolderLock), the repair of its seeds (pipeline.verify) and its
manifest (files.RUN_MARKER)."""
from __future__ import annotations

import shutil
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from .. import files
from ..config import Config
from ..errors import UserError
from . import verify
from .ensembles import Ensemble
from .preflight import check_output_dir, check_resources, check_trained_with, manifest

#: what a refused folder's message suggests, by kind
HINTS = {"run": "use --force to retrain them here, or another --out",
         "train": "use another --out (or delete those seeds' folders)"}


#: the manifest's record of the last invocation that computed something: what its index reports as
#: the run's start, machine and wall times after a later invocation found nothing to redo
LAST_RUN = "last_run"


class RunFolder:
    """The folder `out` of a run (kind "run": trained and analysed) or a training (kind "train":
    checkpoints only) of the seeds of the ensembles `ens`.

    check(): everything that decides whether the work may proceed, before anything is written.
    open(): the lock held while the work runs; on entry each seed is repaired (what does not verify
    is redone; force: every seed is redone) and the manifest written. `todo` then lists the
    (ensemble, seed) pairs to compute, `records` {(label, seed): record} the seeds of a run
    found complete, and `replay` {(label, seed): batch names} the seeds retrained in the batch
    their first training ran in (training.train_models' replay).

    prog, repairs: the command that opens the folder and what it does for each repair
    (verify.prepare); by default `sysa run` or `sysa train` and the repairs of a run."""

    def __init__(self, out: Path, cfg: Config, ens: list[Ensemble], seeds: list[int], *, kind: str = "run",
                 overrides=(), control: bool = False, force: bool = False, batch_seeds: bool | None = None,
                 prog: str | None = None, repairs: dict | None = None):
        self.out, self.cfg, self.ens, self.seeds, self.kind = Path(out), cfg, ens, seeds, kind
        self.overrides, self.control, self.force, self.batch_seeds = overrides, control, force, batch_seeds
        self.prog, self.repairs = prog or f"sysa {kind}", repairs
        self.todo: list[tuple[Ensemble, int]] = []
        self.records: dict[tuple, dict] = {}
        self.replay: dict[tuple, list[str]] = {}  # {(label, seed): the batch its first training ran in}

    def check(self) -> None:
        files.check_owned(self.out)
        for e in self.ens:  # the folders written into are the run's own, never links elsewhere
            files.check_own_folder(e.folder, "--out")
            if e.folder != self.out:
                files.check_not_busy(e.folder)  # no other process writes into the control folder either
            for s in self.seeds:
                files.check_own_folder(e.seed_dir(s), "--out")
        if not self.force:
            check_trained_with(self.out, self.ens, self.seeds, hint=HINTS[self.kind])
        check_resources(self.out, self.ens, self.seeds, self.batch_seeds)
        check_output_dir(self.out)

    @contextmanager
    def open(self):
        with files.FolderLock(self.out):
            for d in [self.out] + [e.folder for e in self.ens] + [e.seed_dir(s) for e in self.ens for s in self.seeds]:
                files.remove_temporaries(d)  # what a write killed midway left (the lock says none is in flight)
            for e in self.ens:
                for s in self.seeds:
                    self._repair(e, s)
            if self.kind == "run":
                self.write_manifest({e.label: {str(s): "complete" if (e.label, s) in self.records else "pending"
                                               for s in self.seeds} for e in self.ens})
            elif not (self.out / files.RUN_MARKER).exists():  # a training never rewrites a run's manifest
                files.write_json(self.out / files.RUN_MARKER,
                                 manifest(self.cfg, self.overrides, self.seeds, False, kind="train"))
            yield self

    def _repair(self, e: Ensemble, s: int) -> None:
        sdir = e.seed_dir(s)
        if self.force and sdir.exists():
            shutil.rmtree(sdir)
        who = f"{'' if e.label == 'main' else e.label + ' '}seed {s}"
        scfg = replace(e.cfg, seed=s)
        if self.kind == "train":
            if sdir.exists():
                self._note_replay(e, s, verify.prepare(sdir, scfg, who, self.prog, trained_only=True,
                                                       repairs=self.repairs))
            check_output_dir(sdir)
            self.todo.append((e, s))
            return
        chk = verify.prepare(sdir, scfg, who, self.prog, repairs=self.repairs)
        if chk.action == "none":
            self.records[(e.label, s)] = files.read_json(files.record_path(sdir))
        else:
            self._note_replay(e, s, chk)
            self.todo.append((e, s))

    def _note_replay(self, e: Ensemble, s: int, chk) -> None:
        if chk.replay and self.batch_seeds is not False:
            self.replay[(e.label, s)] = chk.replay

    def replay_of(self, todo: list[tuple[Ensemble, int]]) -> dict[int, list[str]]:
        """training.train_models' replay for the models `todo`, in that order."""
        return {i: self.replay[(e.label, s)] for i, (e, s) in enumerate(todo) if (e.label, s) in self.replay}

    def write_manifest(self, states: dict, last_run: dict | None = None) -> None:
        """The manifest with each seed's state {label: {seed: state}} and `last_run`, the record of the
        last invocation that computed something (its start, machine and phase timings; kept from the
        manifest there when None); written only when it changed."""
        man = manifest(self.cfg, self.overrides, self.seeds, self.control, states=states)
        last_run = last_run or self.last_run()
        if last_run:
            man[LAST_RUN] = last_run
        files.write_json(self.out / files.RUN_MARKER, man, if_changed=True)

    def last_run(self) -> dict | None:
        """The manifest's record of the last invocation that computed something (write_manifest), or
        None where there is none or it is not one."""
        try:
            rec = files.read_json(self.out / files.RUN_MARKER).get(LAST_RUN)
        except (UserError, AttributeError):
            return None
        ok = isinstance(rec, dict) and isinstance(rec.get("started"), str) and isinstance(rec.get("timings"), dict)
        return rec if ok else None
