"""The network (README, Definitions 1): initialisation, the Euler update, and the forward
simulations built on it (the autograd-friendly reference loop and the fast no-gradient loop
every analysis uses).

Update, batch-major row vectors, for t = 0 .. T-1:

    h <- h + alpha * (-h + g * r G' + x_t I'),   r = phi(h) (tanh),   y_t = r_t w

`euler_step` is the one place this update is written.
"""
from __future__ import annotations

import hashlib
from typing import Callable, Sequence

import torch

from .config import Config, ModelConfig

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def derive_seed(seed: int, stream: str) -> int:
    """A 63-bit seed for a named random stream of a model, independent across streams."""
    digest = hashlib.sha256(f"sysa:{seed}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def generator(seed: int) -> torch.Generator:
    """A fresh CPU generator seeded with `seed` (never the global one)."""
    return torch.Generator().manual_seed(int(seed))


def init_weights(mcfg: ModelConfig, seed: int) -> dict[str, torch.Tensor]:
    """G (N x N), I (N x in), w (N x out), h0 (N), in float32 as the original drew them.

    seed_compatible: bit-exact with the original on PyTorch's CPU generator:
    w ~ N(0, 1/N) from seed, G ~ N(0, 1/N) from seed 1, I ~ N(0, 1) from seed again,
    so I = sqrt(N) * w at initialisation. independent: I and w from unrelated streams
    (and G from the seed too when G_per_seed).
    """
    n = mcfg.hidden_size
    std = n ** -0.5
    if mcfg.init == "seed_compatible":
        w = torch.empty(n, mcfg.output_size).normal_(std=std, generator=generator(seed))
        G = torch.empty(n, n).normal_(std=std, generator=generator(1))
        I = torch.empty(n, mcfg.input_size).normal_(generator=generator(seed))
    else:
        w = torch.empty(n, mcfg.output_size).normal_(std=std, generator=generator(derive_seed(seed, "w")))
        g_seed = derive_seed(seed, "G") if mcfg.G_per_seed else 1
        G = torch.empty(n, n).normal_(std=std, generator=generator(g_seed))
        I = torch.empty(n, mcfg.input_size).normal_(generator=generator(derive_seed(seed, "I")))
    if mcfg.h0_zero:
        h0 = torch.zeros(n)
    else:
        h0 = torch.empty(n).normal_(generator=generator(derive_seed(seed, "h0")))
    return {"G": G, "I": I, "w": w, "h0": h0}


def euler_step(h: torch.Tensor, r: torch.Tensor, G: torch.Tensor, xI: torch.Tensor | None, alpha: float,
               g: float, out: torch.Tensor | None = None) -> torch.Tensor:
    """One Euler step from state h (B, N) with rates r = phi(h): h + alpha (-h + g r G' + x_t I').

    xI: the input term x_t I' (B, N), or None when there is no input at this step. With
    out=None the result is a new tensor (autograd works through it); with a scratch tensor
    `out` (B, N), h is updated in place. Both do the same operations in the same order (the
    product, times g, minus h, plus the input, times alpha, plus h), so they give the same bits;
    this order reproduces the original's published precisions.
    """
    if out is None:
        drive = (r @ G.T) * g - h
        if xI is not None:
            drive = drive + xI
        return h + drive * alpha
    torch.matmul(r, G.T, out=out)
    out.mul_(g).sub_(h)
    if xI is not None:
        out.add_(xI)
    return h.add_(out.mul_(alpha))


@torch.no_grad()
def simulate(G: torch.Tensor, I: torch.Tensor, w: torch.Tensor, h0: torch.Tensor, x_btd: torch.Tensor,
             alpha: float, g: float, *, return_r: bool = False, return_h: bool = False, record_from: int = 0,
             phi: Callable[[torch.Tensor], torch.Tensor] = torch.tanh, noise_std: float | Sequence[float] = 0.0,
             noise: torch.Generator | Sequence[torch.Generator] | None = None):
    """The forward pass without gradients, in the dtype and on the device of G.

    G (N, N), I (N, 1), w (N, 1), h0 (N,) or (B, N), x_btd (B, T, 1). Returns y (B, T), followed
    by the rates r (B, T', N) and the states h (B, T', N) of steps record_from .. T-1 when asked
    for. phi: the rate function (tanh; another one only for constructed test systems).
    noise_std: independent Gaussian noise of this standard deviation added to every unit's state
    after every step, drawn from the generator `noise` (for perturbation analyses; 0: none); or a
    sequence of standard deviations and one of as many generators, one of each per equal block of
    the B rows (several noise levels in one simulation, each row getting the draws it would get
    in a simulation of its block alone).
    """
    B, T, _ = x_btd.shape
    N = G.shape[0]
    dtype, dev = G.dtype, G.device
    h = h0.to(dev, dtype).expand(B, N).clone()
    buf = torch.empty(B, N, dtype=dtype, device=dev)
    x_t = x_btd[:, :, 0].to(dev, dtype)
    has_input = (x_t != 0).any(dim=0).tolist()
    I_row = I[:, 0].to(dev, dtype)
    w_col = w[:, 0].to(dev, dtype)
    keep = T - record_from
    rates = torch.empty(keep, B, N, dtype=dtype, device=dev) if return_r else None
    states = torch.empty(keep, B, N, dtype=dtype, device=dev) if return_h else None
    y = torch.empty(T, B, dtype=dtype, device=dev)
    spare = torch.empty(2, B, N, dtype=dtype, device=dev)  # rates of steps not kept, in turn (the next step reads them)
    r = phi(h)
    if isinstance(noise_std, (int, float)):
        noise_std, noise = [noise_std], [noise]
    if len(noise_std) != len(noise) or B % len(noise_std):
        raise ValueError(f"{len(noise_std)} noise levels and {len(noise)} generators for {B} rows")
    n_block = B // len(noise_std)
    noisy = [(h[i * n_block:(i + 1) * n_block], float(sd), gen) for i, (sd, gen) in enumerate(zip(noise_std, noise))
             if sd]
    # from h = 0 and without input the state stays exactly 0 (0 + alpha (-0 + g phi(0) G' + 0) with
    # phi(0) = 0): the steps before the first input are filled in, not simulated
    t_start = 0
    if not noisy and not bool(h.any()) and not bool(r.any()):
        t_start = next((t for t, a in enumerate(has_input) if a), T)
        y[:t_start] = 0.0
        for kept in (rates, states):
            if kept is not None and t_start > record_from:
                kept[:t_start - record_from] = 0.0
    for t in range(t_start, T):
        h = euler_step(h, r, G, x_t[:, t:t + 1] * I_row if has_input[t] else None, alpha, g, out=buf)
        for rows, sd, gen in noisy:  # rows: a view of h (euler_step updates h in place)
            rows.add_(torch.randn(len(rows), N, generator=gen, dtype=dtype).to(dev), alpha=sd)
        j = t - record_from
        r = rates[j] if return_r and j >= 0 else spare[t % 2]
        if phi is torch.tanh:
            torch.tanh(h, out=r)
        else:
            r.copy_(phi(h))
        if return_h and j >= 0:
            states[j].copy_(h)
        torch.mv(r, w_col, out=y[t])
    out = [y.T.contiguous()]
    if return_r:
        out.append(rates.permute(1, 0, 2))
    if return_h:
        out.append(states.permute(1, 0, 2))
    return out[0] if len(out) == 1 else tuple(out)


def run(cfg: Config, sd: dict, x_btd: torch.Tensor, h0: torch.Tensor | None = None, **kwargs):
    """Simulate the model (cfg, sd) on trials x (B, T, 1) from h0 (default the model's), in the
    configured dtype, on private copies of its tensors (the caller's stay untouched). kwargs go to
    `simulate` (return_r, return_h, record_from)."""
    dtype = DTYPES[cfg.model.dtype]
    wt = {k: v.detach().to("cpu", dtype).clone() for k, v in sd.items()}
    h = wt["h0"] if h0 is None else h0.to(dtype)
    return simulate(wt["G"], wt["I"], wt["w"], h, x_btd.to(dtype), cfg.alpha, cfg.model.g_G, **kwargs)


def reference_forward(G, I, w, h0, x_btd, alpha: float, g: float, return_h: bool = False, return_r: bool = False):
    """The plain loop of README, Definitions 1 (autograd-friendly): y (B, T, out), plus the h and r trajectories
    (B, T, N) when asked for. h0: (N,) or (B, N)."""
    B, T, _ = x_btd.shape
    h = h0.to(G.dtype).expand(B, -1)
    I_row = I[:, 0]
    ys, hs, rs = [], [], []
    for t in range(T):
        h = euler_step(h, torch.tanh(h), G, x_btd[:, t] * I_row, alpha, g)
        r = torch.tanh(h)
        ys.append(r @ w)
        if return_h:
            hs.append(h)
        if return_r:
            rs.append(r)
    out = [torch.stack(ys, 1)]
    if return_h:
        out.append(torch.stack(hs, 1))
    if return_r:
        out.append(torch.stack(rs, 1))
    return out[0] if len(out) == 1 else tuple(out)
