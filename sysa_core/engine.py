"""Loss and exact gradients for one training step: the hand-written adjoint (default) and the
autograd reference it is tested against.

Several models ("seeds") can be stepped as one computation: their trials are stacked as rows
of one (rows x N) state, so one product with G per time step serves all of them (when they
share G; otherwise one product per seed). Work that provably changes nothing is skipped:

* with h0 = 0 and no input yet the state stays exactly 0 (0 + alpha(-0 + g tanh(0) G' + 0)),
  so simulation starts at the earliest onset of the batch; the skipped steps have y = 0 and
  their (evaluated) loss terms are added in closed form, so the loss's denominators
  (README, Definitions 3) are unchanged;
* the same holds per trial: rows are sorted by onset and a row joins the per-step products at
  its own first input (before it, its h and r are exactly 0, and in the backward pass its
  adjoint is not needed: no input, no rate);
* catch trials with h0 = 0 have y = 0 at every step: no simulation, no gradient.

Per step the forward pass costs one product (rows x N)(N x N) and the backward pass one more;
everything else (tanh, the readout, the loss, dL/dw) is a few vectorised operations per step or
per cache-resident chunk of steps. On the CPU the trials of a batch, being independent, can be
split over threads ("row streams", `CPU_STREAMS`). The roofline of `python -m sysa_core.bench`
is the time of those two products alone.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from .model import reference_forward
from .task import MARKER, Trials, training_loss


@dataclass
class StepResult:
    """Per-seed losses (k,) and gradients dI (k, N, 1), dw (k, N, 1)."""

    loss: torch.Tensor
    dI: torch.Tensor
    dw: torch.Tensor

    def cpu(self) -> "StepResult":
        return StepResult(self.loss.cpu(), self.dI.cpu(), self.dw.cpu())


def _loss_weights(target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """mask (B, T, 1) and 1 / (B * sum(mask)) per trial (B,)."""
    mask = (target != MARKER).to(target.dtype)
    denom = mask.sum(dim=(1, 2)) * target.shape[0]
    return mask, 1.0 / denom


def _tanh_into(dev: torch.device):
    """tanh(src) -> out. On the CPU NumPy's SIMD tanh (within 1 ulp, like torch's float64 one),
    several times faster than torch's correctly rounded float32 tanh on the small (rows x N)
    blocks of the recurrence; elsewhere torch.tanh."""
    if dev.type == "cpu":
        def f(src: torch.Tensor, out: torch.Tensor, src_np, out_np) -> None:
            np.tanh(src_np, out=out_np)
        return f

    def g(src: torch.Tensor, out: torch.Tensor, src_np, out_np) -> None:
        torch.tanh(src, out=out)
    return g


def _np(t: torch.Tensor):
    return t.numpy() if t.device.type == "cpu" else None


_scratch_buffers: dict = {}


def _scratch(n: int, dtype: torch.dtype, dev: torch.device) -> torch.Tensor:
    """n elements of per-thread scratch memory kept between calls on the CPU. Large allocations
    are returned to the OS when freed, so a fresh rates buffer would pay a page fault per page at
    first touch in every step; reusing it avoids them. clear_scratch() releases it."""
    if dev.type != "cpu":
        return torch.empty(n, dtype=dtype, device=dev)
    key = (threading.get_ident(), dtype)
    buf = _scratch_buffers.get(key)
    if buf is None or buf.numel() < n:
        _scratch_buffers.pop(key, None)
        buf = _scratch_buffers[key] = torch.empty(n, dtype=dtype)
    return buf[:n]


def clear_scratch() -> None:
    """Release the CPU scratch memory that adjoint_step keeps between calls."""
    _scratch_buffers.clear()


def row_schedule(starts: torch.Tensor, blocks, t0: int, T: int) -> list[list[tuple[int, int]]]:
    """Per active step t0..T-1 (rows sorted by start within each block), the row ranges
    [lo, end) of each block whose rows have started (start <= t); empty ranges left out."""
    steps = torch.arange(t0, T)
    per_block = [lo + torch.searchsorted(starts[lo:hi].contiguous(), steps, right=True)
                 for lo, hi in blocks]
    ends = torch.stack(per_block, 1).tolist() if per_block else [[] for _ in range(T - t0)]
    return [[(lo, e) for (lo, _), e in zip(blocks, row) if e > lo] for row in ends]


#: CPU row streams per step: None = torch.get_num_threads(). The trials of a batch are
#: independent, so their rows are split into interleaved groups, each simulated forward and
#: backward by its own thread with one intra-op thread. On an idle machine this is as fast as
#: torch's intra-op pool; on a busy one it is much faster, because the pool waits for a
#: descheduled thread at every one of the thousands of small products of a step (the benchmark
#: measures both). 1 = one stream on torch's intra-op threads.
CPU_STREAMS: int | None = None
MIN_ROWS_PER_STREAM = 8
_pool = None
_pool_size = 0


def _executor(n: int):
    global _pool, _pool_size
    if _pool is None or _pool_size < n:
        _pool, _pool_size = ThreadPoolExecutor(max_workers=n, thread_name_prefix="sysa-adjoint"), n
    return _pool


def run_streams(jobs: list) -> list:
    """Call each of `jobs` (callables without arguments) in its own row stream: the first in this
    thread, the others on the engine's thread pool, each with one intra-op thread; returns their
    results in order. One job runs here as it is, on torch's intra-op threads."""
    if len(jobs) == 1:
        return [jobs[0]()]
    prev = torch.get_num_threads()

    def one(fn):
        torch.set_num_threads(1)
        return fn()
    try:
        torch.set_num_threads(1)
        futures = [_executor(len(jobs) - 1).submit(one, fn) for fn in jobs[1:]]
        return [one(jobs[0])] + [f.result() for f in futures]
    finally:
        torch.set_num_threads(prev)


