"""Benchmark of one training step: the fast adjoint engine against the autograd reference
(`python -m sysa_core.bench [--quick]`).

Prints one JSON object per case on stdout (one line each); progress goes to stderr.
Every time is measured in this run: the reference, the fast engine and the roofline
alternate inside one loop and medians are reported, so their ratios are fair even on a
busy machine. Nothing is extrapolated: each figure says how many steps it was measured on.

Cases:
* `train_step` - one training step (32 trials, the profile's timeline, forward + backward)
  of seed 1 on a fixed, seeded batch: `reference_ms`, `fast_ms`, `speedup`, `roofline_ms`
  (the two products (rows x N)(N x N) per active step, with the rows the fast engine
  multiplies at that step: a trial joins at its first input; the faster of running them in
  the engine's row streams, `roofline_streams_ms`, and in one stream on torch's intra-op
  thread pool, `roofline_thread_pool_ms`) and `roofline_ratio` = fast / roofline;
  `roofline_all_rows_ms` (all R simulated rows at every step from the earliest onset) and its
  ratio; `peak_rss_mb` (a fresh process doing one fast step), `analysis_s`
  (analysis.metrics.analyse of one 500-unit model, given its network's analysis, which a run
  computes once per G: `network_analysis_s`; `analysis_one_thread_s` the same with nothing
  beside the rest, `analysis_speedup` their ratio; `analysis_model` names the model: the shipped
  paper study's main seed 1, a trained network, when it is here and of this configuration, else
  the untrained seed 1, whose plateaus leave their bands early and whose point search is
  shorter, so its time is not a trained network's) and the gradient and
  loss errors of the fast engine against the reference on that batch, over all 7000 steps;
  and the FLOP bound: `gemm_gflops` (the machine's single-precision matrix-product rate, measured
  in this run: a large square float32 product on torch's current threads, `gemm_rate`), `flops`
  (the fast engine's two products per row-step, 4 N^2 row_steps), `flop_bound_ms` = flops / rate,
  `fast_vs_flop_bound` and `roofline_vs_flop_bound` (time / bound), `reference_flops` (all B rows
  at all T steps, one product forward and one backward) and `reference_vs_flop_bound`;
* `train_step_float64` (full run only) - the same check in float64;
* `seeds_batched_k{k}` - k seeds (`--seeds-batched K`) stepped as one computation
  against one at a time: `batched_ms`, `separate_ms`, `batching_speedup`, `fast_ms_per_model`,
  and `speedup_per_model` = the `train_step` case's `reference_ms` / `fast_ms_per_model` (the
  throughput of training k seeds batched, per model, against the single-seed reference); and
  `flops` (the k seeds' products), `flop_bound_ms`, `batched_vs_flop_bound` (the same ratio per
  model) and `separate_vs_flop_bound`. The default k is the number of models `sysa train` steps
  as one computation (training.MODELS_PER_BATCH).

With `--device cuda` the cases above are replaced by the engine on that GPU (`device_case`):
`device_step` (one seed: `fast_ms` against the autograd reference on the GPU, `reference_ms`,
and against the fast engine on this machine's CPU, `cpu_fast_ms`, with their gradient errors),
then `device_seeds_batched_k{k}` for each k of `--device-seeds` (time per model, its ratio to the
FLOP bound of the GPU's float32 GEMM rate, and seed 1's gradient in the batch against seed 1 alone).

The GEMM rate is measured once per repeat, beside the case's own times, so the bound follows the
machine's load as the times do.
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

from . import config, engine
from .analysis import metrics, network
from .config import Config
from .engine import adjoint_step, autograd_step, n_streams, row_groups, row_schedule, run_streams, seed_blocks
from .model import DTYPES, init_weights
from .task import draw_trials
from .runtime import resolve_device
from .training import MODELS_PER_BATCH

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
    when h0 != 0), `active_steps` (from the earliest first input, step `t0`), per row its first
    step `starts` and seed (sorted as the engine sorts them), `blocks` (rows sharing a G), the
    `schedule` (per active step, the row ranges whose state can be non-zero: a row joins the
    products at its first input) and `row_steps`, its total."""
    G, I, w, h0, trials, _, _ = args
    T = trials[0].x.shape[1]
    starts, seeds = [], []
    for s, tr in enumerate(trials):
        has_x = (tr.x != 0).any(dim=2)
        if bool((h0[s] == 0).all()):
            keep = ~tr.catch & has_x.any(dim=1)
            first = has_x[keep].to(torch.int8).argmax(dim=1).long()
        else:
            first = torch.zeros(len(tr), dtype=torch.long)
        starts.append(first.sort().values)
        seeds.append(torch.full((len(first),), s, dtype=torch.long))
    starts, seeds = torch.cat(starts), torch.cat(seeds)
    shared = G.dim() == 2
    if shared:
        order = torch.argsort(starts, stable=True)
        starts, seeds = starts[order], seeds[order]
    n_rows = len(starts)
    blocks = seed_blocks(seeds.tolist(), shared)
    if n_rows == 0:
        return {"rows": 0, "active_steps": 0, "t0": T, "T": T, "blocks": blocks, "schedule": [], "row_steps": 0,
                "starts": starts, "seeds": seeds, "shared_G": shared}
    t0 = int(starts.min())
    sched = row_schedule(starts, blocks, t0, T)
    return {"rows": n_rows, "active_steps": T - t0, "t0": t0, "T": T, "blocks": blocks, "schedule": sched,
            "row_steps": sum(e - lo for step in sched for lo, e in step), "starts": starts, "seeds": seeds,
            "shared_G": shared}


