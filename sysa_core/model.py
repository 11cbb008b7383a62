"""The network ("Net1", SPEC section 1): initialisation and the reference forward pass."""
from __future__ import annotations

import hashlib

import torch
from torch import nn

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


class Net1(nn.Module):
    """Continuous-time rate RNN. Parameters G, I, w, h0 in the original's order; only I and
    w require gradients (the original's Adam was built over all four, with state for I, w)."""

    def __init__(self, cfg: Config, weights: dict[str, torch.Tensor] | None = None):
        super().__init__()
        self.cfg = cfg
        dtype = DTYPES[cfg.model.dtype]
        wts = weights if weights is not None else init_weights(cfg.model, cfg.seed)
        self.G = nn.Parameter(wts["G"].detach().clone().to(dtype), requires_grad=False)
        self.I = nn.Parameter(wts["I"].detach().clone().to(dtype))
        self.w = nn.Parameter(wts["w"].detach().clone().to(dtype))
        self.h0 = nn.Parameter(wts["h0"].detach().clone().to(dtype), requires_grad=False)

    @property
    def alpha(self) -> float:
        return self.cfg.alpha

    def weights(self) -> dict[str, torch.Tensor]:
        """Detached copies of the four tensors."""
        return {k: v.detach().clone() for k, v in self.state_dict().items()}

    def forward(self, x_btd: torch.Tensor, h0: torch.Tensor | None = None,
                return_h: bool = False, return_r: bool = False):
        """The reference Euler loop of SPEC section 1 (autograd-friendly).

        x_btd: input (batch, T, input_size). h0: optional initial state (N,) or (batch, N);
        default the model's h0. Returns y (batch, T, output_size), plus the h and r
        trajectories (batch, T, N) when asked for.
        """
        g, a = self.cfg.model.g_G, self.alpha
        B, T, _ = x_btd.shape
        h = (self.h0 if h0 is None else h0).to(self.G.dtype).expand(B, -1)
        ys, hs, rs = [], [], []
        for t in range(T):
            h = h + a * (-h + g * torch.tanh(h) @ self.G.T + x_btd[:, t] @ self.I.T)
            r = torch.tanh(h)
            ys.append(r @ self.w)
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
