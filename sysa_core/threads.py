"""Thread limits for the analyses' small dense products.

The analyses multiply (at most a few dozen x N) blocks by N x N matrices (N = 500) step after
step. At that size one thread is as fast as two, and on a machine busy with other work a
thread pool that spins waiting for a second core makes every product tens of times slower
(measured on the 2-core development machine under load: 2.8 ms instead of 65 us per step;
OpenBLAS eigen/covariance 5.5 s instead of 0.16 s). `limited` caps torch's intra-op threads
and the OpenBLAS thread pool of numpy (found in the loaded libraries, as threadpoolctl does)
for the duration of a block and restores both afterwards.
"""
from __future__ import annotations

import ctypes
from contextlib import contextmanager

import torch

# (get, set) symbol names of OpenBLAS builds: numpy's bundled scipy-openblas, 64-bit and plain
_SYMBOLS = (("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
            ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
            ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
            ("openblas_get_num_threads", "openblas_set_num_threads"))


def _openblas_controls() -> list:
    """(get, set) function pairs of every OpenBLAS library loaded in this process (Linux)."""
    import numpy  # noqa: F401  (loads numpy's OpenBLAS)

    try:
        with open("/proc/self/maps") as fh:
            paths = sorted({ln.split()[-1] for ln in fh if "openblas" in ln.lower() and "/" in ln})
    except OSError:
        return []
    out = []
    for p in paths:
        try:
            lib = ctypes.CDLL(p)
        except OSError:
            continue
        for get_name, set_name in _SYMBOLS:
            get_f, set_f = getattr(lib, get_name, None), getattr(lib, set_name, None)
            if get_f is not None and set_f is not None:
                get_f.restype = ctypes.c_int
                set_f.argtypes = [ctypes.c_int]
                out.append((get_f, set_f))
                break
    return out


@contextmanager
def limited(n: int | None = 1):
    """Run the block with at most n threads in torch and numpy's OpenBLAS (None: no change)."""
    if n is None:
        yield
        return
    torch_before = torch.get_num_threads()
    blas = []
    try:
        for get_f, set_f in _openblas_controls():
            blas.append((set_f, get_f()))
            set_f(min(n, blas[-1][1]))
    except Exception:  # no control over this BLAS: leave it as it is
        pass
    torch.set_num_threads(min(n, torch_before))
    try:
        yield
    finally:
        torch.set_num_threads(torch_before)
        for set_f, before in blas:
            set_f(before)
