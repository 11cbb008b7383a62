"""`sysa run`: for each seed, papermill executes train -> inspect -> pca into the seed's folder,
then population over all seeds; every executed notebook becomes a self-contained HTML report
and index.html ties them together.

Seeds already complete with the same configuration are skipped; a failing seed does not stop
the others; two runs cannot write to the same folder at once."""
from __future__ import annotations

import fcntl
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from . import io, paths, population, report
from .config import Config
from .errors import UserError
from .provenance import code_version

SEED_NOTEBOOKS = ("train", "inspect", "pca")
RECORD = "pipeline.json"


class RunLock:
    """An exclusive lock on the output folder (released when the process ends, even on a kill)."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / ".sysa.lock"
        self.fh = None

    def __enter__(self):
        self.fh = open(self.path, "a+")
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.fh.close()
            raise UserError(f"{self.path.parent}: another sysa run is writing to this folder") from None
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fh, fcntl.LOCK_UN)
        self.fh.close()


def check_output_dir(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out {out}: cannot create the folder ({exc.strerror})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise UserError(f"--out {out}: the folder is not writable")


def check_notebooks() -> dict[str, Path]:
    """Each notebook exists and declares exactly the parameters the pipeline passes."""
    import papermill
    from .notebook import PARAMETERS

    found = {}
    for name in (*SEED_NOTEBOOKS, "population"):
        path = paths.notebooks_dir() / f"{name}.ipynb"
        if not path.exists():
            raise UserError(f"{path}: notebook not found")
        declared = set(papermill.inspect_notebook(str(path)))
        if declared != set(PARAMETERS[name]):
            raise UserError(f"{path}: parameters cell declares {sorted(declared)}, expected {sorted(PARAMETERS[name])}")
        found[name] = path
    return found


def _execute(src: Path, dst: Path, params: dict, cwd: Path) -> tuple[float, str | None]:
    """Run one notebook with papermill and render it; returns (seconds, error or None)."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    t = time.perf_counter()
    error = None
    try:
        papermill.execute_notebook(str(src), str(dst), parameters=params, progress_bar=False, cwd=str(cwd),
                                   kernel_name="python3",
                                   # the kernel's start-up notice about loopback TCP is noise here
                                   extra_arguments=["--IPKernelApp.log_level=ERROR"])
    except PapermillExecutionError as exc:
        error = f"{dst.name}: {exc.ename}: {str(exc.evalue).splitlines()[0] if exc.evalue else ''}"
    except Exception as exc:  # kernel death, timeouts: the seed fails, the run goes on
        error = f"{dst.name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    if dst.exists():
        report.notebook_to_html(dst, dst.with_suffix(".html"))
    return time.perf_counter() - t, error


def _seed_complete(sdir: Path, cfg: Config) -> dict | None:
    rec_path = sdir / RECORD
    if not rec_path.exists():
        return None
    try:
        rec = io.read_json(rec_path)
    except UserError:
        return None
    if rec.get("status") != "complete" or rec.get("config_id") != cfg.identity():
        return None
    if not all((sdir / f"{n}.html").exists() for n in SEED_NOTEBOOKS) or not (sdir / "metrics.json").exists():
        return None
    return rec


@dataclass
class Ensemble:
    """A set of seeds trained with one configuration, in its own folder of the run."""

    label: str  # "main" or "control"
    folder: Path
    cfg: Config
    overrides: list

    def seed_dir(self, seed: int) -> Path:
        return paths.seed_dir(self.folder, seed)

    def rel(self, seed: int, name: str) -> str:
        """Path of a seed's file relative to the run folder (for links in the index)."""
        prefix = "" if self.label == "main" else f"{self.label}/"
        return f"{prefix}seed_{seed}/{name}"


#: overrides that turn an ensemble into its control: I and w drawn independently (SPEC section 6)
CONTROL_OVERRIDES = ["model.init=independent"]


def set_threads(n: int) -> None:
    """Torch threads for this process and the notebook kernels it starts."""
    import torch

    torch.set_num_threads(n)
    os.environ["OMP_NUM_THREADS"] = str(n)  # inherited by the kernels


def seed_job(ens: Ensemble, seed: int, nbs: dict, train_here: bool, threads: int | None = None,
             pretrain_error: str | None = None) -> dict:
    """One seed's chain: (training,) then train -> inspect -> pca notebooks; writes and returns
    the seed's record. Runs in this process, a pool worker or a Dask worker."""
    if threads:
        set_threads(threads)
    scfg = replace(ens.cfg, seed=seed)
    sdir = ens.seed_dir(seed)
    sdir.mkdir(parents=True, exist_ok=True)
    rec = {"seed": seed, "ensemble": ens.label, "config_id": scfg.identity(), "status": "running",
           "steps": [], "error": None, "host": platform.node()}
    train_seconds = 0.0
    if train_here:
        from . import training

        t = time.perf_counter()
        try:
            training.train(scfg, sdir, progress=False)
        except UserError as exc:
            pretrain_error = str(exc)
        train_seconds = time.perf_counter() - t
    params = {"profile": ens.cfg.profile, "seed": seed, "overrides": list(ens.overrides), "run_dir": str(sdir)}
    for name in SEED_NOTEBOOKS:
        seconds, error = _execute(nbs[name], sdir / f"{name}.ipynb", params, cwd=sdir)
        if name == "train":
            seconds += train_seconds
        rec["steps"].append({"name": name, "seconds": seconds, "html": ens.rel(seed, f"{name}.html"),
                             "ipynb": ens.rel(seed, f"{name}.ipynb")})
        if error:
            rec["status"], rec["error"] = "failed", pretrain_error or error
            break
    else:
        rec["status"] = "complete"
    io.write_json(sdir / RECORD, rec)
    return rec


