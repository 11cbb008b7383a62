"""sysa_core.explore: a checkpoint probed with single pulses, with the configuration recorded beside it,
fast enough to follow a slider on the CPU."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from sysa_core import config, explore, model


@pytest.fixture(scope="module")
def quick_checkpoint(tmp_path_factory):
    """A 200-unit network of the quick profile, untrained, in the original's format without metadata (so
    its profile is named)."""
    folder = tmp_path_factory.mktemp("explore")
    torch.save(model.init_weights(config.resolve("quick").model, 3), folder / "sys_A3.pth")
    return folder / "sys_A3.pth"


def test_a_pulse_is_followed_beyond_the_scored_window_and_projected(smoke_train):
    probe = explore.Probe(smoke_train / "sys_A1_state.pth")
    assert probe.cfg.profile == "smoke"  # the configuration recorded beside the checkpoint
    short, long = probe.trial(30), probe.trial(90)
    c = probe.cfg
    assert short.t_ms[-1] >= c.task.Nt_ms + probe.extra_ms - c.model.dt_ms  # beyond the trained window
    assert np.isnan(short.target[c.steps(c.task.cost_onset_ms) - 1]) and short.target[-1] == pytest.approx(short.target_level)
    assert set(short.projections) == {"readout w", "duration", "PC1", "PC2"}
    assert long.plateau != short.plateau and long.target_level == pytest.approx(3 * short.target_level)
    assert "duration 90 ms" in explore.status(long)
    noisy = probe.trial(90, noise_std=0.1)
    assert not np.allclose(noisy.y, long.y) and np.array_equal(noisy.y, probe.trial(90, noise_std=0.1).y)


def test_an_update_takes_well_under_a_second_for_200_units(tmp_path, quick_checkpoint):
    import matplotlib

    matplotlib.use("Agg")
    probe = explore.Probe(quick_checkpoint, profile="quick")
    assert probe.cfg.model.hidden_size == 200
    probe.trial(150)
    t = time.perf_counter()
    tr = probe.trial(250, onset_ms=200, noise_std=0.05)
    probe.figure(tr).savefig(tmp_path / "f.png")
    assert time.perf_counter() - t < 1.0