def n_streams(R: int, dev: torch.device) -> int:
    """How many row streams adjoint_step uses for R simulated rows on `dev`."""
    if dev.type != "cpu":
        return 1
    P = CPU_STREAMS if CPU_STREAMS is not None else torch.get_num_threads()
    return max(1, min(P, R // MIN_ROWS_PER_STREAM))


def row_groups(blocks, P: int) -> list[torch.Tensor]:
    """Row indices of each of P streams: every P-th row of each block (rows are sorted by first
    input within blocks, so each group stays sorted and the work is balanced)."""
    if P == 1:
        return [torch.arange(blocks[-1][1])]
    return [torch.cat([torch.arange(min(lo + p, hi), hi, P) for lo, hi in blocks]) for p in range(P)]


def seed_blocks(sid: list[int], shared_G: bool) -> list[tuple[int, int]]:
    """Row ranges sharing one G: all rows when G is shared, else the runs of one seed."""
    R = len(sid)
    if shared_G:
        return [(0, R)]
    blocks, lo = [], 0
    for i in range(1, R + 1):
        if i == R or sid[i] != sid[lo]:
            blocks.append((lo, i))
            lo = i
    return blocks


@dataclass(frozen=True)
class _Rows:
    """What the forward and backward pass of a step needs, for all R simulated rows (trials), rows
    sorted by first input within each block of rows that share a G.

    Gs (1 or k, N, N): the recurrent weights; I, w (k, N, 1); h0 (k, N); x, target, mask (R, T, 1);
    coef (R,): 1 / (B * sum(mask)) of each row's trial; seed (R,): the model of each row (on the
    device); starts (R,): each row's first active step (on the CPU); t0: the first step simulated;
    alpha, g: the model's constants."""

    Gs: torch.Tensor
    I: torch.Tensor
    w: torch.Tensor
    h0: torch.Tensor
    x: torch.Tensor
    target: torch.Tensor
    mask: torch.Tensor
    coef: torch.Tensor
    seed: torch.Tensor
    starts: torch.Tensor
    t0: int
    alpha: float
    g: float


def _rows_fwd_bwd(rows: _Rows, sel: torch.Tensor, backward: bool = True):
    """Forward and backward pass of the rows `sel` (CPU indices into `rows`, sorted by first input
    within each block). Returns their loss terms (len(sel),), dL/dI per row (len(sel), N) and
    dL/dw (k, N); without `backward`, the loss terms alone, from a forward pass that keeps only
    the current step's rates (its readout formed at every step)."""
    Gs, I, w, h0, t0, alpha, g = rows.Gs, rows.I, rows.w, rows.h0, rows.t0, rows.alpha, rows.g
    k = I.shape[0]
    dtype, dev = I.dtype, I.device
    N = I.shape[1]
    sel_d = sel.to(dev)
    x, tgt, mask, coef, sidx = (rows.x[sel_d], rows.target[sel_d], rows.mask[sel_d], rows.coef[sel_d],
                                rows.seed[sel_d])
    starts = rows.starts[sel]  # on the CPU
    R, T = x.shape[0], x.shape[1]
    sid = sidx.tolist()
    blocks = seed_blocks(sid, Gs.shape[0] == 1)  # rows of one seed are contiguous
    bG = {lo: (0 if Gs.shape[0] == 1 else sid[lo]) for lo, _ in blocks}
    I_rows = I[sidx, :, 0]  # (R, N)
    w_rows = w[sidx, :, 0].contiguous()
    Ta = T - t0
    x_a = x[:, t0:, 0].T.contiguous()  # (Ta, R), active steps only
    has_input = (x_a != 0).any(dim=1).tolist()
    x_cols = [x_a[i].unsqueeze(1) if has_input[i] else None for i in range(Ta)]  # (R, 1) or None
    # per step, the row ranges whose state can be non-zero: the products skip the others
    # (their h, r stay exactly 0 in the forward pass; in the backward pass their adjoint is
    # never used, as they have neither input nor rate at those steps)
    sched = row_schedule(starts, blocks, t0, T)
    ag = alpha * g
    beta = 1.0 - alpha
    tanh_into = _tanh_into(dev)

    # --- forward ------------------------------------------------------------------------
    # h <- h + alpha (-h + g r G' + x_t I')  ==  (1 - alpha) h + alpha g (r G') + alpha x_t I',
    # the first two terms fused in one in-place addmm per step (per seed block when G differs).
    # Per-step views are made before the loop where possible: indexing a tensor costs microseconds.
    # Every `chunk` steps, while the chunk's rates are still in cache, the readout y = r w, the
    # loss terms, dL/dy (e) and dL/dw = sum r' e are formed, and the rates are overwritten by
    # 1 - r^2, all that the backward pass needs of them. Without the backward pass one rates
    # buffer serves every step (a step's product reads it before its tanh overwrites it) and the
    # readout is formed at every step.
    chunk = min(Ta, 64)
    GT = {lo: Gs[b].T for lo, b in bG.items()}
    h = h0[sidx].clone()
    h_np = _np(h)
    h_pref: dict[tuple[int, int], torch.Tensor] = {}
    r = torch.tanh(h)
    tgt_a = tgt[:, t0:, 0].T.contiguous()  # (Ta, R)
    mask_a = mask[:, t0:, 0].T.contiguous()
    if not backward:
        rates = torch.empty(R, N, dtype=dtype, device=dev)
        r_views, r_np = [rates] * Ta, [_np(rates)] * Ta
        y = torch.empty(Ta, R, dtype=dtype, device=dev)
    else:
        rates = _scratch(Ta * R * N, dtype, dev).view(Ta, R, N)  # r, then 1 - r^2 (every entry written)
        r_views = rates.unbind(0)
        r_np = _np(rates) if dev.type == "cpu" else [None] * Ta
        onehot_t = torch.nn.functional.one_hot(sidx, k).to(dtype).T.contiguous()[:, None, :]  # (k, 1, R)
        e = torch.empty(Ta, R, dtype=dtype, device=dev)  # dL/dy
        row_loss = torch.zeros(R, dtype=dtype, device=dev)
        dw = torch.zeros(k, N, dtype=dtype, device=dev)
        one = torch.ones((), dtype=dtype, device=dev)

    def close_chunk(c0: int, c1: int) -> None:
        c = rates[c0:c1]
        y = (c * w_rows).sum(-1)  # (n, R): each row's rates times its own seed's w
        diff = y - tgt_a[c0:c1]
        err = diff * mask_a[c0:c1]
        row_loss.add_((err * diff).sum(0))
        ec = e[c0:c1]
        torch.mul(err, coef, out=ec).mul_(2.0)
        # dL/dw of seed s = sum over its rows and steps of e r: one (k x nR)(nR x N) product, the
        # long dimension inside (as (N x nR)(nR x k) the same sums run several times slower)
        dw.addmm_((onehot_t * ec).reshape(k, -1), c.view(-1, N))
        torch.addcmul(one, c, c, value=-1.0, out=c)  # 1 - r^2

    c0 = 0
    for i in range(Ta):
        for lo, end in sched[i]:
            hv = h_pref.get((lo, end))
            if hv is None:
                hv = h_pref[(lo, end)] = h[lo:end]
            hv.addmm_(r[lo:end], GT[lo], beta=beta, alpha=ag)
        xc = x_cols[i]
        if xc is not None:
            h.addcmul_(xc, I_rows, value=alpha)
        r = r_views[i]
        tanh_into(h, r, h_np, r_np[i])  # rows not started: tanh(0) = 0
        if not backward:
            torch.sum(r * w_rows, -1, out=y[i])
        elif i + 1 - c0 == chunk:
            if i > c0:  # r (step i) is needed by the next product: keep the chunk's last step as r
                close_chunk(c0, i)
            c0 = i
    if not backward:
        diff = y.sub_(tgt_a)
        return diff.mul(mask_a).mul_(diff).sum(0).mul_(coef)
    close_chunk(c0, Ta)
    row_loss.mul_(coef)

    # --- backward through time: a = dL/dh_t --------------------------------------------
    # a_t = (1 - alpha) a_{t+1} + (1 - r_t^2) * (e_t w' + alpha g a_{t+1} G) (each row its own
    # seed's w). Per chunk of steps, v = e w' is formed in one vectorised operation; per step,
    # one product accumulates into v (rows that have started only: e = 0 elsewhere), and one
    # fused update forms a.
    agG = {lo: (ag * Gs[b]).contiguous() for lo, b in bG.items()}
    a = torch.zeros(R, N, dtype=dtype, device=dev)
    a_pref: dict[tuple[int, int], torch.Tensor] = {}
    dI_rows = torch.zeros(R, N, dtype=dtype, device=dev)
    v_buf = torch.empty(chunk, R, N, dtype=dtype, device=dev)
    v_views = v_buf.unbind(0)
    d_views = r_views
    beta_t = torch.full((), beta, dtype=dtype, device=dev)  # a 0-dim tensor: no scalar conversion per call
    for hi_t in range(Ta, 0, -chunk):
        lo_t = max(0, hi_t - chunk)
        n = hi_t - lo_t
        torch.mul(e[lo_t:hi_t, :, None], w_rows, out=v_buf[:n])  # e_t w'
        for j in range(n - 1, -1, -1):
            v = v_views[j]
            for lo, end in sched[lo_t + j]:
                av = a_pref.get((lo, end))
                if av is None:
                    av = a_pref[(lo, end)] = a[lo:end]
                if end - lo == R:
                    v.addmm_(av, agG[lo])
                else:
                    v[lo:end].addmm_(av, agG[lo])
            a.mul_(beta_t).addcmul_(v, d_views[lo_t + j])
            xc = x_cols[lo_t + j]
            if xc is not None:
                dI_rows.addcmul_(a, xc, value=alpha)
    return row_loss, dI_rows, dw


@torch.no_grad()
def _add_rows(dst: torch.Tensor, index: torch.Tensor, src: torch.Tensor) -> None:
    """dst[index[i]] += src[i] for every row i, the same bits on every call. On the CPU index_add_
    adds the rows in order; CUDA's adds them with atomics, in an order that changes from run to
    run, so there the rows are summed by a product with their one-hot seed matrix instead."""
    if dst.device.type == "cpu":
        dst.index_add_(0, index, src)
    else:
        dst.addmm_(torch.nn.functional.one_hot(index, dst.shape[0]).to(src.dtype).T, src)


def _prepare(G: torch.Tensor, I: torch.Tensor, w: torch.Tensor, h0: torch.Tensor, trials: list[Trials],
             alpha: float, g: float) -> tuple[torch.Tensor, _Rows | None, torch.Tensor | None, list]:
    """The rows a step simulates: (the loss of what is not simulated, per model (k,) in float64;
    the rows (None when nothing is simulated); each row's model (CPU); the row indices of each
    row stream)."""
    k, dev = I.shape[0], I.device
    shared_G = G.dim() == 2
    zero_h0 = [bool((h0[s] == 0).all()) for s in range(k)]

    # --- rows to simulate, their seeds and first steps; closed-form loss of the skipped rows
    rows_x, rows_tgt, rows_coef, seed_of_row, rows_start, bounds = [], [], [], [], [], []
    loss = torch.zeros(k, dtype=torch.float64)
    n_rows = 0
    for s, tr in enumerate(trials):
        mask, coef = _loss_weights(tr.target)
        has_x = (tr.x != 0).any(dim=2)  # (B, T)
        if zero_h0[s]:
            keep = ~tr.catch & has_x.any(dim=1)
            # h (hence r and y) is exactly 0 before a row's first input
            first = has_x[keep].to(torch.int8).argmax(dim=1)
        else:
            keep = torch.ones(len(tr), dtype=torch.bool)
            first = torch.zeros(len(tr), dtype=torch.long)
        # skipped rows (catch trials) have y = 0 throughout: loss = sum(mask * target^2)
        skipped = ~keep
        if skipped.any():
            loss[s] += ((mask[skipped] * tr.target[skipped] ** 2).sum(dim=(1, 2)) * coef[skipped]).sum().double()
        n = int(keep.sum())
        rows_x.append(tr.x[keep])
        rows_tgt.append((tr.target[keep], mask[keep]))
        rows_coef.append(coef[keep])
        seed_of_row.append(torch.full((n,), s, dtype=torch.long))
        rows_start.append(first.long())
        bounds.append((n_rows, n_rows + n))
        n_rows += n
    if n_rows == 0:  # nothing to simulate
        return loss, None, None, []
    blocks = [(0, n_rows)] if shared_G else bounds
    starts = torch.cat(rows_start)
    # rows sorted by first step within each block, so the rows that have started form a prefix
    perm = torch.cat([lo + torch.argsort(starts[lo:hi], stable=True) for lo, hi in blocks])
    starts = starts[perm]
    x = torch.cat(rows_x)[perm].to(dev)  # (R, T, 1)
    tgt = torch.cat([a for a, _ in rows_tgt])[perm].to(dev)
    mask = torch.cat([b for _, b in rows_tgt])[perm].to(dev)
    coef = torch.cat(rows_coef)[perm].to(dev)
    sidx_cpu = torch.cat(seed_of_row)[perm]
    sidx = sidx_cpu.to(dev)
    t0 = int(starts.min())
    # steps before t0 (rows with zero h0 only, as t0 = 0 otherwise): y = 0, loss in closed form
    if t0 > 0:
        pre = (mask[:, :t0] * tgt[:, :t0] ** 2).sum(dim=(1, 2)) * coef
        loss.index_add_(0, sidx_cpu, pre.double().cpu())

    Gs = G.unsqueeze(0) if shared_G else G  # (1 or k, N, N)
    groups = [sel for sel in row_groups(blocks, n_streams(n_rows, dev)) if len(sel)]
    return loss, _Rows(Gs, I, w, h0, x, tgt, mask, coef, sidx, starts, t0, alpha, g), sidx_cpu, groups


def adjoint_step(G: torch.Tensor, I: torch.Tensor, w: torch.Tensor, h0: torch.Tensor,
                 trials: list[Trials], alpha: float, g: float) -> StepResult:
    """Loss and exact gradient for k models at once.

    G: (N, N) shared or (k, N, N); I, w: (k, N, 1); h0: (k, N); trials: k batches of B trials.
    Each model's loss is the mean over its trials (README, Definitions 3).
    """
    k, N = I.shape[0], I.shape[1]
    dtype, dev = I.dtype, I.device
    loss, rows, sidx_cpu, groups = _prepare(G, I, w, h0, trials, alpha, g)
    if rows is None:
        return StepResult(loss.to(dtype), torch.zeros_like(I), torch.zeros_like(w))
    sidx = rows.seed
    results = run_streams([lambda sel=sel: _rows_fwd_bwd(rows, sel) for sel in groups])
    dI = torch.zeros(k, N, dtype=dtype, device=dev)
    dw = torch.zeros(k, N, dtype=dtype, device=dev)
    for sel, (row_loss, dI_rows, dw_g) in zip(groups, results):
        loss.index_add_(0, sidx_cpu[sel], row_loss.double().cpu())
        _add_rows(dI, sidx[sel.to(dev)], dI_rows)
        dw += dw_g
    return StepResult(loss.to(dtype), dI.unsqueeze(-1), dw.unsqueeze(-1))


@torch.no_grad()
def forward_loss(G: torch.Tensor, I: torch.Tensor, w: torch.Tensor, h0: torch.Tensor,
                 trials: list[Trials], alpha: float, g: float) -> torch.Tensor:
    """The loss of k models (k,) on their trials, as adjoint_step computes it (the same rows, row
    streams and skipped work), without the backward pass, keeping only the current step's rates."""
    loss, rows, sidx_cpu, groups = _prepare(G, I, w, h0, trials, alpha, g)
    if rows is not None:
        results = run_streams([lambda sel=sel: _rows_fwd_bwd(rows, sel, backward=False) for sel in groups])
        for sel, row_loss in zip(groups, results):
            loss.index_add_(0, sidx_cpu[sel], row_loss.double().cpu())
    return loss.to(I.dtype)


def autograd_step(G: torch.Tensor, I: torch.Tensor, w: torch.Tensor, h0: torch.Tensor,
                  trials: list[Trials], alpha: float, g: float) -> StepResult:
    """The reference: the plain loop of README, Definitions 1 (model.reference_forward) for each model, differentiated
    by autograd."""
    losses, dIs, dws = [], [], []
    for s, tr in enumerate(trials):
        Gs = G if G.dim() == 2 else G[s]
        I_s = I[s].detach().clone().requires_grad_(True)
        w_s = w[s].detach().clone().requires_grad_(True)
        y = reference_forward(Gs, I_s, w_s, h0[s], tr.x.to(Gs.device), alpha, g)
        loss = training_loss(y, tr.target.to(Gs.device))
        dI, dw = torch.autograd.grad(loss, (I_s, w_s))
        losses.append(loss.detach())
        dIs.append(dI)
        dws.append(dw)
    return StepResult(torch.stack(losses), torch.stack(dIs), torch.stack(dws))


ENGINES = {"adjoint": adjoint_step, "autograd": autograd_step}
