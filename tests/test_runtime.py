"""sysa_core.runtime: the training device and the thread limits."""
from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest
import torch

from sysa_core import forked, runtime
from sysa_core.errors import UserError


def test_resolve_device(monkeypatch):
    monkeypatch.delenv("SYSA_DEVICE", raising=False)
    assert runtime.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert runtime.resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("SYSA_DEVICE", "cpu")
    assert runtime.resolve_device("auto") == torch.device("cpu")
    for bad in ("tpu", "cuda:x", "gpu"):
        with pytest.raises(UserError, match="unknown device"):
            runtime.resolve_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA GPU"):
            runtime.resolve_device("cuda:0")


def test_limited_caps_and_restores_the_threads():
    from threadpoolctl import threadpool_info

    before = torch.get_num_threads()
    with runtime.limited(1):
        assert torch.get_num_threads() == 1
        assert all(p["num_threads"] == 1 for p in threadpool_info())
    assert torch.get_num_threads() == before
    with runtime.limited(None):
        assert torch.get_num_threads() == before


def _grown(a: list) -> int:
    a.append(1)  # in the child's copy of the list: the parent's stays as it is
    return len(a)


def test_beside_runs_each_job_in_a_forked_child_that_sees_this_memory_and_sends_back_the_result():
    data = [1, 2, 3]
    with runtime.beside(True) as pool:
        where = pool.submit(os.getpid)
        grown = pool.submit(_grown, data)
        big = pool.submit(lambda: np.arange(3_000_000.0))  # 24 MB: more than a pipe holds
    assert where.result() != os.getpid() and grown.result() == 4 and data == [1, 2, 3]
    assert np.array_equal(big.result(), np.arange(3_000_000.0))
    with runtime.beside(on=False) as pool:
        assert pool.submit(threading.current_thread).result() is threading.current_thread()


def test_a_job_beside_ends_with_its_exception_or_a_line_naming_how_its_child_died():
    with runtime.beside(True) as pool:
        failing = pool.submit(lambda: 1 / 0)
        user = pool.submit(_raise_user_error)
        killed = pool.submit(lambda: os.kill(os.getpid(), signal.SIGKILL))
    with pytest.raises(ZeroDivisionError) as err:  # with the child's traceback
        failing.result()
    assert "in the forked child above" in err.value.__notes__[0] and "1 / 0" in err.value.__notes__[0]
    with pytest.raises(UserError) as err:  # a user's mistake stays one line
        user.result()
    assert str(err.value) == "seed 3: bad" and not getattr(err.value, "__notes__", None)
    died = r"was killed by signal 9 \(SIGKILL, which the kernel's out-of-memory killer sends\) before sending its result"
    with pytest.raises(forked.ChildDied, match=died):
        killed.result()


def _raise_user_error():
    raise UserError("seed 3: bad")


def _alive(pid: int) -> bool:
    """Whether process pid exists and is not a zombie (a dead child its new parent has not reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_leaving_beside_by_an_exception_kills_and_reaps_the_children_still_computing():
    """A signal's exception (or an error) in the block does not wait for the jobs beside it: their
    children are killed and reaped, so none is left running or as a zombie."""
    with pytest.raises(KeyboardInterrupt):
        with runtime.beside(True) as pool:
            running = pool.submit(lambda: time.sleep(60) or os.getpid())
            pid = pool._jobs[0][1]
            raise KeyboardInterrupt
    assert not _alive(pid)
    with pytest.raises(forked.ChildDied, match="signal 9"):
        running.result(timeout=10)


def test_work_goes_beside_only_where_the_process_may_use_two_cores(monkeypatch):
    """`sysa run` gives each notebook lane's kernel OMP_NUM_THREADS = its share of the cores: with
    one core the work stays in this thread (two processes on one core only slow each other)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert runtime.cores_for_this_process() == 1
    with runtime.beside() as pool:
        assert pool.submit(threading.current_thread).result() is threading.current_thread()
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert runtime.cores_for_this_process() == len(os.sched_getaffinity(0))
    if runtime.cores_for_this_process() >= 2:
        with runtime.beside() as pool:
            assert pool.submit(os.getpid).result() != os.getpid()




def test_a_job_beside_runs_here_when_no_child_can_be_forked(monkeypatch):
    """Where fork fails (no memory or process left for a child), the job is computed in this thread."""
    def no_fork():
        raise OSError(12, "Cannot allocate memory")
    monkeypatch.setattr(os, "fork", no_fork)
    with runtime.beside(True) as pool:
        here = pool.submit(os.getpid)
        failing = pool.submit(lambda: 1 / 0)
    assert here.result() == os.getpid()
    with pytest.raises(ZeroDivisionError):
        failing.result()


def test_what_a_job_beside_writes_reaches_this_process_s_file_descriptors(capfd):
    import sys

    def talk():
        print("from the child")
        print("to stderr in the child", file=sys.stderr)
        return 1
    with runtime.beside(True) as pool:
        assert pool.submit(talk).result() == 1
    out, err = capfd.readouterr()
    assert "from the child" in out and "to stderr in the child" in err


def test_a_job_s_child_dies_with_a_process_that_is_killed():
    """A run killed outright (SIGKILL: no handler runs) leaves no child computing behind."""
    import subprocess
    import sys

    code = ("import os, time\nfrom sysa_core import runtime\nwith runtime.beside(True) as pool:\n"
            "    pool.submit(time.sleep, 60)\n    print(pool._jobs[0][1], flush=True)\n    time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        child = int(proc.stdout.readline())
        assert _alive(child)
        proc.kill()
        proc.wait(30)
        deadline = time.monotonic() + 30
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child)
    finally:
        proc.kill()
