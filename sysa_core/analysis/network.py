"""What the recurrent network G determines on its own, analysed once per G.

With no bias and no output feedback the autonomous dynamics tau dh/dt = -h + g tanh(h) G' do not
depend on I or w: their fixed points (a census, analysis.census), the modes around them, the
spontaneous activity, its PCs and its regime (analysis.regime), and its largest Lyapunov exponent
are properties of G. Seeds of the seed-compatible initialisation all share the G drawn from seed 1,
so a run analyses it once and shows it once; `load_or_analyse` caches it in the run's folder
under a key of G's bytes, g, tau, dt, the dtype, the analysis settings and the code.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import torch

from .. import files, runtime
from ..config import Config
from ..model import run
from . import census, dynamics, pca, regime


@dataclass
class NetworkAnalysis:
    """spontaneous / spontaneous_f64: the PCs of the spontaneous activity simulated in the configured
    dtype and in float64; census: the fixed points of the autonomous flow (analysis.census);
    lyapunov: the largest Lyapunov exponent of the spontaneous activity from several tangent
    vectors aligned over a discarded transient (dynamics.Lyapunov); regime: what the spontaneous
    activity settles into over the exponent's window (analysis.regime); key: the cache key (it
    changes with the code too); G_digest: G's identity, which tells whether two networks share G."""

    spontaneous: pca.PCA
    spontaneous_f64: pca.PCA
    census: census.Census
    lyapunov: dynamics.Lyapunov
    regime: regime.Regime
    key: str
    G_digest: str

    @property
    def points(self) -> dynamics.Points:
        """The census's fixed points as dynamics.Points."""
        return self.census.points()

    def metrics(self) -> dict:
        """network_key, network_G, network_dim_spontaneous; the spontaneous exponent:
        network_lyapunov_spontaneous_per_s, its 95 % interval's half-width (_halfwidth_per_s: the
        blocks' t interval plus the spread over starting vectors), _se_per_s, _spread_per_s,
        _blocks, _vectors, _transient_ms, _window_ms, _decorrelation_ms (the lag after which the
        log growth per step first decorrelates); network_regime and network_regime_period_ms;
        the census: network_n_fixed_points, network_n_fixed_pairs (mirror pairs and the origin,
        each once), network_n_stable_fixed_points, network_census_starts,
        network_census_found_once, network_census_new_in_second_half; network_points (one record
        per point, census.Census.records)."""
        ly, c = self.lyapunov, self.census
        comp = c.completeness()
        return {"network_key": self.key, "network_G": self.G_digest,
                "network_dim_spontaneous": self.spontaneous.dimensionality,
                "network_lyapunov_spontaneous_per_s": ly.per_s,
                "network_lyapunov_spontaneous_halfwidth_per_s": ly.halfwidth_per_s,
                "network_lyapunov_spontaneous_se_per_s": ly.se_per_s,
                "network_lyapunov_spontaneous_spread_per_s": ly.spread_per_s,
                "network_lyapunov_spontaneous_blocks": int(ly.blocks.shape[1]),
                "network_lyapunov_spontaneous_vectors": int(len(ly.per_vector)),
                "network_lyapunov_spontaneous_transient_ms": ly.transient_ms,
                "network_lyapunov_spontaneous_window_ms": ly.window_ms,
                "network_lyapunov_spontaneous_decorrelation_ms": ly.decorrelation_ms,
                "network_regime": self.regime.kind, "network_regime_period_ms": self.regime.period_ms,
                "network_n_fixed_points": comp["n_points"], "network_n_fixed_pairs": comp["n_pairs"],
                "network_n_stable_fixed_points": int((c.n_unstable == 0).sum()),
                "network_census_starts": comp["n_starts"], "network_census_found_once": comp["found_once"],
                "network_census_new_in_second_half": comp["new_in_second_half"],
                "network_points": c.records()}


