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
from contextlib import contextmanager
from pathlib import Path

import torch
from threadpoolctl import threadpool_info, threadpool_limits

from . import forked
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


def _one_thread() -> bool:
    """Whether this thread is capped at one thread in torch and in every BLAS/OpenMP pool: only then
    may a forked child compute (a child that starts a pool the parent has used may wait forever)."""
    return torch.get_num_threads() == 1 and all(p.get("num_threads") == 1 for p in threadpool_info())


def cores_for_this_process() -> int:
    """The cores this process may use: those it may run on (its CPU affinity), at most
    OMP_NUM_THREADS when that is set (as `sysa run` sets it for each notebook lane's kernel)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    return min(cores, int(env)) if env.isdigit() and int(env) > 0 else cores


@contextmanager
def beside(on: bool | None = None):
    """An executor for work beside this thread's: each job runs at once in a child process forked
    from this thread (forked.Forked: under this thread's thread caps; the child sees this process's
    memory as it is at the submit, so a job may use whatever this thread computed before it), or,
    with on=False, where fork is not available (forked.available) or where this thread is not
    capped at one thread (runtime.limited(1)), in this thread when it is submitted
    (forked.InThisThread). on=None: beside when this process may use two cores or more
    (cores_for_this_process), since two processes on one core only slow each other. A job is the
    computation one thread would do either way, so its numbers are the same bits. Leaving the block
    waits for the jobs; leaving it by an exception (an error, Ctrl-C, SIGTERM) kills the children
    still computing."""
    if on is None:
        on = cores_for_this_process() >= 2
    if not on or not forked.available() or not _one_thread():
        yield forked.InThisThread()
        return
    pool = forked.Forked()
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


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


def _cpuinfo(field: str, default: str) -> str:
    """The first value of `field` in /proc/cpuinfo, or default where there is none."""
    try:
        with open("/proc/cpuinfo") as fh:
            return next((ln.split(":", 1)[1].strip() for ln in fh if ln.split(":", 1)[0].strip() == field), default)
    except OSError:
        return default


def machine() -> dict:
    """The machine a run ran on: host name, CPU model (as lscpu names it), cores."""
    return {"host": platform.node(), "cpu": _cpuinfo("model name", platform.processor() or platform.machine()),
            "cores": os.cpu_count()}


def numerics() -> dict:
    """What picks the code paths of the matrix libraries, and so the last bits of a result: the CPU's
    vendor as it names itself (cpu_vendor: "GenuineIntel", "AuthenticAMD"; else the architecture),
    the instruction set torch's kernels use (torch_cpu_capability: "AVX2", "AVX512", ...) and the
    core type numpy's OpenBLAS chose (openblas_core: "Haswell", "Zen", "SkylakeX", ...; None without
    OpenBLAS). Results agree to the bit only between machines where these agree."""
    core = next((i.get("architecture") for i in threadpool_info() if i.get("internal_api") == "openblas"), None)
    return {"cpu_vendor": _cpuinfo("vendor_id", platform.machine()),
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(), "openblas_core": core}


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