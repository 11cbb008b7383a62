"""The initialisation confound (issue 6, part 2; SPEC section 6).

With the seed-compatible initialisation I and w are drawn from the same normal stream, so
I_init = sqrt(N) w_init and their cosine is 1 before training. The trained I-w "correlation"
then mostly measures how far w (and I) moved from their start. These numbers say how far.
"""
from __future__ import annotations


from .analysis import weight_correlation
from .model import init_weights


def init_confound(cfg, sd: dict, seed: int | None = None) -> dict:
    """cos(I, w) (analysis.weight_correlation) at initialisation and after training; how far each moved.

    The initial weights are those of sysa_core.model.init_weights(cfg.model, seed) (default
    cfg.seed), i.e. of the configured initialisation scheme. Returns a flat dict of floats:
    weight_correlation_init = cos(I_init, w_init), weight_correlation = cos(I, w),
    input_drift_cosine = cos(I, I_init), output_drift_cosine = cos(w, w_init),
    input_drift_norm = |I - I_init| / |I_init|, output_drift_norm = |w - w_init| / |w_init|.
    """
    init = init_weights(cfg.model, cfg.seed if seed is None else seed)
    I, w = sd["I"].detach().cpu().double(), sd["w"].detach().cpu().double()
    I0, w0 = init["I"].double(), init["w"].double()
    return {
        "weight_correlation_init": weight_correlation(I0, w0),
        "weight_correlation": weight_correlation(I, w),
        "input_drift_cosine": weight_correlation(I, I0),
        "output_drift_cosine": weight_correlation(w, w0),
        "input_drift_norm": float((I - I0).norm() / I0.norm()),
        "output_drift_norm": float((w - w0).norm() / w0.norm()),
    }
