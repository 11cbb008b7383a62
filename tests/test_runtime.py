"""sysa_core.runtime: the training device and the thread limits."""
from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest
import torch
from conftest import alive, wait_for

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


@pytest.fixture
def one_thread():
    """Work beside forks only under a one-thread cap (runtime.limited(1))."""
    with runtime.limited(1):
        yield


def _mask() -> set:
    return signal.pthread_sigmask(signal.SIG_BLOCK, [])


def test_beside_runs_each_job_in_a_forked_child_that_sees_this_memory_and_sends_back_the_result(one_thread):
    data, mask = [1, 2, 3], _mask()
    with runtime.beside(True) as pool:
        where = pool.submit(os.getpid)
        grown = pool.submit(_grown, data)
        big = pool.submit(lambda: np.arange(3_000_000.0))  # 24 MB: more than a pipe holds
    assert where.result() != os.getpid() and grown.result() == 4 and data == [1, 2, 3]
    assert np.array_equal(big.result(), np.arange(3_000_000.0))
    assert _mask() == mask  # the signals blocked across each fork are unblocked again
    with runtime.beside(on=False) as pool:
        assert pool.submit(threading.current_thread).result() is threading.current_thread()


def test_beside_forks_only_under_a_one_thread_cap():
    """A child that starts a thread pool its parent has used may wait forever for threads it does
    not have: with more than one thread, the work stays in this thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.ones(512, 512) @ torch.ones(512, 512)  # the pool has run
        with runtime.beside(True) as pool:
            assert pool.submit(os.getpid).result() == os.getpid()
    finally:
        torch.set_num_threads(before)


class _NoRebuild(Exception):
    def __init__(self, a, b):  # pickled with one argument, rebuilt with one: fails
        super().__init__(f"{a} {b}")


def _raise_no_rebuild():
    raise _NoRebuild("two", "parts")


def _raise_user_error():
    raise UserError("seed 3: bad")


def test_a_job_beside_ends_with_its_exception_or_a_line_naming_what_went_wrong(one_thread):
    with runtime.beside(True) as pool:
        failing = pool.submit(lambda: 1 / 0)
        user = pool.submit(_raise_user_error)
        killed = pool.submit(lambda: os.kill(os.getpid(), signal.SIGKILL))
        realtime = pool.submit(lambda: os.kill(os.getpid(), signal.SIGRTMIN + 3))
        unpicklable = pool.submit(lambda: threading.Lock())
        odd = pool.submit(_raise_no_rebuild)
    with pytest.raises(ZeroDivisionError) as err:  # with the child's traceback
        failing.result()
    assert "in the forked child above" in err.value.__notes__[0] and "1 / 0" in err.value.__notes__[0]
    with pytest.raises(UserError) as err:  # a user's mistake stays one line
        user.result()
    assert str(err.value) == "seed 3: bad" and not getattr(err.value, "__notes__", None)
    with pytest.raises(forked.ChildDied, match=r"was killed by signal 9 \(SIGKILL; the kernel's out-of-memory "
                                               r"killer, for one, sends it\) before sending its result"):
        killed.result()
    with pytest.raises(forked.ChildDied, match=rf"was killed by signal {int(signal.SIGRTMIN) + 3} "):
        realtime.result()
    with pytest.raises(TypeError, match="lock"):  # pickling the result failed in the child
        unpicklable.result()
    with pytest.raises(RuntimeError, match="_NoRebuild: two parts .*could not be sent back") as err:
        odd.result()
    assert "_raise_no_rebuild" in str(err.value)


def test_leaving_beside_by_an_exception_kills_and_reaps_the_children_still_computing(one_thread):
    """A signal's exception (or an error) in the block does not wait for the jobs beside it: their
    children are killed and reaped, so none is left running or as a zombie."""
    with pytest.raises(KeyboardInterrupt):
        with runtime.beside(True) as pool:
            running = pool.submit(lambda: time.sleep(60) or os.getpid())
            pid = pool.pids[0]
            raise KeyboardInterrupt
    assert not alive(pid)
    with pytest.raises(ChildProcessError):  # reaped, not left a zombie
        os.waitpid(pid, os.WNOHANG)
    with pytest.raises(forked.ChildDied, match="was stopped when the work beside it was abandoned"):
        running.result(timeout=10)


def _with_another_fork(monkeypatch) -> list:
    """Make os.fork fork a second, sleeping child right after the first job's own, as another thread
    could: it holds a copy of that job's pipe's end while it lives. Returns its pids (one)."""
    real_fork, others = os.fork, []

    def and_another():
        pid = real_fork()
        if pid and not others:
            other = real_fork()
            if other == 0:
                time.sleep(30)
                os._exit(0)
            others.append(other)
        return pid
    monkeypatch.setattr(os, "fork", and_another)
    return others


@pytest.mark.parametrize("job", ["result", "death"])
def test_a_job_does_not_wait_for_a_child_that_another_thread_forked_meanwhile(one_thread, monkeypatch, job):
    """A child forked by another thread while a job's pipe is open here holds a copy of its end until
    that child ends: a result is read by its length, and a child's death is seen as it happens,
    not at the pipe's end."""
    others = _with_another_fork(monkeypatch)
    try:
        t0 = time.monotonic()
        with runtime.beside(True) as pool:
            if job == "result":
                assert pool.submit(lambda: 7).result(timeout=60) == 7
            else:
                died = pool.submit(lambda: os.kill(os.getpid(), signal.SIGKILL))
                with pytest.raises(forked.ChildDied, match="signal 9"):
                    died.result(timeout=60)
        assert time.monotonic() - t0 < 20 and others and alive(others[0])
    finally:
        for pid in others:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def test_work_goes_beside_only_where_the_process_may_use_two_cores(monkeypatch, one_thread):
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