def _silent(G: torch.Tensor) -> dict:
    """A state dict with G and nothing else (I, w, h0 zero): what the spontaneous run needs."""
    n = G.shape[0]
    return {"G": G, "I": torch.zeros(n, 1), "w": torch.zeros(n, 1), "h0": torch.zeros(n)}


def G_digest(G: torch.Tensor) -> str:
    """G's identity: the sha256 of its float32 bytes (16 hex digits)."""
    return hashlib.sha256(G.detach().cpu().float().contiguous().numpy().tobytes()).hexdigest()[:16]


def network_key(cfg: Config, G: torch.Tensor) -> str:
    """What the network analysis depends on: G's bytes, g, tau, dt, the dtype, the spontaneous-run,
    Lyapunov and census settings, and the code."""
    g = hashlib.sha256(G.detach().cpu().float().contiguous().numpy().tobytes()).hexdigest()
    a, m = cfg.analysis, cfg.model
    blob = {"G": g, "g": m.g_G, "tau_ms": m.tau_ms, "dt_ms": m.dt_ms, "dtype": m.dtype, "spont_h0": a.spont_h0,
            "spont_T_ms": a.spont_T_ms, "spont_start_ms": a.spont_start_ms, "lyap_transient_ms": a.lyap_transient_ms,
            "lyap_window_ms": a.lyap_window_ms, "lyap_vectors": a.lyap_vectors, "census_starts": a.census_starts,
            "code": files.code_version()}
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:16]


def analyse_network(cfg: Config, G: torch.Tensor, threads: int | None = 1,
                    beside: bool | None = None) -> NetworkAnalysis:
    """The spontaneous PCs (configured dtype and float64); the largest Lyapunov exponent of the
    spontaneous activity (lyap_vectors tangent vectors aligned over lyap_transient_ms, measured
    over lyap_window_ms) and the regime of that window; the census of the flow's fixed points from
    census_starts starting states (census.starts: the spontaneous window, trials driven by random
    input vectors, scaled copies, random states). beside: the exponent and the regime are computed
    in a child process beside the rest (None: when this process may use two cores; runtime.beside;
    the same bits either way)."""
    with runtime.limited(threads), runtime.beside(beside) as pool:
        a = cfg.analysis
        sd = _silent(G.detach().cpu())
        dyn = dynamics.RateDynamics.from_model(cfg, sd)
        h0 = torch.full((G.shape[0],), a.spont_h0)
        spontaneous = pool.submit(_spontaneous_dynamics, cfg, dyn, h0)
        sp = pca.spontaneous_pca(cfg, sd)
        c64 = cfg.with_dtype("float64")
        start = cfg.steps(a.spont_start_ms)
        x = torch.zeros(1, cfg.steps(a.spont_T_ms), 1)
        _, r64, h64 = run(c64, sd, x, h0=h0, return_r=True, return_h=True)
        sp64 = sp if cfg.model.dtype == "float64" else pca.pca_of(pca.covariance(r64[0, start:].numpy(), ddof=1))
        starts = census.starts(dyn, h64[0, start:].numpy(), cfg.alpha, cfg.model.dt_ms, budget=a.census_starts)
        points = census.take(dyn, starts)
        ly, reg = spontaneous.result()
        return NetworkAnalysis(sp, sp64, points, ly, reg, network_key(cfg, G), G_digest(G))


def _spontaneous_dynamics(cfg: Config, dyn: dynamics.RateDynamics, h0: torch.Tensor):
    """The largest Lyapunov exponent of the spontaneous activity from h0 and the regime of its window."""
    a = cfg.analysis
    ly, states = dynamics.lyapunov_autonomous(
        dyn, h0.double().numpy(), cfg.alpha, cfg.model.dt_ms, cfg.steps(a.lyap_transient_ms),
        cfg.steps(a.lyap_window_ms), n_vectors=a.lyap_vectors,
        blocks=dynamics.lyapunov_blocks(a.lyap_window_ms, cfg.model.tau_ms), keep_states=True)
    return ly, regime.classify(states, cfg.model.dt_ms, cfg.model.tau_ms, ly.per_s, ly.halfwidth_per_s)
