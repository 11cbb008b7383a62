"""`sysa run`: for each seed, papermill executes train -> inspect -> pca into the seed's folder,
then population over all seeds; every executed notebook becomes a self-contained HTML report
and index.html ties them together.

A run folder is sysa's: its manifest (files.RUN_MARKER) records the configuration, the code
version and the state of each seed; a folder that holds other files is refused. Everything that
decides whether a run may proceed (the folder, the configuration against the folder's, the lock,
memory and disk) is checked before anything is written. A seed is complete only when its outputs
verify (pipeline.verify); a re-run repairs what does not, says so, and skips the rest. A failing
seed does not stop the others."""
from __future__ import annotations

import datetime
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import papermill
from tqdm import tqdm

from .. import files, runtime, training
from ..analysis import network
from ..config import Config
from ..errors import UserError
from ..model import init_weights
from . import executors, plots, report, store, verify
from .ensembles import SEED_NOTEBOOKS, Ensemble, ensembles
from .folder import RunFolder
from .jobs import execute, prewarm, set_threads
from .notebook import PARAMETERS
from .preflight import manifest


def check_notebooks() -> dict[str, Path]:
    """Each notebook exists and declares exactly the parameters the pipeline passes."""
    found = {}
    for name in (*SEED_NOTEBOOKS, "population"):
        path = files.notebooks_dir() / f"{name}.ipynb"
        if not path.exists():
            raise UserError(f"{path}: notebook not found")
        declared = set(papermill.inspect_notebook(str(path)))
        if declared != set(PARAMETERS[name]):
            raise UserError(f"{path}: parameters cell declares {sorted(declared)}, expected {sorted(PARAMETERS[name])}")
        found[name] = path
    return found


