"""Where the per-seed chains run when not one after another here: a local process pool
(`--workers N`) or the workers of an existing Dask cluster (`--scheduler ADDRESS`)."""
from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import platform
import signal
import uuid
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures import as_completed as pool_completed
from pathlib import Path
from urllib.parse import urlparse

from .. import files
from ..errors import UserError
from . import jobs
from .jobs import seed_job

DASK_HINT = "pip install 'dask[distributed]' (or: pip install -e '.[dask]')"
PR_SET_PDEATHSIG = 1


def failed_record(ens, seed: int, exc: BaseException) -> dict:
    """The record of a seed whose chain raised instead of finishing."""
    msg = str(exc).splitlines()[0] if str(exc) else ""
    return {"seed": seed, "ensemble": ens.label, "status": "failed", "steps": [],
            "error": f"{type(exc).__name__}: {msg}"}


def _dask_seed_job(ens, seed: int, nbs: dict, threads: int, lock: str | None, html_code: bool = False) -> dict:
    """seed_job on a Dask worker, which the record names."""
    from distributed import get_worker

    return seed_job(ens, seed, nbs, True, threads, where=f"dask {get_worker().address}", lock=lock,
                    html_code=html_code)


def _die_with_parent() -> None:
    """A pool worker's initializer: the worker is killed when the process that started it dies (Linux's
    parent-death signal), so a killed run leaves no worker behind; its kernels follow their parent."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return  # not Linux: the pool shuts its workers down when the run ends normally
    if os.getppid() == 1:  # the parent died before the signal was armed
        os._exit(1)


def run_jobs(todo, nbs: dict, workers: int = 1, client=None, bar=None, threads: int | None = None,
             lock: str | None = None, trained: dict | None = None, html_code: bool = False):
    """Run seed_job for each (ensemble, seed); yield ((label, seed), record) as each finishes.
    client: a Dask client (each task trains its seed and runs its chain); else, when `trained` is
    given, the models were trained in this process ({(label, seed): why its training failed}) and
    their chains run here, in `workers` threads each with its own kernel; else a pool of `workers`
    local processes, each job training its seed first. lock: the run folder's lock this process
    holds (files.LOCK_ENV), under which the jobs write; html_code: the reports show the code cells.
    A job that raises (or whose worker is lost for good) yields a failed record; the others go on."""
    if client is not None:
        from distributed import as_completed

        futures = {client.submit(_dask_seed_job, ens, s, nbs, threads or 1, lock, html_code, pure=False, retries=1,
                                 key=f"sysa-{ens.label}-{s}-{uuid.uuid4().hex[:8]}"): (ens, s)
                   for ens, s in todo}
        completed = as_completed(futures)
    elif trained is not None:
        pool = ThreadPoolExecutor(workers, thread_name_prefix="sysa-notebooks")
        futures = {pool.submit(seed_job, ens, s, nbs, False, None, trained.get((ens.label, s)),
                               html_code=html_code): (ens, s)
                   for ens, s in todo}
        completed = pool_completed(futures)
    else:
        threads = threads or max(1, (os.cpu_count() or 1) // workers)
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"), initializer=_die_with_parent)
        futures = {pool.submit(seed_job, ens, s, nbs, True, threads, where="pool", lock=lock, html_code=html_code):
                   (ens, s)
                   for ens, s in todo}
        completed = pool_completed(futures)
    try:
        for fut in completed:
            ens, s = futures[fut]
            try:
                rec = fut.result()
            except Exception as exc:  # noqa: BLE001 - a lost worker or a crash in the chain
                rec = failed_record(ens, s, exc)
            if bar is not None:
                bar.set_postfix_str(f"{ens.label} seed {s} done")
                bar.update(1)
            yield (ens.label, s), rec
    except BaseException:  # a signal or Ctrl-C: no queued chain starts, running notebooks end now
        jobs.stop()
        if client is not None:
            client.cancel(list(futures))
        raise
    finally:
        if client is None:
            pool.shutdown(cancel_futures=True)


def _probe(path: str, token: str) -> str:
    """Runs on each worker: can it read the probe file `path` the client wrote, holding `token`?"""
    p = Path(path)
    try:
        ok = p.read_text() == token
    except OSError:
        ok = False
    return "ok" if ok else f"cannot read {p} on {platform.node()}"


def check_address(address: str) -> None:
    """A scheduler address as Dask takes it (tcp://host:port, port 1-65535); UserError otherwise."""
    url = urlparse(address if "://" in address else f"tcp://{address}")
    try:
        port = url.port
    except ValueError:
        port = -1
    if not url.hostname or port is None or not 1 <= port <= 65535:
        raise UserError(f"--scheduler {address}: not a scheduler address (tcp://HOST:PORT, the port 1-65535)")


def dask_client(address: str, out: Path):
    """Connect to the Dask scheduler at `address` and check that every worker sees `out`."""
    try:
        from distributed import Client
    except ImportError:
        raise UserError(f"--scheduler: Dask is not installed; {DASK_HINT}") from None
    check_address(address)
    try:
        client = Client(address, timeout="10s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise UserError(f"--scheduler {address}: cannot connect ({str(exc).splitlines()[0][:120]})") from None
    if not client.scheduler_info().get("workers"):
        try:
            client.wait_for_workers(1, timeout=20)
        except (TimeoutError, OSError):
            client.close()
            raise UserError(f"--scheduler {address}: the cluster has no workers") from None
    token = uuid.uuid4().hex
    probe = Path(out) / f"{files.PROBE_PREFIX}{token}"  # its own name: runs probing at once never share one
    probe.write_text(token)
    try:
        answers = client.run(_probe, str(probe), token)
    finally:
        probe.unlink(missing_ok=True)
    bad = {w: a for w, a in answers.items() if a != "ok"}
    if bad:
        client.close()
        worker, why = next(iter(bad.items()))
        raise UserError(f"--out {out}: not reachable from Dask worker {worker} ({why}); the output folder must "
                        f"be on a filesystem shared with the workers")
    return client
