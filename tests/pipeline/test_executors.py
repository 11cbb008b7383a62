"""Per-seed chains (sysa_core.pipeline.executors) on a real Dask cluster on loopback (scheduler +
two worker processes), on a local process pool, and the local path without Dask installed. Their
metrics are compared with the session's smoke run (one torch thread per seed, like each Dask task
and each of two pool workers on two cores: bit-identity is promised for the same thread count)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import (
    SMOKE_RUN,
    alive,
    cmdline,
    copy_run,
    descendants,
    locked,
    popen_cli,
    wait_for,
)

SEEDS = "1-2"


def sysa(*args, env=None):
    return subprocess.run([sys.executable, "-m", "sysa_core", *args], capture_output=True, text=True,
                          timeout=900, env=env)


def metrics(run: Path) -> dict:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(run.glob("seed_*/metrics.json"))}


def where(run: Path) -> list[str]:
    return [json.loads(p.read_text())["where"] for p in sorted(run.glob("seed_*/pipeline.json"))]


class Cluster:
    """`dask scheduler` and two `dask worker` processes on 127.0.0.1, each in its own session."""

    def __init__(self, folder: Path, n_workers: int = 2):
        self.file = folder / "scheduler.json"
        self.procs = []
        try:  # a cluster that fails to come up leaves no process behind
            self.scheduler = self._start("distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                                         "--no-dashboard", "--scheduler-file", str(self.file))
            wait_for(self._address, timeout=60, what="the scheduler to write its address")
            self.workers = [self._start("distributed.cli.dask_worker", "--scheduler-file", str(self.file),
                                        "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1")
                            for _ in range(n_workers)]
            if n_workers:
                self.wait(n_workers)
        except BaseException:
            self.close()
            raise

    def _address(self) -> bool:
        """Whether the scheduler's file holds its address yet (it creates the file before it writes it)."""
        try:
            self.address = json.loads(self.file.read_text())["address"]
        except (OSError, ValueError, KeyError):
            return False
        return True

    def wait(self, n):
        from distributed import Client

        with Client(self.address, timeout="30s") as c:
            c.wait_for_workers(n, timeout=60)

    def _start(self, module, *args):
        return self._start_cmd([sys.executable, "-m", module, *args])

    def _start_cmd(self, cmd):
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(p)
        return p

    def kill(self, proc):
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def process_of(self, pid: int):
        """The started process whose session holds process `pid` (a worker runs under its nanny)."""
        return next(p for p in self.procs if p.pid == os.getpgid(pid))

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=30)


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    yield c
    c.close()


def test_dask_run_survives_a_killed_worker_and_matches_the_local_run(cluster, smoke_run, tmp_path):
    """The seeds run as tasks on the cluster's workers; the worker training a seed is killed once
    that seed has a checkpoint; the run still completes in one go (the task is retried on the other
    worker, which resumes from the checkpoint) with metrics identical to the local run's."""
    from distributed import Client

    out = tmp_path / "dask"
    args = [sys.executable, "-m", "sysa_core", "run", "--profile", "smoke", "--seeds", SEEDS, "--out", str(out),
            "--quiet", "--scheduler", cluster.address]
    with Client(cluster.address, timeout="30s") as c:
        addresses = set(c.scheduler_info()["workers"])
        pids = c.run(os.getpid)
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        victim = {}

        def training_with_a_checkpoint() -> bool:
            for address, keys in c.processing().items():
                for key in keys:
                    _, label, seed, _ = str(key).split("-")
                    if label == "main" and list((out / f"seed_{seed}").glob("sys_A*_state.pth")):
                        victim.update(address=address, seed=int(seed))
                        return True
            assert proc.poll() is None, proc.communicate()[1]
            return False

        wait_for(training_with_a_checkpoint, timeout=300, what="a seed's task with a checkpoint")
        cluster.kill(cluster.process_of(pids[victim["address"]]))  # a worker dies in the middle of its task
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err
    assert metrics(out) == metrics(smoke_run)
    assert (out / "index.html").exists() and (out / "population.html").exists()
    ran_on = where(out)
    assert len(ran_on) == 2 and all(w.startswith("dask ") and w.split()[1] in addresses for w in ran_on), ran_on
    survivor = json.loads((out / f"seed_{victim['seed']}" / "pipeline.json").read_text())["where"]
    assert survivor.split()[1] != victim["address"], survivor  # finished by the worker that was not killed