def run(cfg: Config, seeds: list[int], out: Path, overrides=(), force: bool = False,
        batch_seeds: bool = False, progress: bool = True, control: bool = False,
        workers: int = 1, scheduler: str | None = None, threads: int | None = None, device: str = "auto") -> int:
    """Run the pipeline; returns the exit status (0 when every seed and the population succeeded).

    control: also run the control ensemble (independent initialisation) in OUT/control.
    workers: seeds run in parallel on this machine (a process pool); scheduler: the address of
    a Dask scheduler whose workers run the seeds (the output folder must be shared with them).
    threads: torch threads per seed (default: all cores here, cores / workers in a pool, 1 per
    Dask task). Results are bit-identical for the same thread count on the same kind of CPU.
    device: where training in this process runs (engine.resolve_device); pool and Dask jobs train
    in their notebooks with `auto`.
    """
    from tqdm.auto import tqdm

    from . import executors, training

    out = Path(out).resolve()
    check_output_dir(out)
    nbs = check_notebooks()
    client = executors.dask_client(scheduler, out) if scheduler else None
    ensembles = [Ensemble("main", out, cfg, list(overrides))]
    if control:
        ctl_over = list(overrides) + CONTROL_OVERRIDES
        from .config import apply_overrides, validate

        ensembles.append(Ensemble("control", out / "control", validate(apply_overrides(cfg, CONTROL_OVERRIDES)),
                                  ctl_over))
    with RunLock(out):
        run_cfg = {"profile": cfg.profile, "overrides": list(overrides), "seeds": seeds, "control": control,
                   "config": {k: v for k, v in cfg.to_dict().items() if k != "seed"},
                   "code_version": code_version()}
        io.write_json(out / "config.json", run_cfg, if_changed=True)
        records: dict[tuple, dict] = {}
        todo: list[tuple[Ensemble, int]] = []
        for ens in ensembles:
            for s in seeds:
                sdir = ens.seed_dir(s)
                rec = None if force else _seed_complete(sdir, replace(ens.cfg, seed=s))
                if rec is not None:
                    records[(ens.label, s)] = rec
                    continue
                if force and sdir.exists():
                    shutil.rmtree(sdir)
                todo.append((ens, s))

        bar = tqdm(total=len(todo) + 1, desc="seeds", unit="seed", disable=not progress)
        if client is None and workers <= 1:
            if threads:
                set_threads(threads)
            # here: training in this process with its own progress bar (seeds batched when asked),
            # then the notebooks, which find the finished checkpoints
            pre_err: dict[tuple, str] = {}
            for ens in ensembles:
                mine = [s for e, s in todo if e is ens]
                groups = [mine] if batch_seeds and mine else [[s] for s in mine]
                for group in groups:
                    try:
                        training.train_seeds(ens.cfg, group, {s: ens.seed_dir(s) for s in group},
                                             batch_seeds=batch_seeds, progress=progress, device=device)
                    except UserError as exc:
                        if len(group) > 1:  # isolate the failure: one seed at a time
                            groups.extend([s] for s in group)
                            continue
                        pre_err[(ens.label, group[0])] = str(exc)
            for ens, s in todo:
                bar.set_postfix_str(f"{ens.label} seed {s}")
                records[(ens.label, s)] = seed_job(ens, s, nbs, train_here=False,
                                                   pretrain_error=pre_err.get((ens.label, s)))
                bar.update(1)
        else:
            for (label, s), rec in executors.run_jobs(todo, nbs, workers=workers, client=client, bar=bar,
                                                      threads=threads):
                records[(label, s)] = rec

        pops = {}
        for ens in ensembles:
            ok = [s for s in seeds if records[(ens.label, s)].get("status") == "complete"]
            for s in ok:
                records[(ens.label, s)]["metrics"] = io.read_json(ens.seed_dir(s) / "metrics.json")
            pops[ens.label] = ok
        pop = _population(nbs["population"], out, cfg, pops, control, bar)
        bar.close()
        report.write_index(out, run_cfg, [records[(e.label, s)] for e in ensembles for s in seeds], pop)

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


def _population(src: Path, out: Path, cfg: Config, ok: dict, control: bool, bar) -> dict | None:
    """Execute the population notebook over the complete seeds, unless its inputs are unchanged."""
    bar.set_postfix_str("population")
    if not ok["main"]:
        bar.update(1)
        return None
    digest = population.inputs_digest(out, ok["main"])
    if control:
        digest += population.inputs_digest(out / "control", ok["control"])
    rec_path = out / "population.json"
    if rec_path.exists() and (out / "population.html").exists():
        try:
            prev = io.read_json(rec_path)
        except UserError:
            prev = {}
        if prev.get("digest") == digest and not prev.get("error"):
            bar.update(1)
            return prev
    params = {"profile": cfg.profile, "run_dir": str(out), "control_dir": str(out / "control") if control else ""}
    seconds, error = _execute(src, out / "population.ipynb", params, cwd=out)
    rec = {"digest": digest, "seeds": ok["main"], "seconds": seconds, "error": error,
           "links": {"population report": "population.html", "notebook": "population.ipynb",
                     "table (CSV)": "population.csv"}}
    io.write_json(rec_path, rec)
    bar.update(1)
    return rec
