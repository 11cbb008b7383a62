"""Jobs in forked child processes: work beside the calling thread that does not share its GIL.

The analyses' work beside the rest is a long run of small matrix products driven from Python; in
a second thread it waits for the interpreter lock the first thread holds between its own small
products, so two threads do not get much more done than one. A child made by fork starts with
the parent's memory as it is when the job is submitted (shared copy-on-write, nothing sent),
computes the job under the forking thread's thread caps, and sends back only the pickled result.

A job is the same computation either way, so its result is the same bits. Only on Linux, and only
under a cap of one thread (runtime.beside checks it): a child that starts a thread pool the
parent has used (OpenMP's) may wait forever for threads it does not have. Elsewhere runtime.beside
runs the job in the calling thread.
"""
from __future__ import annotations

import ctypes
import os
import pickle
import select
import signal
import struct
import sys
import threading
import traceback
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field

from .errors import UserError

_PR_SET_PDEATHSIG = 1
_HEADER = struct.Struct("<Q")  # the result's length in bytes, before the result
_STOP = {signal.SIGINT, signal.SIGTERM}


def _prctl():
    """libc's prctl, resolved here in the parent (a child does not load libraries), or None."""
    try:
        return ctypes.CDLL(None).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl() if sys.platform.startswith("linux") else None


def available() -> bool:
    """Whether jobs can run in forked children here (Linux)."""
    return sys.platform.startswith("linux") and hasattr(os, "fork")


class ChildDied(RuntimeError):
    """A child ended without sending its job's result (killed by a signal, out of memory), or its
    result could not be read back."""


@dataclass(eq=False)
class _Child:
    """A job's child process: its future, pid and reader thread; `reaped` (under `lock`) once its
    pid is no longer ours to signal; `stopped` once shutdown killed it."""

    job: Future
    pid: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    reaped: bool = False
    stopped: bool = False
    reader: threading.Thread | None = None


class InThisThread(Executor):
    """An executor that runs each job when it is submitted, in the submitting thread."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        job: Future = Future()
        try:
            job.set_result(fn(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - raised where the result is asked for, as a pool's job is
            job.set_exception(exc)
        return job


class Forked(Executor):
    """Runs each submitted job at once in a child process of its own, forked from the calling
    thread, with that thread's thread caps (torch's and the BLAS pools', as runtime.limited set
    them). Leaving by shutdown(wait=True) waits for every child; shutdown(cancel_futures=True)
    kills the children still computing and reaps them (a child also dies with the thread that
    forked it, so none outlives an interrupted parent). Where no pipe or child can be made (no
    memory, no process left), the job runs in the calling thread when it is submitted."""

    def __init__(self):
        self._children: list[_Child] = []

    @property
    def pids(self) -> list[int]:
        """The pids of the children forked for the jobs, in the order of their submission."""
        return [c.pid for c in self._children]

    def submit(self, fn, /, *args, **kwargs) -> Future:
        parent = os.getpid()
        try:
            r, w = os.pipe()
        except OSError:
            return InThisThread().submit(fn, *args, **kwargs)
        pid, child, started = -1, None, False
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP)  # no handler runs in the child's copy of this code
        try:
            try:
                pid = os.fork()
                if pid == 0:
                    _child(parent, old_mask, r, w, fn, args, kwargs)  # never returns
            finally:
                if pid == 0:
                    os._exit(1)
            job: Future = Future()
            job.set_running_or_notify_cancel()
            child = _Child(job, pid)
            self._children.append(child)
            started = True
        except OSError:  # no memory or process left for a child
            pass
        except BaseException:  # an interrupt (or an error) before the child is set up: it does not outlive this
            if pid > 0:
                _abandon(child or _Child(Future(), pid), r)
                r = -1
            raise
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            if not started:
                for fd in (r, w):
                    if fd >= 0:
                        os.close(fd)
        if not started:
            return InThisThread().submit(fn, *args, **kwargs)
        os.close(w)
        try:
            child.reader = threading.Thread(target=_collect, args=(child, r), name=f"sysa-forked-{pid}", daemon=True)
            child.reader.start()
        except BaseException:
            if child.reader is None or child.reader.ident is None:  # no reader runs: collect nothing, reap here
                child.reader = None
                _abandon(child, r)
            else:  # the reader runs: it closes r and reaps
                _kill(child)
            raise
        return job

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if cancel_futures:
            for child in self._children:
                if not child.job.done():
                    _kill(child)
        if wait or cancel_futures:
            for child in self._children:
                if child.reader is not None:
                    child.reader.join()


def _abandon(child: _Child, r: int) -> None:
    """Kill a child whose result nobody will read, close its pipe's end r and reap it."""
    _kill(child)
    os.close(r)
    _reap(child)