def _products(G, work, sel, all_rows: bool):
    """A closure running the two products per active step for the rows `sel`."""
    N = G.shape[-1]
    Gs = G.unsqueeze(0) if G.dim() == 2 else G
    sid = work["seeds"][sel].tolist()
    blocks = seed_blocks(sid, work["shared_G"])
    if all_rows:
        sched = [blocks] * work["active_steps"]
    else:
        sched = row_schedule(work["starts"][sel], blocks, work["t0"], work["T"])
    bG = {lo: (0 if work["shared_G"] else sid[lo]) for lo, _ in blocks}
    GT = {lo: Gs[b].T for lo, b in bG.items()}
    Gc = {lo: Gs[b].contiguous() for lo, b in bG.items()}
    r = torch.tanh(torch.randn(len(sid), N, dtype=G.dtype, generator=torch.Generator().manual_seed(1)))
    u = torch.empty_like(r)
    a = torch.empty_like(r)

    def go():
        for step in sched:
            for lo, e in step:
                torch.mm(r[lo:e], GT[lo], out=u[lo:e])
                torch.mm(u[lo:e], Gc[lo], out=a[lo:e])
    return go


def roofline_s(G: torch.Tensor, work: dict, all_rows: bool = False, streams: int = 1) -> float:
    """Seconds for the two matrix products per step that an exact step needs: (rows x N)(N x N)
    forward (r G') and backward (a G), per block of rows sharing a G, in preallocated buffers,
    with the rows the fast engine multiplies at each active step (all_rows: every simulated row
    at every active step). streams = 1: in this thread with torch's intra-op threads; more: the
    rows split as the engine splits them, one thread with one intra-op thread per stream."""
    if work["rows"] == 0:
        return 0.0
    groups = [sel for sel in row_groups(work["blocks"], streams) if len(sel)]
    jobs = [_products(G, work, sel, all_rows) for sel in groups]
    t = time.perf_counter()
    run_streams(jobs)  # the engine's own way of running its row streams
    return time.perf_counter() - t


#: side of the square float32 product that measures the machine's GEMM rate (2 n^3 FLOPs: 17 GFLOP)
GEMM_N = 2048


#: the same on an accelerator, whose rate a small product does not reach (2 n^3 FLOPs: 1.1 TFLOP)
GEMM_N_DEVICE = 8192


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def gemm_rate(n: int | None = None, repeats: int = 3, device: str | torch.device = "cpu") -> float:
    """The machine's single-precision matrix-product rate in FLOP/s: the fastest of `repeats`
    (n x n)(n x n) float32 products (n: default GEMM_N on the CPU, GEMM_N_DEVICE elsewhere) on
    torch's current intra-op threads or on `device`, after one warm-up. On CUDA the product is
    torch's default float32 one (full precision, no TF32), the one the engine uses."""
    dev = torch.device(device)
    n = (GEMM_N if dev.type == "cpu" else GEMM_N_DEVICE) if n is None else n
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(dev)
    b = torch.randn(n, n, generator=gen).to(dev)
    c = torch.empty(n, n, device=dev)
    torch.mm(a, b, out=c)
    best = float("inf")
    for _ in range(repeats):
        _sync(dev)
        t = time.perf_counter()
        torch.mm(a, b, out=c)
        _sync(dev)
        best = min(best, time.perf_counter() - t)
    return 2.0 * n ** 3 / best