def run(cfg: Config, seeds: list[int], out: Path, overrides=(), force: bool = False,
        batch_seeds: bool | None = None, progress: bool = True, control: bool = False,
        workers: int = 1, scheduler: str | None = None, threads: int | None = None, device: str = "auto",
        html_code: bool = False) -> int:
    """Run the pipeline; returns the exit status (0 when every seed and the population succeeded).

    control: also run the control ensemble (independent initialisation) in OUT/control.
    workers: seeds run in parallel on this machine (a process pool); scheduler: the address of
    a Dask scheduler whose workers run the seeds (the output folder must be shared with them).
    threads: torch threads per seed (default: all cores here, cores / workers in a pool, 1 per
    Dask task). Results are bit-identical for the same thread count and the same batches of
    models on the same kind of CPU. device: where training in this process runs
    (runtime.resolve_device); pool and Dask jobs train in their notebooks with `auto`. html_code:
    the HTML reports show the notebooks' code cells (by default they show only prose and outputs).
    """
    out = Path(out).resolve()
    nbs = check_notebooks()
    ens = ensembles(cfg, out, overrides, control)
    folder = RunFolder(out, cfg, ens, seeds, overrides=overrides, control=control, force=force,
                       batch_seeds=batch_seeds)
    folder.check()
    client = executors.dask_client(scheduler, out) if scheduler else None
    with folder.open():
        records, todo = folder.records, folder.todo
        clock = Clock()
        here = client is None and workers <= 1
        if here:
            if threads:
                set_threads(threads)
            lanes = _lanes(len(todo))
            # the kernels share the cores; they start now and import while this process computes
            os.environ["OMP_NUM_THREADS"] = str(threads or max(1, (os.cpu_count() or 1) // lanes))
            if todo:
                prewarm(lanes)
        elif scheduler and todo:
            prewarm(1)  # the seeds run on the cluster, the population report here: its kernel starts now
        with clock("network_s"):
            _analyse_networks(todo, out)
        bar = tqdm(total=len(todo) + 1, desc="seeds", unit="seed", disable=not progress)
        if here:
            # here: training in this process with its own progress bar (models batched when asked),
            # then the notebooks, one lane per core, which find the finished checkpoints
            with clock("train_s"):
                pre_err = _train_here(todo, batch_seeds, progress, device, folder.replay_of(todo))
            with clock("notebooks_s"):
                for (label, s), rec in executors.run_jobs(todo, nbs, workers=lanes, bar=bar,
                                                          trained=pre_err, html_code=html_code):
                    records[(label, s)] = rec
        else:
            with clock("notebooks_s"):  # each job trains its seed and runs its notebooks
                for (label, s), rec in executors.run_jobs(todo, nbs, workers=workers, client=client, bar=bar,
                                                          threads=threads, lock=os.environ.get(files.LOCK_ENV),
                                                          html_code=html_code):
                    records[(label, s)] = rec

        pops = {}
        for e in ens:
            ok = [s for s in seeds if records[(e.label, s)].get("status") == "complete"]
            for s in ok:
                records[(e.label, s)]["metrics"] = files.read_json(files.metrics_path(e.seed_dir(s)))
            pops[e.label] = ok
        with clock("population_s"):
            pop, pop_ran = _population(nbs["population"], out, cfg, pops, control, bar, html_code)
        bar.close()
        # an invocation that computed nothing reports the one that made the results
        this = {"started": clock.started, **runtime.machine(), "timings": clock.timings()}
        last = this if todo or pop_ran else (folder.last_run() or this)
        folder.write_manifest({e.label: {str(s): records[(e.label, s)].get("status", "failed") for s in seeds}
                               for e in ens}, last_run=last)
        info = {**manifest(cfg, overrides, seeds, control), **last, "ensembles_text": _ensembles_text(ens)}
        if last is not this:
            info["rechecked"] = clock.started
        info.pop("state")
        report.write_index(out, info, [records[(e.label, s)] for e in ens for s in seeds], pop)

    failed = [f"{'' if lab == 'main' else lab + ' '}{s}" for (lab, s), r in records.items()
              if r.get("status") != "complete"]
    n_ok = len(pops["main"])
    pop_failed = bool(pop and pop.get("error"))
    if progress or failed or pop_failed:
        print(f"sysa run: {n_ok}/{len(seeds)} seeds complete"
              + (f" (control: {len(pops['control'])}/{len(seeds)})" if control else "")
              + (f"; failed: {', '.join(failed)}" if failed else "")
              + ("; population report failed" if pop_failed else "")
              + f"; report: {out / 'index.html'}", file=sys.stderr)
    return 1 if failed or pop_failed or not n_ok else 0


class Clock:
    """The wall time of a run's phases (`with clock("train_s"): ...`) and in all."""

    def __init__(self):
        self.started = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
        self.t0 = time.perf_counter()
        self.phases: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        t = time.perf_counter()
        try:
            yield
        finally:
            self.phases[name] = self.phases.get(name, 0.0) + time.perf_counter() - t

    def timings(self) -> dict:
        return {**self.phases, "total_s": time.perf_counter() - self.t0}


def _ensembles_text(ens: list[Ensemble]) -> str:
    """Which kind of ensemble ran: whether its seeds share G, and the control ensemble."""
    m = ens[0].cfg.model
    kind = ("every seed's G drawn from its own seed" if m.G_per_seed
            else "every seed shares one recurrent network G (drawn from seed 1)")
    if m.init == "seed_compatible":
        text = f"main: the original's seed-compatible initialisation (I = √N·w at the start), {kind}"
    else:
        text = f"main: I and w initialised independently, {kind}"
    if len(ens) > 1:
        text += "; control (control/): the same seeds with I and w initialised independently, the same G"
    return text


def _analyse_networks(todo: list[tuple[Ensemble, int]], out: Path) -> None:
    """The analysis of each distinct recurrent network G among the models to analyse, once, into the
    run's folder, where every seed's analysis reads it (analysis.network)."""
    done = set()
    for ens, s in todo:
        cfg = replace(ens.cfg, seed=s)
        G = init_weights(cfg.model, s)["G"]
        key = network.network_key(cfg, G)
        if key not in done:
            store.load_or_analyse_network(cfg, G, out)
            done.add(key)


def _train_here(todo: list[tuple[Ensemble, int]], batch_seeds: bool | None, progress: bool, device: str,
                replay: dict[int, list[str]] | None = None) -> dict:
    """Train (or resume, or load) the models of `todo` in this process, as one computation when
    batch_seeds (a model retrained from the start in the batch of its first training: replay, as in
    training.train_models); a failure is isolated by training the models of the failed batch one at
    a time. Returns {(ensemble label, seed): error message} for the models that could not be trained."""
    errors: dict[tuple, str] = {}
    models = [(replace(ens.cfg, seed=s), ens.seed_dir(s)) for ens, s in todo]
    keys = [(ens.label, s) for ens, s in todo]
    groups = [list(range(len(todo)))] if batch_seeds is not False and todo else [[i] for i in range(len(todo))]
    for group in groups:
        try:
            training.train_models([models[i] for i in group], batch_seeds=batch_seeds, progress=progress,
                                  device=device, figures=plots.training_figures,
                                  replay={k: replay[i] for k, i in enumerate(group) if i in (replay or {})})
        except UserError as exc:
            if len(group) > 1:
                groups.extend([i] for i in group)
                continue
            errors[keys[group[0]]] = str(exc)
    return errors


def _lanes(n_seeds: int) -> int:
    """How many seeds' notebooks run at once here: one per core."""
    return max(1, min(os.cpu_count() or 1, n_seeds))


def _population(src: Path, out: Path, cfg: Config, ok: dict, control: bool, bar,
                html_code: bool = False) -> tuple[dict | None, bool]:
    """Execute the population notebook over the complete seeds, unless its inputs are unchanged:
    its record (None without a complete main seed) and whether the notebook ran."""
    bar.set_postfix_str("population")
    if not ok["main"]:
        bar.update(1)
        return None, False
    digest = store.inputs_digest(out, ok["main"])
    if control:
        digest += store.inputs_digest(out / "control", ok["control"])
    rec_path = out / "population.json"
    if rec_path.exists():
        try:
            prev = files.read_json(rec_path)
        except UserError:
            prev = {}
        if prev.get("digest") == digest and not prev.get("error"):
            chk = verify.check_population(out)
            if chk.action == "none":
                bar.update(1)
                return prev, False
            tqdm.write(f"sysa run: repairing the population report: {'; '.join(chk.problems)}; running its notebook "
                       "again", file=sys.stderr)
            verify.set_aside_files(chk.differing)
    params = {"profile": cfg.profile, "run_dir": ".", "control_dir": "control" if control else ""}  # relative to out
    title = report.page_title("population", None, cfg.profile) + (" · with control" if control else "")
    seconds, error = execute(src, out / "population.ipynb", params, out, title, html_code)
    rec = {"digest": digest, "seeds": ok["main"], "seconds": seconds, "error": error,
           "links": {"population report": "population.html", "notebook": "population.ipynb",
                     "table (CSV)": "population.csv"},
           "outputs": verify.outputs(out, verify.POPULATION_FILES)}
    files.write_json(rec_path, rec)
    bar.update(1)
    return rec, True