def _kill(child: _Child) -> None:
    """SIGKILL the child unless it has been reaped (its pid may then be another process's)."""
    with child.lock:
        if not child.reaped:
            child.stopped = True
            try:
                os.kill(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _reap(child: _Child) -> int | None:
    """Wait for the child to end and reap it: its wait status, None when another waiter reaped it.
    It is waited for first without being reaped, so that its pid stays its own until `reaped` is
    set under the lock that _kill takes."""
    try:
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)
    except ChildProcessError:
        pass
    with child.lock:
        try:
            _, status = os.waitpid(child.pid, 0)  # it has ended: at once
        except ChildProcessError:
            status = None
        child.reaped = True
    return status


def _child(parent: int, mask, r: int, w: int, fn, args, kwargs) -> None:
    """Compute fn(*args, **kwargs), write its length and (ok, result or exception) pickled to w,
    and exit without running the parent's exit handlers or flushing its buffers."""
    code = 0
    try:
        os.close(r)
        if _PRCTL is not None:  # die with the thread that forked this child, even when it is killed
            _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the line above
            os._exit(1)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # an interrupted parent kills its children
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        _own_streams()
        try:
            out = pickle.dumps((True, fn(*args, **kwargs)), protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException as exc:  # noqa: BLE001 - every job ends with a result or an exception
            out = _pickled_exception(exc)
        view = memoryview(_HEADER.pack(len(out)) + out)
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


def _pickled_exception(exc: BaseException) -> bytes:
    """(False, exc) pickled, exc with the child's traceback as a note (a user's mistake, UserError,
    stays one line); an exception that cannot be pickled is sent as a RuntimeError with its type,
    text and traceback."""
    text = "".join(traceback.format_exception(exc)).rstrip() + "\n(in the forked child above)"
    if not isinstance(exc, UserError):
        exc.add_note(text)
    try:
        out = pickle.dumps((False, exc), protocol=pickle.HIGHEST_PROTOCOL)
        pickle.loads(out)  # an exception class that cannot be rebuilt fails here, not in the parent
        return out
    except Exception:  # noqa: BLE001
        return pickle.dumps((False, RuntimeError(f"{type(exc).__name__}: {exc} (its exception could not be sent "
                                                 f"back from the forked child)\n{text}")))


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


def _receive(pid: int, r: int) -> bytes:
    """What the child writes to r: its result's length, then the result (complete or not). It is
    read until it is complete, the pipe ends, or the child has ended and the pipe holds nothing
    more: a child that another thread forked meanwhile may hold a copy of the pipe's end for as
    long as it lives, so the pipe's end alone would not tell."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # without pidfds (Linux before 5.3) the pipe's end decides
        pidfd = None
    buf = bytearray()
    os.set_blocking(r, False)
    try:
        while not _complete(buf):
            ready, _, _ = select.select([r] if pidfd is None else [r, pidfd], [], [])
            ended = pidfd in ready
            while True:  # drain what is there
                try:
                    chunk = os.read(r, 1 << 20)
                except BlockingIOError:
                    break
                if not chunk:
                    return bytes(buf)
                buf += chunk
            if ended:
                return bytes(buf)
        return bytes(buf)
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _complete(buf: bytes | bytearray) -> bool:
    return len(buf) >= _HEADER.size and len(buf) >= _HEADER.size + _HEADER.unpack_from(buf)[0]


def _collect(child: _Child, r: int) -> None:
    """Read the child's result from r, reap the child, and settle the job, whatever happens."""
    try:
        try:
            data = _receive(child.pid, r)
        finally:
            os.close(r)
        status = _reap(child)
        if not _complete(data):
            child.job.set_exception(ChildDied(f"the job's child process {child.pid} {_how(child, status)} "
                                              "before sending its result"))
            return
        try:
            ok, value = pickle.loads(data[_HEADER.size:])
        except Exception as exc:  # noqa: BLE001 - the result came but cannot be rebuilt here
            child.job.set_exception(ChildDied(f"the result of the job's child process {child.pid} could not be "
                                              f"read back: {type(exc).__name__}: {exc}"))
            return
        (child.job.set_result if ok else child.job.set_exception)(value)
    except BaseException as exc:  # noqa: BLE001 - a job is always settled, its child always reaped
        if not child.job.done():
            child.job.set_exception(ChildDied(f"the result of the job's child process {child.pid} could not be "
                                              f"collected: {type(exc).__name__}: {exc}"))
        if not child.reaped:
            _kill(child)
            _reap(child)


def _how(child: _Child, status: int | None) -> str:
    """How the child ended, in words."""
    if status is None:
        return "ended (its status was collected elsewhere)"
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if child.stopped and sig == signal.SIGKILL:
            return "was stopped when the work beside it was abandoned"
        try:
            name = signal.Signals(sig).name
        except ValueError:  # a real-time signal, say
            name = signal.strsignal(sig) or "unnamed"
        kill = "; the kernel's out-of-memory killer, for one, sends it" if sig == signal.SIGKILL else ""
        return f"was killed by signal {sig} ({name}{kill})"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"
