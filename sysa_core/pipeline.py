"""`sysa run`: for each seed, papermill executes train -> inspect -> pca into the seed's folder,
then population over all seeds; every executed notebook becomes a self-contained HTML report
and index.html ties them together.

Seeds already complete with the same configuration are skipped; a failing seed does not stop
the others; two runs cannot write to the same folder at once."""
from __future__ import annotations

import fcntl
import os
import shutil
import time
from dataclasses import replace
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


def run(cfg: Config, seeds: list[int], out: Path, overrides=(), force: bool = False,
        batch_seeds: bool = False, progress: bool = True) -> int:
    """Run the pipeline; returns the exit status (0 when every seed and the population succeeded)."""
    from tqdm.auto import tqdm

    from . import training

    out = Path(out).resolve()
    check_output_dir(out)
    nbs = check_notebooks()
    with RunLock(out):
        run_cfg = {"profile": cfg.profile, "overrides": list(overrides), "seeds": seeds,
                   "config": {k: v for k, v in cfg.to_dict().items() if k != "seed"},
                   "code_version": code_version()}
        io.write_json(out / "config.json", run_cfg, if_changed=True)
        records: dict[int, dict] = {}
        todo = []
        for s in seeds:
            scfg = replace(cfg, seed=s)
            sdir = paths.seed_dir(out, s)
            rec = None if force else _seed_complete(sdir, scfg)
            if rec is not None:
                records[s] = rec
                continue
            if force and sdir.exists():
                shutil.rmtree(sdir)
            todo.append(s)

        # Training in this process (its own progress bar; seeds batched when asked); the train
        # notebook then finds the finished checkpoint and reports it.
        pretrain_error: dict[int, str] = {}
        folders = {s: paths.seed_dir(out, s) for s in todo}
        groups = [todo] if batch_seeds and todo else [[s] for s in todo]
        for group in groups:
            t = time.perf_counter()
            try:
                training.train_seeds(cfg, group, folders, batch_seeds=batch_seeds, progress=progress)
            except UserError as exc:
                if len(group) > 1:  # isolate: train the group's seeds one at a time
                    groups.extend([s] for s in group)
                    continue
                pretrain_error[group[0]] = str(exc)
            for s in group:
                records.setdefault(s, {"steps": []})["train_seconds"] = (time.perf_counter() - t) / len(group)

        bar = tqdm(total=len(todo) * len(SEED_NOTEBOOKS) + 1, desc="notebooks", disable=not progress)
        for s in todo:
            scfg = replace(cfg, seed=s)
            sdir = paths.seed_dir(out, s)
            rec = {"seed": s, "config_id": scfg.identity(), "status": "running", "steps": [], "error": None}
            params = {"profile": cfg.profile, "seed": s, "overrides": list(overrides), "run_dir": str(sdir)}
            for name in SEED_NOTEBOOKS:
                bar.set_postfix_str(f"seed {s}: {name}")
                seconds, error = _execute(nbs[name], sdir / f"{name}.ipynb", params, cwd=sdir)
                if name == "train":
                    seconds += records.get(s, {}).get("train_seconds", 0.0)
                rec["steps"].append({"name": name, "seconds": seconds, "html": f"seed_{s}/{name}.html",
                                     "ipynb": f"seed_{s}/{name}.ipynb"})
                bar.update(1)
                if error:
                    rec["status"], rec["error"] = "failed", pretrain_error.get(s) or error
                    bar.update(len(SEED_NOTEBOOKS) - len(rec["steps"]))
                    break
            else:
                rec["status"] = "complete"
            io.write_json(sdir / RECORD, rec)
            records[s] = rec

        ok = [s for s in seeds if records[s].get("status") == "complete"]
        for s in ok:
            records[s]["metrics"] = io.read_json(paths.seed_dir(out, s) / "metrics.json")
        pop = _population(nbs["population"], out, cfg, ok, bar)
        bar.close()
        report.write_index(out, run_cfg, [records[s] for s in seeds], pop)

    failed = [s for s in seeds if records[s].get("status") != "complete"]
    pop_failed = bool(pop and pop.get("error"))
    if progress or failed or pop_failed:
        import sys
        print(f"sysa run: {len(ok)}/{len(seeds)} seeds complete"
              + (f"; failed: {', '.join(map(str, failed))}" if failed else "")
              + ("; population report failed" if pop_failed else "")
              + f"; report: {out / 'index.html'}", file=sys.stderr)
    return 1 if failed or pop_failed or not ok else 0


def _population(src: Path, out: Path, cfg: Config, ok: list[int], bar) -> dict | None:
    """Execute the population notebook over the complete seeds, unless its inputs are unchanged."""
    bar.set_postfix_str("population")
    if not ok:
        bar.update(1)
        return None
    digest = population.inputs_digest(out, ok)
    rec_path = out / "population.json"
    if rec_path.exists() and (out / "population.html").exists():
        try:
            prev = io.read_json(rec_path)
        except UserError:
            prev = {}
        if prev.get("digest") == digest and not prev.get("error"):
            bar.update(1)
            return prev
    seconds, error = _execute(src, out / "population.ipynb", {"profile": cfg.profile, "run_dir": str(out)}, cwd=out)
    rec = {"digest": digest, "seeds": ok, "seconds": seconds, "error": error,
           "links": {"population report": "population.html", "notebook": "population.ipynb",
                     "table (CSV)": "population.csv"}}
    io.write_json(rec_path, rec)
    bar.update(1)
    return rec