def step_flops(hidden_size: int, row_steps: int) -> int:
    """FLOPs of an exact training step's products: per simulated row and step one (1 x N)(N x N)
    product forward and one backward, 2 N^2 each."""
    return 4 * hidden_size ** 2 * row_steps


def _bound_fields(flops: int, rates: list[float], times_ms: dict) -> dict:
    """gemm_gflops (median of the run's measurements), flops, flop_bound_ms and, per named time,
    `<name>_vs_flop_bound` = time / bound."""
    rate = statistics.median(rates)
    bound_ms = flops / rate * 1e3
    out = {"gemm_gflops": float(f"{rate / 1e9:.4g}"), "gemm_measured": len(rates), "flops": flops,
           "flop_bound_ms": round(bound_ms, 3)}
    for name, ms in times_ms.items():
        out[f"{name}_vs_flop_bound"] = round(ms / bound_ms, 3) if bound_ms > 0 else None
    return out


def _timed(fn, *args, dev: torch.device | None = None):
    """Seconds of fn(*args) and its result; on an accelerator `dev`, its queued work included."""
    if dev is not None:
        _sync(dev)
    t = time.perf_counter()
    out = fn(*args)
    if dev is not None:
        _sync(dev)
    return time.perf_counter() - t, out


def probe_memory(cfg: Config, batch: int) -> float:
    """Peak RSS (MiB) of a fresh Python process that builds the batch and runs one fast step."""
    cmd = [sys.executable, "-m", "sysa_core.bench", "--probe-memory", json.dumps(cfg.to_dict()),
           "--batch", str(batch)]
    env = dict(os.environ, OMP_NUM_THREADS=str(torch.get_num_threads()))
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mb"])


def _rooflines(G, work, all_rows: bool, pool: bool = True) -> dict:
    """One measurement of each roofline variant: the products with the engine's row streams,
    with torch's intra-op thread pool in one stream (when the engine uses several and `pool`),
    and with all rows at every active step (engine's streams; when `all_rows`)."""
    P = n_streams(work["rows"], torch.device("cpu"))
    out = {"streams": roofline_s(G, work, streams=P)}
    if P > 1 and pool:
        out["pool"] = roofline_s(G, work, streams=1)
    if all_rows:
        out["all_rows"] = roofline_s(G, work, all_rows=True, streams=P)
    return out


def _roofline_fields(fast_ms: float, roofs: list[dict], P: int) -> dict:
    """roofline_ms = the faster way of doing the products (engine's streams or the thread pool),
    medians over the repeats; the variants and their counts beside it."""
    med = {key: statistics.median([r[key] for r in roofs if key in r]) * 1e3
           for key in ("streams", "pool", "all_rows") if any(key in r for r in roofs)}
    best = min(med["streams"], med.get("pool", float("inf")))
    out = {"streams": P, "roofline_ms": round(best, 1), "roofline_ratio": round(fast_ms / best, 3),
           "roofline_steps_measured": len(roofs), "roofline_streams_ms": round(med["streams"], 1)}
    if "pool" in med:
        out.update(roofline_thread_pool_ms=round(med["pool"], 1),
                   roofline_thread_pool_measured=sum("pool" in r for r in roofs))
    if "all_rows" in med:
        out.update(roofline_all_rows_ms=round(med["all_rows"], 1),
                   roofline_all_rows_ratio=round(fast_ms / med["all_rows"], 3),
                   roofline_all_rows_measured=sum("all_rows" in r for r in roofs))
    return out


