"""Thread limits for the analyses' small dense products.

The analyses multiply (at most a few dozen x N) blocks by N x N matrices (N = 500) step after
step. At that size one thread is as fast as two, and on a machine busy with other work a
thread pool that spins waiting for a second core makes every product tens of times slower
(measured on the 2-core development machine under load: 2.8 ms instead of 65 us per step;
OpenBLAS eigen/covariance 5.5 s instead of 0.16 s). `limited` caps torch's intra-op threads
and the BLAS/OpenMP pools of the loaded libraries (threadpoolctl) for the duration of a block
and restores them afterwards.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch


@contextmanager
def limited(n: int | None = 1):
    """Run the block with at most n threads in torch and the BLAS libraries (None: no change)."""
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    torch_before = torch.get_num_threads()
    torch.set_num_threads(min(n, torch_before))
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        torch.set_num_threads(torch_before)
