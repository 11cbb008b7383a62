"""Where and how computations run: the device of the training steps and the thread limits of
the analyses.

The analyses multiply small blocks (a few dozen rows x N) by N x N matrices step after step.
At that size one thread is as fast as several, and on a machine busy with other work a thread
pool that waits for a descheduled thread at every product makes each product many times slower.
`limited` caps torch's intra-op threads and the BLAS/OpenMP pools of the loaded libraries
(threadpoolctl) for the duration of a block and restores them afterwards; it also makes a
result independent of the machine's core count (a BLAS product may split its sums differently
with another thread count).
"""
from __future__ import annotations

import os
import platform
import resource
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import torch
from threadpoolctl import threadpool_limits

from .errors import UserError


@contextmanager
def limited(n: int | None = 1):
    """Run the block with at most n threads in torch and the BLAS libraries (None: no change)."""
    if n is None:
        yield
        return
    torch_before = torch.get_num_threads()
    torch.set_num_threads(min(n, torch_before))
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        torch.set_num_threads(torch_before)


def cap_this_thread(n: int) -> None:
    """Cap the calling thread as `limited(n)` caps the thread that enters it, for the rest of its
    life: a pool's worker thread starts from the process's default thread count (OpenMP's count is
    per thread), not from the caps of the thread that started it."""
    torch.set_num_threads(n)
    threadpool_limits(limits=n)


class _InThisThread(Executor):
    """An executor that runs each job when it is submitted, in the submitting thread."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        job = Future()
        try:
            job.set_result(fn(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - raised where the result is asked for, as a pool's job is
            job.set_exception(exc)
        return job


def beside(on: bool = True) -> Executor:
    """An executor for work that runs beside this thread's: one worker thread capped as this thread
    is (cap_this_thread), or with on=False one that runs each job in this thread when it is
    submitted. A job is the computation one thread would do either way, so its numbers are the
    same bits."""
    if not on:
        return _InThisThread()
    return ThreadPoolExecutor(1, thread_name_prefix="sysa-beside", initializer=cap_this_thread,
                              initargs=(torch.get_num_threads(),))


def resolve_device(name: str = "auto") -> torch.device:
    """The device training steps run on: `auto` (the environment variable SYSA_DEVICE when set,
    else CUDA when torch sees a GPU, else the CPU), `cpu`, `cuda` or `cuda:N`. UserError when the
    name is unknown or no such GPU is there."""
    if name == "auto":
        env = os.environ.get("SYSA_DEVICE", "").strip()
        if env and env != "auto":
            try:
                return resolve_device(env)
            except UserError as exc:
                raise UserError(f"SYSA_DEVICE={env}: {str(exc).split(': ', 1)[1]}") from None
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        if not torch.cuda.is_available():
            built = "with" if torch.version.cuda else "without"
            raise UserError(f"--device {name}: no CUDA GPU is available (this torch {torch.__version__} was built "
                            f"{built} CUDA); use --device cpu")
        if ":" in name and int(name[5:]) >= torch.cuda.device_count():
            raise UserError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
        return torch.device(name)
    raise UserError(f"--device: unknown device {name!r} (auto, cpu, cuda or cuda:N)")


def machine() -> dict:
    """The machine a run ran on: host name, CPU model (as lscpu names it), cores."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    except OSError:
        pass
    return {"host": platform.node(), "cpu": cpu, "cores": os.cpu_count()}


def available_memory() -> int:
    """Bytes of memory a new allocation can get now: the machine's MemAvailable (all memory where
    that is not known), less where this process's address-space limit (ulimit -v) or its cgroup's
    memory limit leaves less."""
    avail = None
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
    except OSError:
        pass
    if avail is None:
        avail = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limit, _ = resource.getrlimit(resource.RLIMIT_AS)
    if limit != resource.RLIM_INFINITY:
        avail = min(avail, max(0, limit - _status_kb("VmSize") * 1024))
    try:
        cg_max = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if cg_max != "max":
            used = int(Path("/sys/fs/cgroup/memory.current").read_text())
            avail = min(avail, max(0, int(cg_max) - used))
    except (OSError, ValueError):
        pass
    return avail


def _status_kb(key: str) -> int:
    """A field of /proc/self/status in kB (0 where it cannot be read)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0