def train_step_case(cfg: Config, *, batch: int = 32, repeats: int = 3, reference_repeats: int = 1,
                    all_rows_repeats: int = 1, pool_repeats: int | None = None, memory: bool = True,
                    analysis_time: bool = True, case: str = "train_step") -> dict:
    """Reference vs fast engine on one seeded batch of seed 1; see the module docstring."""
    analysed = analysed_model(cfg) if analysis_time else None  # before the timings: it may name a problem
    args = step_args(cfg, [1], batch)
    work = active_work(args)
    P = n_streams(work["rows"], torch.device("cpu"))
    T = args[4][0].x.shape[1]
    _log(f"{case}: {batch} trials x {T} steps, {cfg.model.hidden_size} units, {cfg.model.dtype}; "
         f"fast engine simulates {work['rows']} rows x {work['active_steps']} steps "
         f"({work['row_steps']} row-steps in its products) in {P} stream(s), {torch.get_num_threads()} threads")
    _, fast = _timed(adjoint_step, *args)  # warm-up; its result is the one checked
    fast_s, ref_s, roofs, rates = [], [], [], []
    ref = None
    for i in range(max(repeats, reference_repeats)):
        rates.append(gemm_rate())
        if i < reference_repeats:
            t, res = _timed(autograd_step, *args)
            ref_s.append(t)
            ref = ref if ref is not None else res
            _log(f"  reference step {i + 1}/{reference_repeats}: {t * 1e3:.0f} ms")
        if i < repeats:
            t, _ = _timed(adjoint_step, *args)
            fast_s.append(t)
            roofs.append(_rooflines(args[0], work, i < all_rows_repeats, pool_repeats is None or i < pool_repeats))
            _log(f"  fast step {i + 1}/{repeats}: {t * 1e3:.0f} ms (rooflines, ms: "
                 + ", ".join(f"{k} {v * 1e3:.0f}" for k, v in roofs[-1].items()) + ")")
    out = {"case": case, "profile": cfg.profile, "dtype": cfg.model.dtype, "hidden_size": cfg.model.hidden_size,
           "batch": batch, "steps": T, "simulated_rows": work["rows"], "active_steps": work["active_steps"],
           "row_steps": work["row_steps"], "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
           "load_avg_1min_start": round(os.getloadavg()[0], 2)}
    if ref_s:
        ref_ms = statistics.median(ref_s) * 1e3
        out.update(reference_ms=round(ref_ms, 1), reference_steps_measured=len(ref_s))
    fast_ms = statistics.median(fast_s) * 1e3
    out.update(fast_ms=round(fast_ms, 1), fast_steps_measured=len(fast_s))
    if ref_s:
        out["speedup"] = round(ref_ms / fast_ms, 2)
    out.update(_roofline_fields(fast_ms, roofs, P))
    N = cfg.model.hidden_size
    out.update(_bound_fields(step_flops(N, work["row_steps"]), rates,
                             {"fast": fast_ms, "roofline": out["roofline_ms"]}))
    out["reference_flops"] = step_flops(N, batch * T)
    if ref_s:
        out["reference_vs_flop_bound"] = round(ref_ms / (out["reference_flops"] / statistics.median(rates) * 1e3), 3)
    _log(f"  GEMM rate {out['gemm_gflops']} GFLOP/s: {out['flops'] / 1e9:.1f} GFLOP in the fast step's products, "
         f"bound {out['flop_bound_ms']:.0f} ms, fast step {out['fast_vs_flop_bound']}x the bound")
    if memory:
        _log("  peak memory of one fast step in a fresh process")
        out["peak_rss_mb"] = round(probe_memory(cfg, batch), 1)
    if analysis_time:
        acfg, sd, what = analysed
        t_net, net = _timed(network.analyse_network, acfg, sd["G"])
        t, _ = _timed(lambda: metrics.analyse(acfg, sd, network=net, beside=True))
        t_alone, _ = _timed(lambda: metrics.analyse(acfg, sd, network=net, beside=False))
        out.update(analysis_s=round(t, 2), analysis_one_thread_s=round(t_alone, 2),
                   analysis_speedup=round(t_alone / t, 2), network_analysis_s=round(t_net, 2), analysis_model=what)
        _log(f"  analysis.metrics.analyse of {what}: {t:.1f} s per model ({t_alone:.1f} s with nothing beside the "
             f"rest, {t_alone / t:.2f}x); the network's analysis (once per G): {t_net:.1f} s")
    if ref is not None:
        out.update(grad_rel_err_I=_rel(fast.dI, ref.dI), grad_rel_err_w=_rel(fast.dw, ref.dw),
                   loss_rel_err=_rel(fast.loss, ref.loss), loss=float(ref.loss[0]))
    out["bench_process_peak_rss_mb"] = round(_peak_rss_mb(), 1)  # includes the autograd reference
    out["load_avg_1min"] = round(os.getloadavg()[0], 2)
    return out


