"""One seed's chain of notebooks (train -> inspect -> pca), executed by papermill into the seed's
folder and rendered to HTML, and the record that says how far it got."""
from __future__ import annotations

import atexit
import os
import platform
import queue
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import nbformat
import papermill
from jupyter_client import AsyncKernelManager, BlockingKernelClient
from jupyter_core.utils import run_sync
from papermill.exceptions import PapermillExecutionError

from .. import files, training
from ..errors import UserError
from . import plots, report, verify
from .ensembles import SEED_NOTEBOOKS, Ensemble


def running_path(dst: Path) -> Path:
    """Where papermill writes a notebook while it runs (moved to `dst` when it ends, so `dst` is never
    a notebook cut short by a kill or a full disk; files.remove_temporaries removes one left behind)."""
    return Path(dst).with_name(f".{Path(dst).stem}.tmp{Path(dst).suffix}")


#: how long a kernel may take to start and answer
KERNEL_START_S = 60
#: how often a thread waiting for a notebook or a kernel's answer wakes: the main thread to handle a
#: signal, the others to see a stop or a dead kernel
SIGNAL_POLL_S = 0.1
#: how long the kernel may take to reset its namespace between notebooks
RESET_TIMEOUT_S = 60
#: how long a new kernel may take to import what the notebooks import
WARM_TIMEOUT_S = 300


class KernelDied(RuntimeError):
    """The kernel a runner waits on is gone (killed, or it died by itself)."""

    def __init__(self):
        super().__init__("the kernel died")


