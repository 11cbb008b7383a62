"""What the recurrent network G determines on its own, analysed once per G.

With no bias and no output feedback the autonomous dynamics tau dh/dt = -h + g tanh(h) G' do not
depend on I or w: their fixed and slow points, the modes around the fixed points, the spontaneous
activity and its PCs, and the largest Lyapunov exponent along the spontaneous activity are
properties of G. Seeds of the seed-compatible initialisation all share the G drawn from seed 1,
so a run analyses it once and shows it once; `load_or_analyse` caches it in the run's folder
under a key of G's bytes, g, tau, dt, the dtype, the spontaneous-run settings and the code.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import torch

from .. import files
from ..config import Config
from ..model import run
from ..runtime import limited
from . import dynamics, pca

#: spontaneous-run states used as starting points of the fixed-point search (and their negatives:
#: the flow is odd, F(-h) = -F(h), so its points come in pairs, besides the origin)
N_STARTS = 6


@dataclass
class NetworkAnalysis:
    """spontaneous / spontaneous_f64: the PCs of the spontaneous activity simulated in the configured
    dtype and in float64; points: the fixed and slow points of the autonomous flow; lyapunov_per_s:
    the largest finite-time Lyapunov exponent along the spontaneous activity's window (1/s), its
    standard error and the blocks it comes from; key: the cache key (it changes with the code too);
    G_digest: G's identity (G_digest), which tells whether two networks share G."""

    spontaneous: pca.PCA
    spontaneous_f64: pca.PCA
    points: dynamics.Points
    lyapunov_per_s: float
    lyapunov_se_per_s: float
    lyapunov_blocks: int
    key: str
    G_digest: str

    def metrics(self) -> dict:
        """network_key, network_G, network_dim_spontaneous, network_lyapunov_spontaneous_per_s,
        network_n_fixed_points, network_n_slow_points, network_points (one record per point,
        dynamics.Points.records)."""
        return {"network_key": self.key, "network_G": self.G_digest,
                "network_dim_spontaneous": self.spontaneous.dimensionality,
                "network_lyapunov_spontaneous_per_s": self.lyapunov_per_s,
                "network_lyapunov_spontaneous_se_per_s": self.lyapunov_se_per_s,
                "network_lyapunov_spontaneous_blocks": self.lyapunov_blocks,
                "network_n_fixed_points": int(self.points.fixed.sum()),
                "network_n_slow_points": int((~self.points.fixed).sum()),
                "network_points": self.points.records()}


def _silent(G: torch.Tensor) -> dict:
    """A state dict with G and nothing else (I, w, h0 zero): what the spontaneous run needs."""
    n = G.shape[0]
    return {"G": G, "I": torch.zeros(n, 1), "w": torch.zeros(n, 1), "h0": torch.zeros(n)}


def G_digest(G: torch.Tensor) -> str:
    """G's identity: the sha256 of its float32 bytes (16 hex digits)."""
    return hashlib.sha256(G.detach().cpu().float().contiguous().numpy().tobytes()).hexdigest()[:16]


def network_key(cfg: Config, G: torch.Tensor) -> str:
    """What the network analysis depends on: G's bytes, g, tau, dt, the dtype, the spontaneous-run
    settings, and the code."""
    g = hashlib.sha256(G.detach().cpu().float().contiguous().numpy().tobytes()).hexdigest()
    a, m = cfg.analysis, cfg.model
    blob = {"G": g, "g": m.g_G, "tau_ms": m.tau_ms, "dt_ms": m.dt_ms, "dtype": m.dtype, "spont_h0": a.spont_h0,
            "spont_T_ms": a.spont_T_ms, "spont_start_ms": a.spont_start_ms, "code": files.code_version()}
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:16]


def analyse_network(cfg: Config, G: torch.Tensor, threads: int | None = 1) -> NetworkAnalysis:
    """The spontaneous PCs (configured dtype and float64), the fixed and slow points of the flow
    (from the origin and from states of the spontaneous run and their negatives), and the largest
    Lyapunov exponent of the spontaneous activity."""
    with limited(threads):
        a = cfg.analysis
        sd = _silent(G.detach().cpu())
        sp = pca.spontaneous_pca(cfg, sd)
        c64 = cfg.with_dtype("float64")
        start = cfg.steps(a.spont_start_ms)
        x = torch.zeros(1, cfg.steps(a.spont_T_ms), 1)
        h0 = torch.full((G.shape[0],), a.spont_h0)
        _, r64, h64 = run(c64, sd, x, h0=h0, return_r=True, return_h=True)
        sp64 = sp if cfg.model.dtype == "float64" else pca.pca_of(pca.covariance(r64[0, start:].numpy(), ddof=1))
        dyn = dynamics.RateDynamics.from_model(cfg, sd)
        h = h64.numpy()
        # finite-time, over the window; the tangent vector aligns from the run's start
        n_blocks = dynamics.lyapunov_blocks(a.spont_T_ms - a.spont_start_ms, cfg.model.tau_ms)
        lam, blocks = dynamics.lyapunov_max(dyn, h, cfg.alpha, cfg.model.dt_ms, transient_steps=start,
                                            blocks=n_blocks)
        lyap, lyap_se = float(lam[0]), float(dynamics.lyapunov_se(blocks)[0])
        window = h[0, start:]
        picks = window[np.linspace(0, len(window) - 1, N_STARTS).round().astype(int)]
        starts = np.vstack([np.zeros((1, dyn.n)), picks, -picks])
        points = dynamics.find_points(dyn, starts, max_points=8)
        return NetworkAnalysis(sp, sp64, points, lyap, lyap_se, n_blocks, network_key(cfg, G), G_digest(G))
