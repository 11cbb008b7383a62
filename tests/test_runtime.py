"""sysa_core.runtime: the training device and the thread limits."""
from __future__ import annotations

import os
import threading
import time

import pytest
import torch

from sysa_core import runtime
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


def test_beside_runs_the_jobs_in_order_in_another_thread_and_waits_for_them():
    order = []
    with runtime.beside(True) as pool:
        first = pool.submit(lambda: order.append(threading.current_thread().name) or 1)
        second = pool.submit(lambda: first.result() + 1)
    assert first.done() and second.result() == 2 and order == ["sysa-beside"]
    with runtime.beside(on=False) as pool:
        assert pool.submit(threading.current_thread).result() is threading.current_thread()
    with runtime.beside(True) as pool:
        failing = pool.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        failing.result()


def test_beside_leaves_its_job_behind_when_the_block_ends_by_an_exception():
    """A signal's exception (or an error) in the block does not wait for the job beside it: the
    job still running is abandoned (a daemon thread) and the queued ones are cancelled."""
    release = threading.Event()
    with pytest.raises(KeyboardInterrupt):
        with runtime.beside(True) as pool:
            running = pool.submit(release.wait, 60)
            queued = pool.submit(lambda: "started")
            while not running.running():
                time.sleep(0.01)
            raise KeyboardInterrupt
    assert running.running() and queued.cancelled()
    release.set()
    assert running.result(timeout=30) is True


def test_work_goes_beside_only_where_the_process_may_use_two_cores(monkeypatch):
    """`sysa run` gives each notebook lane's kernel OMP_NUM_THREADS = its share of the cores: with
    one core the work stays in this thread (two threads on one core only slow each other)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert runtime.cores_for_this_process() == 1
    with runtime.beside() as pool:
        assert pool.submit(threading.current_thread).result() is threading.current_thread()
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert runtime.cores_for_this_process() == len(os.sched_getaffinity(0))
    if runtime.cores_for_this_process() >= 2:
        with runtime.beside() as pool:
            assert pool.submit(threading.current_thread).result() is not threading.current_thread()


def test_a_job_not_started_beside_is_computed_in_the_waiting_thread_and_a_started_one_is_waited_for():
    gate, started = threading.Event(), threading.Event()

    def block():
        started.set()
        gate.wait(10)
        return "first"

    with runtime.beside(True) as pool:
        first = pool.submit(block)
        queued = pool.submit(lambda: ("beside", threading.current_thread().name))
        started.wait(10)
        got = runtime.result_or_here(queued, lambda: ("here", threading.current_thread().name))
        assert got == ("here", threading.current_thread().name) and queued.cancelled()
        gate.set()
        assert runtime.result_or_here(first, lambda: "again") == "first"
    with runtime.beside(False) as pool:  # in this thread at once: already done, never computed twice
        calls = []
        job = pool.submit(lambda: calls.append(1) or "done")
        assert runtime.result_or_here(job, lambda: "twice") == "done" and calls == [1]