def analysed_model(cfg: Config) -> tuple[Config, dict, str]:
    """(configuration, state dict, what it is) of the model whose analysis the benchmark times, with
    cfg's seed set to 1: the shipped paper study's main seed 1 when data/paper holds it and it was
    trained with cfg's training settings (its training_id), else cfg's untrained seed 1. A shipped
    study that cannot be read is named on stderr and the untrained seed taken."""
    from .pipeline import shipped

    one, src = replace(cfg, seed=1), shipped.default_dir()
    try:
        if src.is_dir():
            study = shipped.study_config(src)
            same = study.training_id() == replace(cfg, seed=study.seed).training_id()
            if same and 1 in shipped.shipped_seeds(src)["main"]:
                _, obj, _ = shipped.checkpoint_bytes(src, "main", 1)
                return one, obj["state_dict"], "the shipped study's main seed 1 (trained)"
    except Exception as exc:  # noqa: BLE001 - a benchmark's choice of model: it goes on with the untrained one
        _log(f"  the shipped study cannot be read ({type(exc).__name__}: {exc}); "
             "timing the analysis of the untrained seed 1")
    return one, init_weights(cfg.model, 1), "seed 1, untrained"


def seeds_batched_case(cfg: Config, k: int = 2, *, batch: int = 32, repeats: int = 2,
                       per_seed_G: bool = False, pool: bool = True, reference_ms: float | None = None) -> dict:
    """k seeds (1..k) as one fast step against the k single-seed steps, alternately; the first
    repeat's results are compared. reference_ms: the train_step case's reference time of this run,
    for speedup_per_model."""
    seeds = list(range(1, k + 1))
    name = f"seeds_batched_k{k}" + ("_G_per_seed" if per_seed_G else "")
    if per_seed_G:
        cfg = replace(cfg, model=replace(cfg.model, init="independent", G_per_seed=True))
    args = step_args(cfg, seeds, batch, per_seed_G=per_seed_G)
    G, I, w, h0, trials, al, g = args
    single = [((G[s] if per_seed_G else G), I[s:s + 1], w[s:s + 1], h0[s:s + 1], [trials[s]], al, g) for s in range(k)]
    work = active_work(args)
    P = n_streams(work["rows"], torch.device("cpu"))
    _log(f"{name}: {k} seeds, {work['rows']} rows x {work['active_steps']} steps in {P} stream(s)")
    b_s, s_s, roofs, rates = [], [], [], []
    batched = sep = None
    _timed(adjoint_step, *args)  # warm-up, as in train_step_case: training reuses the engine's scratch memory
    for i in range(repeats):
        rates.append(gemm_rate())
        t, res = _timed(adjoint_step, *args)
        b_s.append(t)
        batched = batched or res
        timed = [_timed(adjoint_step, *a) for a in single]
        s_s.append(sum(t for t, _ in timed))
        sep = sep or [r for _, r in timed]
        roofs.append(_rooflines(G, work, False, pool))
        _log(f"  repeat {i + 1}/{repeats}: batched {b_s[-1] * 1e3:.0f} ms, separately {s_s[-1] * 1e3:.0f} ms")
    b_ms, s_ms = (statistics.median(v) * 1e3 for v in (b_s, s_s))
    dI = torch.cat([r.dI for r in sep])
    dw = torch.cat([r.dw for r in sep])
    loss = torch.cat([r.loss for r in sep])
    out = {"case": name, "profile": cfg.profile, "dtype": cfg.model.dtype, "k": k, "batch": batch,
           "simulated_rows": work["rows"], "active_steps": work["active_steps"], "row_steps": work["row_steps"],
           "threads": torch.get_num_threads(), "batched_ms": round(b_ms, 1), "separate_ms": round(s_ms, 1),
           "fast_ms_per_model": round(b_ms / k, 1), "batching_speedup": round(s_ms / b_ms, 3), "repeats": repeats}
    if reference_ms is not None:
        out.update(reference_ms=reference_ms, speedup_per_model=round(reference_ms / (b_ms / k), 2))
    out.update(_roofline_fields(b_ms, roofs, P))
    out.update(_bound_fields(step_flops(cfg.model.hidden_size, work["row_steps"]), rates,
                             {"batched": b_ms, "separate": s_ms}))
    _log(f"  GEMM rate {out['gemm_gflops']} GFLOP/s: batched {out['batched_vs_flop_bound']}x the FLOP bound, "
         f"separately {out['separate_vs_flop_bound']}x")
    out.update(batched_vs_separate_rel_err_I=_rel(batched.dI, dI), batched_vs_separate_rel_err_w=_rel(batched.dw, dw),
               batched_vs_separate_rel_err_loss=_rel(batched.loss, loss), load_avg_1min=round(os.getloadavg()[0], 2))
    return out