class NotebookRunner:
    """Executes notebooks with papermill in one kernel that lives from notebook to notebook, so the
    kernel start and the imports are paid once: before each notebook the kernel's namespace is reset
    (nothing of the previous notebook is visible) and its working folder set. A kernel that died is
    replaced by a new one."""

    def __init__(self):
        self.km = None
        self.kc = None

    def _kernel(self):
        if STOP.is_set():
            raise RuntimeError(STOPPED)
        if self.km is not None and run_sync(self.km.is_alive)():
            return self.km
        self.close()
        self.km = AsyncKernelManager(kernel_name="python3")
        # the kernel's start-up notice about loopback TCP is noise here
        run_sync(self.km.start_kernel)(extra_arguments=["--IPKernelApp.log_level=ERROR",
                                                        "--HistoryManager.enabled=False"])
        self.kc = BlockingKernelClient()
        self.kc.load_connection_info(self.km.get_connection_info())
        self.kc.start_channels()
        deadline = time.monotonic() + KERNEL_START_S
        while True:  # in short waits, so that a kernel killed by `stop`, or dead, is not waited for
            try:
                self.kc.wait_for_ready(timeout=1)
                break
            except RuntimeError:
                if STOP.is_set() or time.monotonic() > deadline or not run_sync(self.km.is_alive)():
                    raise
        self._warm()
        return self.km

    def _warm(self) -> None:
        """Import what the notebooks import (WARM_IMPORTS), then exempt those long-lived objects
        from the cyclic garbage collector (gc.freeze). The namespace reset between notebooks runs
        two full collections; without the freeze each would walk every object of torch,
        matplotlib and sysa_core (some 300,000) to free the few a notebook left in cycles. Imports
        that fail are left to the notebook, which reports them; a stop or a dead kernel is raised, and
        so is a kernel still importing after WARM_TIMEOUT_S, shut down (no notebook could use it)."""
        try:
            self.run_code(f"{WARM_IMPORTS}\nimport gc as _gc; _gc.freeze(); del _gc", timeout=WARM_TIMEOUT_S)
        except TimeoutError:
            self.close()
            raise TimeoutError(f"the kernel's imports took over {WARM_TIMEOUT_S} s") from None
        except KernelDied:
            raise
        except RuntimeError:
            if STOP.is_set():
                raise

    def _reset(self, cwd: Path) -> None:
        """A clean namespace, the working folder `cwd`, and this process's lock (files.LOCK_ENV) as the
        kernel's: a kernel kept from an earlier job never writes under that job's lock."""
        lock = os.environ.get(files.LOCK_ENV)
        env = (f"_os.environ[{files.LOCK_ENV!r}] = {lock!r}" if lock
               else f"_os.environ.pop({files.LOCK_ENV!r}, None)")
        self.run_code(f"get_ipython().run_line_magic('reset', '-f')\n"
                      f"import os as _os; _os.chdir({str(cwd)!r}); {env}; del _os", timeout=RESET_TIMEOUT_S)

    def run_code(self, code: str, timeout: float) -> None:
        """Run `code` in the kernel and wait for its reply, in short waits: a `stop` (which kills the
        kernel) or the kernel's death ends the wait at once (RuntimeError) instead of at the timeout
        (TimeoutError). An error in the code is a RuntimeError naming it. The code runs silently: it
        does not advance the kernel's execution count, so a notebook's cells are numbered from 1."""
        msg_id = self.kc.execute(code, silent=True)
        deadline = time.monotonic() + timeout
        while True:
            try:
                reply = self.kc.get_shell_msg(timeout=SIGNAL_POLL_S)
            except queue.Empty:
                if STOP.is_set():
                    raise RuntimeError(STOPPED) from None
                if not run_sync(self.km.is_alive)():
                    raise KernelDied() from None
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the kernel did not answer within {timeout:g} s") from None
                continue
            if reply["parent_header"].get("msg_id") != msg_id:
                continue
            while True:  # drop what this client's iopub channel holds (earlier notebooks' output): nobody reads it
                try:
                    self.kc.get_iopub_msg(timeout=0)
                except queue.Empty:
                    break
            content = reply["content"]
            if content.get("status") != "ok":
                raise RuntimeError(f"{content.get('ename', 'error')}: {content.get('evalue', '')}")
            return

    def execute(self, src: Path, dst: Path, params: dict, cwd: Path, title: str | None = None,
                code: bool = False) -> tuple[float, str | None]:
        """Run one notebook and render it to HTML (its page titled `title`; the code cells shown when
        `code`); returns (seconds, error or None)."""
        t = time.perf_counter()
        error = None
        running = running_path(dst)
        try:
            km = self._kernel()
            self._reset(cwd)
            if STOP.is_set():  # stopped while this kernel started, before `stop` could kill it
                raise RuntimeError(STOPPED)
            # the kernel works in `cwd` (_reset); papermill's own cwd would chdir this whole process, which
            # notebooks running at once in other threads share: it is not passed
            papermill.execute_notebook(str(src), str(running), parameters=params, progress_bar=False,
                                       kernel_name="python3", km=km)
        except PapermillExecutionError as exc:
            error = f"{dst.name}: {exc.ename}: {str(exc.evalue).splitlines()[0] if exc.evalue else ''}"
        except Exception as exc:  # kernel death, timeouts: the seed fails, the run goes on
            error = f"{dst.name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        if STOP.is_set():  # cut short by `stop`: the last whole notebook and report stay
            running.unlink(missing_ok=True)
            return time.perf_counter() - t, STOPPED
        if running.exists():  # the executed notebook (a failed one too, to read) replaces the last one whole
            try:
                nbformat.read(str(running), as_version=4)
                os.replace(running, dst)
            except Exception as exc:  # noqa: BLE001 - a notebook cut short (a full disk, a file-size limit)
                running.unlink()
                error = error or f"{dst.name}: the executed notebook could not be written whole ({type(exc).__name__})"
                return time.perf_counter() - t, error
        if dst.exists():
            _portable(dst, src)
            report.notebook_to_html(dst, dst.with_suffix(".html"), title, code=code)
        return time.perf_counter() - t, error

    def close(self) -> None:
        """Shut the kernel down."""
        if self.kc is not None:
            self.kc.stop_channels()
            self.kc = None
        if self.km is not None:
            try:
                run_sync(self.km.shutdown_kernel)(now=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
            self.km = None


def _portable(dst: Path, src: Path) -> None:
    """Name the executed notebook and its source in papermill's metadata by file name, not by the
    absolute paths papermill records, so that the notebook names no folder of this machine."""
    nb = nbformat.read(str(dst), as_version=4)
    pm = nb.metadata.get("papermill", {})
    if "input_path" in pm or "output_path" in pm:
        pm["input_path"], pm["output_path"] = f"notebooks/{Path(src).name}", Path(dst).name
        files.write_text(dst, nbformat.writes(nb))


_lock = threading.Lock()
_ready = threading.Condition(_lock)  # notified when a runner becomes idle (prewarmed, or back from a notebook)
_idle: list[NotebookRunner] = []  # runners whose kernel waits for the next notebook
_runners: list[NotebookRunner] = []  # every runner this process started
_warming = 0  # prewarmed runners whose kernel is still starting or importing
#: set when this process is told to stop (SIGTERM, Ctrl-C): no notebook starts after it
STOP = threading.Event()
STOPPED = "stopped: the run was interrupted"


def stop() -> None:
    """Stop this process's notebook work: no notebook starts any more, and every kernel is killed,
    so the threads running notebooks in them return at once (their kernel died). The kernels are
    killed by process id, not through their managers, which the threads are using."""
    STOP.set()
    with _lock:
        runners = list(_runners)
    for r in runners:
        pid = getattr(getattr(r.km, "provisioner", None), "pid", None)
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


@atexit.register
def close_runners() -> None:
    """Shut down every kernel this process started."""
    with _lock:
        _idle.clear()
        while _runners:
            _runners.pop().close()


#: what a notebook's first cell imports, imported into every new kernel before its first notebook
WARM_IMPORTS = "import sysa_core.pipeline.notebook, sysa_core.pipeline.plots, sysa_core.pipeline.population_plots"


def prewarm(n: int) -> None:
    """Start n kernels in the background and import what the notebooks import into them, so that
    they are ready when the first notebooks run (while this process trains, say). A notebook that
    is to run while they are still warming waits for one of them rather than start another."""
    global _warming

    def start(r: NotebookRunner):
        global _warming
        try:
            r._kernel()
        except Exception:  # noqa: BLE001 - a kernel that failed to start, died or was stopped is
            pass  # replaced when used
        finally:
            with _ready:
                _warming -= 1
                _idle.append(r)
                _ready.notify_all()  # with none warming any more, every waiter starts its own

    for _ in range(n):
        r = NotebookRunner()
        t = threading.Thread(target=start, args=(r,), name="sysa-prewarm", daemon=True)
        with _lock:
            _runners.append(r)
            _warming += 1
        try:
            t.start()
        except BaseException:
            with _lock:
                _warming -= 1
                _runners.remove(r)
            raise


def execute(src: Path, dst: Path, params: dict, cwd: Path, title: str | None = None,
            code: bool = False) -> tuple[float, str | None]:
    """Run one notebook (NotebookRunner.execute) in an idle kernel of this process; while none is
    idle and a prewarmed one is still starting, it waits for that one (a run prewarms one kernel per
    lane, so no lane waits for another's); with none of either, it starts a kernel (one per thread
    that runs notebooks at the same time). After `stop`, none runs: (0, STOPPED).

    Called from the main thread, the notebook runs in a worker thread while the main thread waits,
    so that a signal's exception (SIGTERM, Ctrl-C) is raised in that wait, never inside the kernel
    client's event loop or sockets (left half-used there, they can block the interpreter's exit).
    The kernels are then killed (`stop`), the worker returns, and the exception goes on."""
    if threading.current_thread() is not threading.main_thread():
        return _execute(src, dst, params, cwd, title, code)
    with ThreadPoolExecutor(1, thread_name_prefix="sysa-notebook") as pool:
        try:
            job = pool.submit(_execute, src, dst, params, cwd, title, code)
            # in short waits: a signal the operating system delivers to another thread is handled
            # only when the main thread wakes, so a wait without a timeout defers it to the notebook's end
            while not wait([job], timeout=SIGNAL_POLL_S).done:
                pass
            return job.result()
        except Exception:  # the notebook's own failure: the run goes on
            raise
        except BaseException:  # a signal in the wait: the kernels go before the pool waits for its worker
            stop()
            raise


def _execute(src: Path, dst: Path, params: dict, cwd: Path, title: str | None,
             code: bool) -> tuple[float, str | None]:
    if STOP.is_set():
        return 0.0, STOPPED
    with _ready:
        while not _idle and _warming and not STOP.is_set():  # a prewarmed kernel is nearly ready
            _ready.wait(SIGNAL_POLL_S)
        if STOP.is_set():
            return 0.0, STOPPED
        r = _idle.pop() if _idle else None
        if r is None:
            r = NotebookRunner()
            _runners.append(r)
    try:
        return r.execute(src, dst, params, cwd, title, code)
    finally:
        with _ready:
            _idle.append(r)
            _ready.notify()


def set_threads(n: int) -> None:
    """Torch threads for this process and the notebook kernels it starts."""
    import torch

    torch.set_num_threads(n)
    os.environ["OMP_NUM_THREADS"] = str(n)  # inherited by the kernels


def notebook_params(ens: Ensemble, seed: int, name: str) -> dict:
    """The papermill parameters of a seed notebook in a run. Paths are relative to the seed's folder,
    where the notebook runs, so that the executed notebook names no folder of this machine and
    analyses the checkpoint beside it wherever the run folder is moved or copied."""
    p = {"profile": ens.cfg.profile, "seed": seed, "overrides": list(ens.overrides), "run_dir": "."}
    if name != "train":
        # the analysis goes beside the checkpoint (run_dir empty): a user who changes only
        # `checkpoint` analyses that model in its own folder, never into this one
        p["run_dir"] = ""
        p["checkpoint"] = files.checkpoint_path(Path("."), seed).name
    return p


def seed_job(ens: Ensemble, seed: int, nbs: dict, train_here: bool, threads: int | None = None,
             pretrain_error: str | None = None, where: str = "here", lock: str | None = None,
             html_code: bool = False) -> dict:
    """One seed's chain: (training,) then train -> inspect -> pca notebooks; writes and returns the
    seed's record (its steps and their seconds, the training time, and the sha256 of the checkpoint
    it completed with). The record says "running" until the chain completes, so an interrupted
    chain is never taken for a complete one. Runs in this process, a pool worker or a Dask worker
    (`where` says which); lock: the run folder's lock its holder holds for this job (files.LOCK_ENV);
    html_code: the HTML reports show the code cells."""
    if threads:
        set_threads(threads)
    with _under_lock(lock):
        return _chain(ens, seed, nbs, train_here, pretrain_error, where, html_code)


@contextmanager
def _under_lock(lock: str | None):
    """files.LOCK_ENV names `lock` while the job runs, and what it named before afterwards: a worker
    that runs jobs of several runs never carries one run's lock into the next."""
    before = os.environ.get(files.LOCK_ENV)
    if lock:
        os.environ[files.LOCK_ENV] = lock
    try:
        yield
    finally:
        if lock:
            if before is None:
                os.environ.pop(files.LOCK_ENV, None)
            else:
                os.environ[files.LOCK_ENV] = before


def _chain(ens: Ensemble, seed: int, nbs: dict, train_here: bool, pretrain_error: str | None, where: str,
           html_code: bool) -> dict:
    scfg = replace(ens.cfg, seed=seed)
    sdir = ens.seed_dir(seed)
    sdir.mkdir(parents=True, exist_ok=True)
    rec = {"seed": seed, "ensemble": ens.label, "training_id": scfg.training_id(),
           "analysis_id": scfg.analysis_id(), "status": "running", "steps": [], "error": None,
           "host": platform.node(), "where": where, "train_seconds": None, "checkpoint_sha256": None}
    files.write_json(files.record_path(sdir), rec)
    if train_here and not STOP.is_set():
        try:
            training.train(scfg, sdir, progress=False, figures=plots.training_figures)
        except UserError as exc:
            pretrain_error = str(exc)
    for name in SEED_NOTEBOOKS:
        if STOP.is_set():
            rec["status"], rec["error"] = "failed", STOPPED
            break
        seconds, error = execute(nbs[name], sdir / f"{name}.ipynb", notebook_params(ens, seed, name), sdir,
                                 report.page_title(name, seed, ens.cfg.profile, ens.label), html_code)
        rec["steps"].append({"name": name, "seconds": seconds, "html": ens.rel(seed, f"{name}.html"),
                             "ipynb": ens.rel(seed, f"{name}.ipynb")})
        if error:
            rec["status"], rec["error"] = "failed", pretrain_error or error
            break
    else:
        rec["status"] = "complete"
        rec["outputs"] = verify.seed_outputs(sdir, seed)
    try:
        meta = files.read_json(files.meta_path(sdir, seed))
        rec["train_seconds"] = float(meta["train_seconds"])
        rec["trained_together"] = int(meta.get("trained_together") or 1)
        rec["checkpoint_sha256"] = meta.get("checkpoint_sha256")
    except (UserError, KeyError, TypeError, ValueError):
        pass
    files.write_json(files.record_path(sdir), rec)
    return rec
