"""Jobs in forked child processes: work beside the calling thread that does not share its GIL.

The analyses' work beside the rest is a long run of small matrix products driven from Python; in
a second thread it waits for the interpreter lock the first thread holds between its own small
products, so two threads do not get much more done than one. A child made by fork starts with
the parent's memory as it is when the job is submitted (nothing is copied or sent), computes the
job under the same thread caps (the forking thread's), and sends back only the pickled result.

A job is the same computation either way, so its result is the same bits. Only on Linux (where
fork is safe for torch's CPU code); elsewhere `available()` is False and runtime.beside runs the
job in the calling thread.
"""
from __future__ import annotations

import ctypes
import os
import pickle
import signal
import sys
import threading
import traceback
import warnings
from concurrent.futures import Executor, Future

from .errors import UserError

_PR_SET_PDEATHSIG = 1


def available() -> bool:
    """Whether jobs can run in forked children here (Linux)."""
    return sys.platform.startswith("linux") and hasattr(os, "fork")


class ChildDied(RuntimeError):
    """A child ended without sending its job's result (killed by a signal, out of memory)."""


class Forked(Executor):
    """Runs each submitted job at once in a child process of its own, forked from the calling
    thread, with that thread's thread caps (torch's and the BLAS pools', as runtime.limited set
    them). Leaving by shutdown(wait=True) waits for every child; shutdown(cancel_futures=True)
    kills the children still computing and reaps them (a child also dies with the thread that
    forked it, so no child outlives an interrupted parent)."""

    def __init__(self):
        self._jobs: list[tuple[Future, int, threading.Thread]] = []

    def submit(self, fn, /, *args, **kwargs) -> Future:
        job: Future = Future()
        job.set_running_or_notify_cancel()
        parent = os.getpid()
        r, w = os.pipe()
        try:
            with warnings.catch_warnings():  # the child only computes and writes to its pipe
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
        except OSError:  # no memory or process left for a child: the job runs here, now
            os.close(r), os.close(w)
            try:
                job.set_result(fn(*args, **kwargs))
            except Exception as exc:  # noqa: BLE001 - raised where the result is asked for
                job.set_exception(exc)
            return job
        if pid == 0:  # the child: never returns
            os.close(r)
            _child(parent, w, fn, args, kwargs)
        os.close(w)
        reader = threading.Thread(target=_collect, args=(job, pid, r), name=f"sysa-forked-{pid}", daemon=True)
        reader.start()
        self._jobs.append((job, pid, reader))
        return job

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if cancel_futures:
            for job, pid, _ in self._jobs:
                if not job.done():
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        if wait or cancel_futures:
            for _, _, reader in self._jobs:
                reader.join()


def _child(parent: int, w: int, fn, args, kwargs) -> None:
    """Compute fn(*args, **kwargs), write (ok, result or exception) pickled to w, and exit without
    running the parent's exit handlers or flushing its buffers."""
    code = 0
    try:
        try:  # die with the thread that forked this child, even when it is killed
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass
        if os.getppid() != parent:  # the parent died before the line above
            os._exit(1)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _own_streams()
        try:
            out = pickle.dumps((True, fn(*args, **kwargs)), protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException as exc:  # noqa: BLE001 - every job ends with a result or an exception
            if not isinstance(exc, UserError):  # a user's mistake stays one line; anything else keeps its traceback
                exc.add_note("".join(traceback.format_exception(exc)).rstrip() + "\n(in the forked child above)")
            try:
                out = pickle.dumps((False, exc), protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:  # noqa: BLE001 - an exception that cannot be pickled is sent as its text
                out = pickle.dumps((False, RuntimeError(f"{type(exc).__name__}: {exc}")))
        view = memoryview(out)
        while view:
            view = view[os.write(w, view):]
    except BaseException:  # noqa: BLE001 - the parent sees the missing result as ChildDied
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - exiting either way
                pass
        os._exit(code)


def _own_streams() -> None:
    """Point sys.stdout and sys.stderr at the process's file descriptors 1 and 2, line-buffered,
    instead of the parent's stream objects: a notebook kernel's streams hand their text to a thread
    that the child does not have, under locks another thread may have held at the fork. A kernel
    that captures its descriptors still shows what the child writes."""
    for name, fd in (("stdout", 1), ("stderr", 2)):
        try:
            stream = open(os.dup(fd), "w", buffering=1, errors="backslashreplace")
        except OSError:
            stream = open(os.devnull, "w")
        setattr(sys, name, stream)


def _collect(job: Future, pid: int, r: int) -> None:
    """Read the child's result from r, reap the child, and settle the job."""
    chunks = []
    with os.fdopen(r, "rb") as fh:
        while chunk := fh.read(1 << 20):
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    data = b"".join(chunks)
    try:
        ok, value = pickle.loads(data)
    except Exception:  # noqa: BLE001 - nothing (or a part) came: the child died
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            how = f"was killed by signal {sig} ({signal.Signals(sig).name}"
            how += ", which the kernel's out-of-memory killer sends)" if sig == signal.SIGKILL else ")"
        else:
            how = f"exited with status {os.waitstatus_to_exitcode(status)}"
        job.set_exception(ChildDied(f"the job's child process {pid} {how} before sending its result"))
        return
    if ok:
        job.set_result(value)
    else:
        job.set_exception(value)