def _on(args, dev: torch.device):
    """Engine arguments with G, I, w and h0 on `dev` (the trials stay where training keeps them)."""
    G, I, w, h0, trials, al, g = args
    return G.to(dev), I.to(dev), w.to(dev), h0.to(dev), trials, al, g


def device_case(cfg: Config, dev: torch.device, ks: list[int], *, batch: int = 32, repeats: int = 3) -> list[dict]:
    """The engine on an accelerator. One seed's step on `dev` against the autograd reference on
    `dev` and against the fast engine on this machine's CPU (one step each, after a warm-up);
    then, per k in `ks`, k seeds sharing G as one step on `dev` (median of `repeats`): its time
    per model against the FLOP bound of the device's float32 GEMM rate (measured in this run) and
    against the single-seed reference, and seed 1's gradient in the batch against seed 1 alone."""
    one = step_args(cfg, [1], batch)
    work = active_work(one)
    T = one[4][0].x.shape[1]
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else str(dev)
    _log(f"device {dev} ({name}): {batch} trials x {T} steps, {cfg.model.hidden_size} units, {cfg.model.dtype}")
    _timed(adjoint_step, *_on(one, dev), dev=dev)  # warm-up
    t_fast, fast = _timed(adjoint_step, *_on(one, dev), dev=dev)
    t_ref, ref = _timed(autograd_step, *_on(one, dev), dev=dev)
    t_cpu, cpu = _timed(adjoint_step, *one)
    _log(f"  one seed: fast {t_fast * 1e3:.0f} ms, autograd {t_ref * 1e3:.0f} ms on {dev}; fast {t_cpu * 1e3:.0f} ms "
         f"on the CPU ({torch.get_num_threads()} threads)")
    rates = [gemm_rate(device=dev) for _ in range(2)]
    base = {"profile": cfg.profile, "dtype": cfg.model.dtype, "hidden_size": cfg.model.hidden_size, "batch": batch,
            "steps": T, "device": str(dev), "device_name": name, "torch": torch.__version__,
            "reference_ms": round(t_ref * 1e3, 1), "cpu_fast_ms": round(t_cpu * 1e3, 1),
            "cpu_threads": torch.get_num_threads()}
    out = [dict(base, case="device_step", k=1, fast_ms=round(t_fast * 1e3, 1), speedup=round(t_ref / t_fast, 2),
                cpu_vs_device=round(t_cpu / t_fast, 2), grad_rel_err_I=_rel(fast.dI, ref.dI),
                grad_rel_err_w=_rel(fast.dw, ref.dw), loss_rel_err=_rel(fast.loss, ref.loss),
                cpu_vs_device_rel_err_I=_rel(fast.dI, cpu.dI), cpu_vs_device_rel_err_w=_rel(fast.dw, cpu.dw),
                **_bound_fields(step_flops(cfg.model.hidden_size, work["row_steps"]), rates, {"fast": t_fast * 1e3}))]
    for k in ks:
        args = _on(step_args(cfg, list(range(1, k + 1)), batch), dev)
        kwork = active_work(args)
        _timed(adjoint_step, *args, dev=dev)  # warm-up
        times, res = [], None
        for _ in range(repeats):
            t, r = _timed(adjoint_step, *args, dev=dev)
            times.append(t)
            res = res or r
        ms = statistics.median(times) * 1e3
        d = dict(base, case=f"device_seeds_batched_k{k}", k=k, batched_ms=round(ms, 1),
                 fast_ms_per_model=round(ms / k, 2), speedup_per_model=round(t_ref * 1e3 / (ms / k), 1),
                 cpu_vs_device_per_model=round(t_cpu * 1e3 / (ms / k), 1), repeats=repeats,
                 seed1_batched_vs_alone_rel_err_I=_rel(res.dI[:1], fast.dI),
                 seed1_batched_vs_alone_rel_err_w=_rel(res.dw[:1], fast.dw),
                 **_bound_fields(step_flops(cfg.model.hidden_size, kwork["row_steps"]), rates, {"batched": ms}))
        _log(f"  k={k}: {ms:.0f} ms, {ms / k:.1f} ms per model, {d['batched_vs_flop_bound']}x the FLOP bound "
             f"({d['gemm_gflops']} GFLOP/s)")
        out.append(d)
        del args, res
        engine.clear_scratch()
    return out