def test_scheduler_runs_at_once_into_one_folder_and_one_after_another_on_the_same_workers(cluster, tmp_path):
    """Two `--scheduler` runs started together into one folder: one runs, the other is refused as busy
    (not as unreachable: each probes the workers with a file of its own). A later run into another
    folder on the same workers completes: their kernels carry no earlier run's lock."""
    base = ["run", "--profile", "smoke", "--seeds", "1", "--quiet", "--scheduler", cluster.address]
    first = tmp_path / "first"
    a, b = (popen_cli(*base, "--out", first) for _ in range(2))
    (_, err_a), (_, err_b) = a.communicate(timeout=900), b.communicate(timeout=900)
    codes = sorted([a.returncode, b.returncode])
    assert codes == [0, 2], (err_a, err_b)
    refused = err_a if a.returncode == 2 else err_b
    assert "another sysa process is writing" in refused and "not reachable" not in refused, refused
    assert not list(first.glob(".sysa-probe*"))
    second = sysa(*base, "--out", str(tmp_path / "second"))
    assert second.returncode == 0, second.stderr
    assert metrics(tmp_path / "second") == metrics(first)


def test_output_folder_the_workers_cannot_see_is_refused_before_any_work(tmp_path):
    if os.geteuid() != 0 or subprocess.run(["unshare", "--mount", "true"], capture_output=True).returncode:
        pytest.skip("needs root and unshare to give a worker its own view of the filesystem")
    hidden = tmp_path / "out"
    hidden.mkdir()
    c = Cluster(tmp_path, n_workers=0)
    try:
        # a worker in its own mount namespace, where an empty tmpfs covers the output folder:
        # like a worker on another machine without the shared filesystem
        c.workers.append(c._start_cmd(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                                       f"mount -t tmpfs none {hidden} && exec {sys.executable} -m "
                                       f"distributed.cli.dask_worker --scheduler-file {c.file} --nthreads 1 "
                                       f"--no-dashboard --host 127.0.0.1"]))
        c.wait(1)
        res = sysa("run", "--profile", "smoke", "--seeds", "1", "--out", str(hidden), "--scheduler", c.address)
    finally:
        c.close()
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "not reachable from Dask worker" in lines[0] and "shared" in lines[0], res.stderr
    assert not (hidden / "seed_1").exists()


def test_a_two_worker_run_leaves_no_process_when_killed_and_resumes_to_the_local_results(smoke_run, tmp_path):
    """SIGKILL of a `--workers 2` run while its workers train and run notebooks: its workers (killed
    by the parent-death signal) and their kernels (which watch their parent) all end, and the lock
    is free; the same command then completes with the local run's metrics."""
    out = tmp_path / "pool"
    args = ["run", "--profile", "smoke", "--seeds", SEEDS, "--out", out, "--quiet", "--workers", "2"]
    proc = popen_cli(*args)
    try:
        wait_for(lambda: list(out.glob("seed_*/train.ipynb")), what="a worker's first notebook")
        procs = descendants(proc.pid)
        assert any("ipykernel" in cmdline(p) for p in procs), "no kernel ran"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    wait_for(lambda: not any(alive(p) for p in procs), timeout=15,
             what=f"processes {sorted(p for p in procs if alive(p))} to end")
    assert not locked(out)

    res = sysa(*map(str, args))
    assert res.returncode == 0, res.stderr
    assert metrics(out) == metrics(smoke_run)
    assert where(out) == ["pool", "pool"]


BLOCK_DASK = """
import sys
class _NoDask:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('dask', 'distributed'):
            raise ImportError('No module named ' + repr(name))
sys.meta_path.insert(0, _NoDask())
from sysa_core.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_without_dask_the_local_path_works_and_scheduler_explains(smoke_run, tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-c", BLOCK_DASK, *a], capture_output=True, text=True,
                                    timeout=600)
    local = copy_run(smoke_run, tmp_path / "a")  # a complete run: the local path checks it and rewrites the index
    res = run(*SMOKE_RUN, "--out", str(local))
    assert res.returncode == 0, res.stderr
    res = run("run", "--profile", "smoke", "--seeds", "1", "--out", str(tmp_path / "b"), "--scheduler",
              "tcp://127.0.0.1:8786")
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        "sysa: error: --scheduler: Dask is not installed; pip install 'dask[distributed]' "
        "(or: pip install -e '.[dask]')"]
