"""Benchmark of one training step: the fast adjoint engine against the autograd reference
(`python -m sysa_core.bench [--quick]`, issue 4).

Prints one JSON object per case on stdout (one line each); progress goes to stderr.
Every time is measured in this run: the reference, the fast engine and the roofline
alternate inside one loop and medians are reported, so their ratios are fair even on a
busy machine. Nothing is extrapolated: each figure says how many steps it was measured on.

Cases:
* `train_step` - one training step (32 trials, the profile's timeline, forward + backward)
  of seed 1 on a fixed, seeded batch: `reference_ms`, `fast_ms`, `speedup`, `roofline_ms`
  (the two products (rows x N)(N x N) per active step, with the rows the fast engine
  multiplies at that step: a trial joins at its first input) and `roofline_ratio`;
  `roofline_all_rows_ms` (all R simulated rows at every step from the earliest onset) and its
  ratio; `peak_rss_mb` (a fresh process doing one fast step), `analysis_s`
  (analysis.metrics of one model) and the gradient and loss errors of the fast engine
  against the reference on that batch;
* `train_step_float64` (full run only) - the same check in float64;
* `seeds_batched` - k seeds stepped as one computation against one at a time.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import replace

import torch

from . import analysis, config
from .config import Config
from .engine import _row_schedule, adjoint_step, autograd_step
from .model import DTYPES, init_weights
from .task import draw_trials

DATA_SEED = 0  # the benchmark batch: draw_trials with torch.Generator().manual_seed(DATA_SEED)


def _log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def _peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB: VmHWM on Linux (the high-water mark of this
    process's own memory; ru_maxrss of a freshly started child also counts its parent's memory
    at fork time), else ru_maxrss (KiB on Linux, bytes on macOS)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**10
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    nb = float(b.norm())
    diff = float((a - b).norm())
    return diff / nb if nb > 0 else diff


def step_args(cfg: Config, seeds: list[int], batch: int, per_seed_G: bool = False):
    """Arguments of an engine step for `seeds` stacked: G, I, w, h0, trials, alpha, g.
    Each seed gets its own seeded batch (DATA_SEED + position)."""
    dtype = DTYPES[cfg.model.dtype]
    wts = [{k: v.to(dtype) for k, v in init_weights(cfg.model, s).items()} for s in seeds]
    trials = [draw_trials(cfg, batch, torch.Generator().manual_seed(DATA_SEED + i)) for i in range(len(seeds))]
    G = torch.stack([wt["G"] for wt in wts]) if per_seed_G else wts[0]["G"]
    I = torch.stack([wt["I"] for wt in wts])
    w = torch.stack([wt["w"] for wt in wts])
    h0 = torch.stack([wt["h0"] for wt in wts])
    return G, I, w, h0, trials, cfg.alpha, cfg.model.g_G


def active_work(args) -> dict:
    """What the fast engine simulates for these arguments: `rows` (non-catch trials; all trials
    when h0 != 0), `active_steps` (from the earliest first input), `blocks` (rows sharing a G) and
    `schedule`: per active step, the row ranges whose state can be non-zero (rows sorted by first
    input; a row joins the products at its first input), and `row_steps`, their total."""
    G, I, w, h0, trials, _, _ = args
    T = trials[0].x.shape[1]
    starts, bounds, n_rows = [], [], 0
    for s, tr in enumerate(trials):
        has_x = (tr.x != 0).any(dim=2)
        if bool((h0[s] == 0).all()):
            keep = ~tr.catch & has_x.any(dim=1)
            first = has_x[keep].to(torch.int8).argmax(dim=1).long()
        else:
            first = torch.zeros(len(tr), dtype=torch.long)
        starts.append(first.sort().values)
        bounds.append((n_rows, n_rows + len(first)))
        n_rows += len(first)
    starts = torch.cat(starts)
    blocks = [(0, n_rows)] if G.dim() == 2 else bounds
    if G.dim() == 2:
        starts = starts.sort().values
    if n_rows == 0:
        return {"rows": 0, "active_steps": 0, "blocks": blocks, "schedule": [], "row_steps": 0}
    t0 = int(starts.min())
    sched = _row_schedule(starts, blocks, t0, T)
    return {"rows": n_rows, "active_steps": T - t0, "blocks": blocks, "schedule": sched,
            "row_steps": sum(e - lo for step in sched for lo, e in step)}


def roofline_s(G: torch.Tensor, work: dict, all_rows: bool = False) -> float:
    """Seconds for the two matrix products per step that an exact step needs: (rows x N)(N x N)
    forward (r G') and backward (a G), per block of rows sharing a G, in preallocated buffers,
    with the rows the fast engine multiplies at each active step (all_rows: every simulated
    row at every active step)."""
    N = G.shape[-1]
    Gs = G.unsqueeze(0) if G.dim() == 2 else G
    rows = work["rows"]
    r = torch.tanh(torch.randn(rows, N, dtype=G.dtype, generator=torch.Generator().manual_seed(1)))
    u = torch.empty_like(r)
    a = torch.empty_like(r)
    GT = [Gs[b].T for b in range(len(work["blocks"]))]
    Gc = [Gs[b].contiguous() for b in range(len(work["blocks"]))]
    bidx = {lo: b for b, (lo, _) in enumerate(work["blocks"])}
    full = [[(lo, hi) for lo, hi in work["blocks"] if hi > lo]] * work["active_steps"]
    sched = full if all_rows else work["schedule"]
    t = time.perf_counter()
    for step in sched:
        for lo, e in step:
            b = bidx[lo]
            torch.mm(r[lo:e], GT[b], out=u[lo:e])
            torch.mm(u[lo:e], Gc[b], out=a[lo:e])
    return time.perf_counter() - t


def _timed(fn, *args):
    t = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t, out


def probe_memory(cfg: Config, batch: int) -> float:
    """Peak RSS (MiB) of a fresh Python process that builds the batch and runs one fast step."""
    cmd = [sys.executable, "-m", "sysa_core.bench", "--probe-memory", json.dumps(cfg.to_dict()),
           "--batch", str(batch)]
    env = dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads()))
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mb"])


def train_step_case(cfg: Config, *, batch: int = 32, repeats: int = 3, reference_repeats: int = 1,
                    memory: bool = True, analysis_time: bool = True, case: str = "train_step") -> dict:
    """Reference vs fast engine on one seeded batch of seed 1; see the module docstring."""
    args = step_args(cfg, [1], batch)
    work = active_work(args)
    T = args[4][0].x.shape[1]
    _log(f"{case}: {batch} trials x {T} steps, {cfg.model.hidden_size} units, {cfg.model.dtype}; "
         f"fast engine simulates {work['rows']} rows x {work['active_steps']} steps "
         f"({work['row_steps']} row-steps in its products)")
    _, fast = _timed(adjoint_step, *args)  # warm-up; its result is the one checked
    fast_s, ref_s, roof_s, roof_all_s = [], [], [], []
    ref = None
    for i in range(max(repeats, reference_repeats)):
        if i < reference_repeats:
            t, res = _timed(autograd_step, *args)
            ref_s.append(t)
            ref = ref if ref is not None else res
            _log(f"  reference step {i + 1}/{reference_repeats}: {t * 1e3:.0f} ms")
        if i < repeats:
            t, _ = _timed(adjoint_step, *args)
            fast_s.append(t)
            roof_s.append(roofline_s(args[0], work))
            roof_all_s.append(roofline_s(args[0], work, all_rows=True))
            _log(f"  fast step {i + 1}/{repeats}: {t * 1e3:.0f} ms (roofline {roof_s[-1] * 1e3:.0f} ms, "
                 f"all rows {roof_all_s[-1] * 1e3:.0f} ms)")
    out = {"case": case, "profile": cfg.profile, "dtype": cfg.model.dtype, "hidden_size": cfg.model.hidden_size,
           "batch": batch, "steps": T, "simulated_rows": work["rows"], "active_steps": work["active_steps"],
           "row_steps": work["row_steps"], "threads": torch.get_num_threads()}
    if ref_s:
        ref_ms = statistics.median(ref_s) * 1e3
        out.update(reference_ms=round(ref_ms, 1), reference_steps_measured=len(ref_s))
    fast_ms = statistics.median(fast_s) * 1e3
    roof_ms = statistics.median(roof_s) * 1e3
    out.update(fast_ms=round(fast_ms, 1), fast_steps_measured=len(fast_s))
    if ref_s:
        out["speedup"] = round(ref_ms / fast_ms, 2)
    roof_all_ms = statistics.median(roof_all_s) * 1e3
    out.update(roofline_ms=round(roof_ms, 1), roofline_ratio=round(fast_ms / roof_ms, 3),
               roofline_steps_measured=len(roof_s), roofline_all_rows_ms=round(roof_all_ms, 1),
               roofline_all_rows_ratio=round(fast_ms / roof_all_ms, 3))
    if memory:
        _log("  peak memory of one fast step in a fresh process")
        out["peak_rss_mb"] = round(probe_memory(cfg, batch), 1)
    if analysis_time:
        sd = init_weights(cfg.model, 1)
        t, _ = _timed(analysis.metrics, cfg, sd)
        out["analysis_s"] = round(t, 2)
        _log(f"  analysis.metrics: {t:.1f} s")
    if ref is not None:
        out.update(grad_rel_err_I=_rel(fast.dI, ref.dI), grad_rel_err_w=_rel(fast.dw, ref.dw),
                   loss_rel_err=_rel(fast.loss, ref.loss), loss=float(ref.loss[0]))
    out["bench_process_peak_rss_mb"] = round(_peak_rss_mb(), 1)  # includes the autograd reference
    out["load_avg_1min"] = round(os.getloadavg()[0], 2)
    return out


def seeds_batched_case(cfg: Config, k: int = 2, *, batch: int = 32, repeats: int = 2,
                       per_seed_G: bool = False) -> dict:
    """k seeds (1..k) as one fast step against the k single-seed steps, alternately."""
    seeds = list(range(1, k + 1))
    name = f"seeds_batched_k{k}" + ("_G_per_seed" if per_seed_G else "")
    if per_seed_G:
        cfg = replace(cfg, model=replace(cfg.model, init="independent", G_per_seed=True))
    args = step_args(cfg, seeds, batch, per_seed_G=per_seed_G)
    G, I, w, h0, trials, al, g = args
    single = [((G[s] if per_seed_G else G), I[s:s + 1], w[s:s + 1], h0[s:s + 1], [trials[s]], al, g) for s in range(k)]
    work = active_work(args)
    _log(f"{name}: {k} seeds, {work['rows']} rows x {work['active_steps']} steps")
    batched = adjoint_step(*args)  # warm-up, checked below
    sep = [adjoint_step(*a) for a in single]
    b_s, s_s, roof_s = [], [], []
    for i in range(repeats):
        b_s.append(_timed(adjoint_step, *args)[0])
        s_s.append(sum(_timed(adjoint_step, *a)[0] for a in single))
        roof_s.append(roofline_s(G, work))
        _log(f"  repeat {i + 1}/{repeats}: batched {b_s[-1] * 1e3:.0f} ms, separately {s_s[-1] * 1e3:.0f} ms")
    b_ms, s_ms, r_ms = (statistics.median(v) * 1e3 for v in (b_s, s_s, roof_s))
    dI = torch.cat([r.dI for r in sep])
    dw = torch.cat([r.dw for r in sep])
    loss = torch.cat([r.loss for r in sep])
    return {"case": name, "profile": cfg.profile, "dtype": cfg.model.dtype, "k": k, "batch": batch,
            "simulated_rows": work["rows"], "active_steps": work["active_steps"], "row_steps": work["row_steps"],
            "threads": torch.get_num_threads(),
            "batched_ms": round(b_ms, 1), "separate_ms": round(s_ms, 1), "fast_ms_per_model": round(b_ms / k, 1),
            "batching_speedup": round(s_ms / b_ms, 3), "roofline_ms": round(r_ms, 1),
            "roofline_ratio": round(b_ms / r_ms, 3), "repeats": repeats,
            "batched_vs_separate_rel_err_I": _rel(batched.dI, dI), "batched_vs_separate_rel_err_w": _rel(batched.dw, dw),
            "batched_vs_separate_rel_err_loss": _rel(batched.loss, loss),
            "load_avg_1min": round(os.getloadavg()[0], 2)}


def run(cfg: Config, quick: bool = False, batch: int = 32, emit=None) -> list[dict]:
    """All cases for configuration `cfg`; each result is passed to `emit` as soon as it is ready."""
    emit = emit or (lambda d: None)
    results = []

    def done(d):
        results.append(d)
        emit(d)

    if quick:  # one reference step (the checked one), three fast steps: under a minute here
        done(train_step_case(cfg, batch=batch, repeats=3, reference_repeats=1))
        done(seeds_batched_case(cfg, 2, batch=batch, repeats=1))
        return results
    done(train_step_case(cfg, batch=batch, repeats=5, reference_repeats=3))
    c64 = replace(cfg, model=replace(cfg.model, dtype="float64"))
    done(train_step_case(c64, batch=batch, repeats=2, reference_repeats=1, memory=False, analysis_time=False,
                         case="train_step_float64"))
    done(seeds_batched_case(cfg, 2, batch=batch, repeats=3))
    done(seeds_batched_case(cfg, 2, batch=batch, repeats=2, per_seed_G=True))
    return results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m sysa_core.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats: the whole benchmark within a minute")
    p.add_argument("--profile", default="paper", help="configuration profile (default paper)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a configuration value")
    p.add_argument("--batch", type=int, default=32, help="trials per step (default 32)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--probe-memory", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.probe_memory is not None:  # internal: one fast step in this fresh process, then the peak RSS
        cfg = Config.from_dict(json.loads(a.probe_memory))
        adjoint_step(*step_args(cfg, [1], a.batch))
        print(json.dumps({"peak_rss_mb": _peak_rss_mb()}))
        return 0
    try:
        cfg = config.resolve(a.profile, a.set)
    except config.UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    t = time.perf_counter()
    run(cfg, quick=a.quick, batch=a.batch, emit=lambda d: print(json.dumps(d), flush=True))
    _log(f"total {time.perf_counter() - t:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