def run(cfg: Config, quick: bool = False, batch: int = 32, emit=None, k: int = MODELS_PER_BATCH) -> list[dict]:
    """All cases for configuration `cfg` (k: seeds in the batched cases); each result is passed
    to `emit` as soon as it is ready."""
    emit = emit or (lambda d: None)
    results = []

    def done(d):
        d["mode"] = "quick" if quick else "full"
        results.append(d)
        emit(d)
        return d

    if quick:  # one reference step (the checked one), three fast steps, one batched step
        step = done(train_step_case(cfg, batch=batch, repeats=3, reference_repeats=1, all_rows_repeats=1,
                                    pool_repeats=1))
        done(seeds_batched_case(cfg, k, batch=batch, repeats=1, pool=False, reference_ms=step["reference_ms"]))
        return results
    step = done(train_step_case(cfg, batch=batch, repeats=5, reference_repeats=3, all_rows_repeats=3))
    c64 = cfg.with_dtype("float64")
    done(train_step_case(c64, batch=batch, repeats=2, reference_repeats=1, memory=False, analysis_time=False,
                         case="train_step_float64"))
    done(seeds_batched_case(cfg, k, batch=batch, repeats=3, reference_ms=step["reference_ms"]))
    done(seeds_batched_case(cfg, k, batch=batch, repeats=2, per_seed_G=True))
    return results


def _seed_counts(text: str) -> list[int]:
    try:
        ks = [int(v) for v in text.split(",")]
    except ValueError:
        ks = []
    if not ks or min(ks) < 1:
        raise config.UserError(f"--device-seeds: expected positive integers separated by commas, got {text!r}")
    return ks


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m sysa_core.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="one reference step, three fast steps and one batched "
                   "step (the shortest benchmark)")
    p.add_argument("--profile", default="paper", help="configuration profile (default paper)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a configuration value")
    p.add_argument("--batch", type=int, default=32, help="trials per step (default 32)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--streams", type=int, default=None, help="the engine's CPU row streams (engine.CPU_STREAMS; "
                   "default: as many as torch's threads)")
    p.add_argument("--seeds-batched", type=int, default=MODELS_PER_BATCH, metavar="K",
                   help=f"seeds stepped as one computation in the batched cases (default {MODELS_PER_BATCH}, "
                        "as many as sysa train steps together)")
    p.add_argument("--device", default=None, help="cuda or cuda:N: instead of the CPU cases, the engine on that "
                   "accelerator (one seed against autograd there and the fast engine on the CPU; then the "
                   "--device-seeds counts batched)")
    p.add_argument("--device-seeds", default="1,8,40", metavar="K,K,...",
                   help="seed counts stepped as one computation with --device (default 1,8,40)")
    p.add_argument("--probe-memory", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.streams:
        engine.CPU_STREAMS = a.streams
    if a.probe_memory is not None:  # internal: one fast step in this fresh process, then the peak RSS
        cfg = Config.from_dict(json.loads(a.probe_memory))
        adjoint_step(*step_args(cfg, [1], a.batch))
        print(json.dumps({"peak_rss_mb": _peak_rss_mb()}))
        return 0
    try:
        if a.seeds_batched < 2:
            raise config.UserError(f"--seeds-batched: must be at least 2, got {a.seeds_batched}")
        cfg = config.resolve(a.profile, a.set)
        dev = None if a.device is None else resolve_device(a.device)
        ks = _seed_counts(a.device_seeds)
    except config.UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    load, ncpu = os.getloadavg()[0], os.cpu_count() or 1
    if load > 0.5 * ncpu:
        _log(f"warning: load average {load:.1f} on {ncpu} CPUs; other processes will skew the times (an "
             f"intra-op thread pool suffers most: it waits for a descheduled thread at every product)")
    t = time.perf_counter()
    if dev is not None:
        for d in device_case(cfg, dev, ks, batch=a.batch):
            print(json.dumps(d), flush=True)
        _log(f"total {time.perf_counter() - t:.1f} s")
        return 0
    run(cfg, quick=a.quick, batch=a.batch, emit=lambda d: print(json.dumps(d), flush=True), k=a.seeds_batched)
    _log(f"total {time.perf_counter() - t:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