def test_a_job_beside_runs_here_when_no_child_can_be_forked(monkeypatch, one_thread):
    """Where fork fails (no memory or process left for a child), the job is computed in this thread."""
    def no_fork():
        raise OSError(12, "Cannot allocate memory")
    monkeypatch.setattr(os, "fork", no_fork)
    mask = _mask()
    with runtime.beside(True) as pool:
        here = pool.submit(lambda: (os.getpid(), _mask()))
        failing = pool.submit(lambda: 1 / 0)
    assert here.result() == (os.getpid(), mask) and _mask() == mask  # computed with the signals unblocked
    with pytest.raises(ZeroDivisionError):
        failing.result()


def test_what_a_job_beside_writes_reaches_this_process_s_file_descriptors(capfd, one_thread):
    import sys

    def talk():
        print("from the child")
        print("to stderr in the child", file=sys.stderr)
        return 1
    with runtime.beside(True) as pool:
        assert pool.submit(talk).result() == 1
    out, err = capfd.readouterr()
    assert "from the child" in out and "to stderr in the child" in err


def test_a_job_s_child_dies_with_a_process_that_is_killed(tmp_path):
    """A run killed outright (SIGKILL: no handler runs) leaves no child computing behind."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import os, time\nfrom sysa_core import runtime\n"
            "with runtime.limited(1), runtime.beside(True) as pool:\n"
            "    pool.submit(time.sleep, 60)\n    print(pool.pids[0], flush=True)\n    time.sleep(60)\n")
    repo = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))}
    out = tmp_path / "pid"
    with open(out, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=fh, env=env)
    try:
        wait_for(lambda: out.read_text().strip() or proc.poll() is not None, 120, "the child's pid")
        child = int(out.read_text())
        assert alive(child)
        proc.kill()
        proc.wait(30)
        wait_for(lambda: not alive(child), 30, "the child to die with its parent")
    finally:
        proc.kill()
        proc.wait(30)
