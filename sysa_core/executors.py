"""Where the per-seed chains run when not one after another here: a local process pool
(`--workers N`) or the workers of an existing Dask cluster (`--scheduler ADDRESS`)."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

from .errors import UserError

DASK_HINT = "pip install 'dask[distributed]' (or: pip install -e '.[dask]')"


def _failed(ens, seed: int, exc: BaseException) -> dict:
    msg = str(exc).splitlines()[0] if str(exc) else ""
    return {"seed": seed, "ensemble": ens.label, "status": "failed", "steps": [],
            "error": f"{type(exc).__name__}: {msg}"}


def run_jobs(todo, nbs: dict, workers: int = 1, client=None, bar=None, threads: int | None = None):
    """Run seed_job for each (ensemble, seed); yield ((label, seed), record) as each finishes.
    A job that raises (or whose worker is lost for good) yields a failed record; the others go on."""
    from .pipeline import seed_job

    if client is not None:
        from distributed import as_completed

        futures = {}
        for ens, s in todo:
            fut = client.submit(seed_job, ens, s, nbs, True, threads or 1, key=f"sysa-{ens.label}-{s}-{uuid.uuid4().hex[:8]}",
                                pure=False, retries=1)
            futures[fut] = (ens, s)
        for fut in as_completed(futures):
            ens, s = futures[fut]
            try:
                rec = fut.result()
            except Exception as exc:  # noqa: BLE001 - a lost worker or a crash in the chain
                rec = _failed(ens, s, exc)
            _tick(bar, ens, s)
            yield (ens.label, s), rec
        return

    from concurrent.futures import ProcessPoolExecutor, as_completed as cf_completed
    import multiprocessing as mp

    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(seed_job, ens, s, nbs, True, threads): (ens, s) for ens, s in todo}
        for fut in cf_completed(futures):
            ens, s = futures[fut]
            try:
                rec = fut.result()
            except Exception as exc:  # noqa: BLE001
                rec = _failed(ens, s, exc)
            _tick(bar, ens, s)
            yield (ens.label, s), rec


def _tick(bar, ens, s) -> None:
    if bar is not None:
        bar.set_postfix_str(f"{ens.label} seed {s} done")
        bar.update(1)


def _probe(path: str, token: str) -> str:
    """Runs on each worker: can it see the run folder and the token written by the client?"""
    import platform

    p = Path(path) / ".sysa-probe"
    try:
        ok = p.read_text() == token
    except OSError:
        ok = False
    return "ok" if ok else f"cannot read {p} on {platform.node()}"


def dask_client(address: str, out: Path):
    """Connect to the Dask scheduler at `address` and check that every worker sees `out`."""
    try:
        from distributed import Client
    except ImportError:
        raise UserError(f"--scheduler: Dask is not installed; {DASK_HINT}") from None
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
    probe = Path(out) / ".sysa-probe"
    probe.write_text(token)
    try:
        answers = client.run(_probe, str(out), token)
    finally:
        probe.unlink(missing_ok=True)
    bad = {w: a for w, a in answers.items() if a != "ok"}
    if bad:
        client.close()
        worker, why = next(iter(bad.items()))
        raise UserError(f"--out {out}: not reachable from Dask worker {worker} ({why}); the output folder must "
                        f"be on a filesystem shared with the workers")
    return client
