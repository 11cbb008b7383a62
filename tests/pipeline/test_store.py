"""sysa_core.pipeline.store: a model's and a network's analysis kept in the run's folders and read
back (recomputed only when something it depends on changed), the population's inputs."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import moved_weights

from sysa_core import config, files, model
from sysa_core.analysis import metrics, network, population
from sysa_core.pipeline import store

pytestmark = pytest.mark.usefixtures("single_threaded_torch")


@pytest.fixture(scope="module")
def small():
    cfg = config.resolve("smoke", ["hidden_size=40"], seed=2)
    return cfg, moved_weights(cfg.model, 2, noise_seed=9, dw=0.2)


@pytest.fixture(scope="module")
def net(small_cfg):
    return network.analyse_network(small_cfg, model.init_weights(small_cfg.model, 1)["G"])


def test_the_cache_is_read_back_and_recomputed_only_when_something_changed(small, tmp_path):
    cfg, sd = small
    first, computed = store.load_or_analyse_model(cfg, sd, tmp_path, "aa" * 32, epoch=3)
    assert computed and first.metrics["checkpoint_sha256"] == "aa" * 32 and first.metrics["epoch"] == 3
    assert json.loads(files.metrics_path(tmp_path).read_text()) == first.metrics
    mtimes = {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    again, computed = store.load_or_analyse_model(cfg, sd, tmp_path, "aa" * 32, epoch=3)
    assert not computed and again.metrics == first.metrics
    assert all(np.array_equal(again.arrays[k], first.arrays[k]) for k in first.arrays)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == mtimes  # nothing rewritten
    # another checkpoint, other analysis settings, or a damaged cache: computed again
    assert store.load_or_analyse_model(cfg, sd, tmp_path, "bb" * 32)[1]
    other = config.resolve("smoke", ["hidden_size=40", "durations_ms=30,60"], seed=2)
    redone, computed = store.load_or_analyse_model(other, sd, tmp_path, "bb" * 32)
    assert computed and set(redone.metrics["precision_by_duration"]) == {"30", "60"}
    files.arrays_path(tmp_path).write_bytes(b"not an npz file")
    assert store.load_or_analyse_model(other, sd, tmp_path, "bb" * 32)[1]


def _truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _garbled(data: bytes) -> bytes:  # the middle of the compressed arrays overwritten
    mid = len(data) // 2
    return data[:mid] + bytes(256) + data[mid + 256:]


@pytest.mark.parametrize("damage", [_truncated, _garbled])
def test_a_damaged_cache_is_computed_again_not_a_traceback(small, small_cfg, net, tmp_path, damage):
    """An analysis.npz or network-<key>.npz cut short (a full disk, a copy interrupted) or with
    damaged bytes is an absent cache: computed again and rewritten."""
    cfg, sd = small
    first, _ = store.load_or_analyse_model(cfg, sd, tmp_path, "aa" * 32)
    path = files.arrays_path(tmp_path)
    path.write_bytes(damage(path.read_bytes()))
    assert store.load_model(tmp_path, store.cache_key(cfg, "aa" * 32)) is None
    again, computed = store.load_or_analyse_model(cfg, sd, tmp_path, "aa" * 32)
    assert computed and again.metrics == first.metrics

    store.save_network(net, tmp_path)
    zpath = tmp_path / f"network-{net.key}.npz"
    zpath.write_bytes(damage(zpath.read_bytes()))
    assert store.load_network(tmp_path, net.key) is None
    G = model.init_weights(small_cfg.model, 1)["G"]
    assert store.load_or_analyse_network(small_cfg, G, tmp_path).metrics() == net.metrics()
    assert store.load_network(tmp_path, net.key) is not None  # written again


def test_a_seeds_damaged_arrays_are_one_line_naming_the_file(small, tmp_path):
    """The population reads each seed's analysis.npz (SeedArrays): one cut short is a UserError
    naming it, not a zip traceback."""
    from sysa_core.errors import UserError

    cfg, sd = small
    store.load_or_analyse_model(cfg, sd, tmp_path, "aa" * 32)
    arrays = store.SeedArrays(tmp_path)
    path = files.arrays_path(tmp_path)
    path.write_bytes(_truncated(path.read_bytes()))
    with pytest.raises(UserError, match="analysis.npz: cannot read") as info:
        arrays["eval_y"]
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    with pytest.raises(UserError, match="analysis.npz: cannot read"):
        store.SeedArrays(tmp_path)


def test_the_cache_round_trip_and_its_key(small_cfg, net, tmp_path):
    G = model.init_weights(small_cfg.model, 1)["G"]
    store.save_network(net, tmp_path)
    back = store.load_network(tmp_path, net.key)
    assert back.metrics() == net.metrics()
    np.testing.assert_array_equal(back.points.eigvals, net.points.eigvals)
    np.testing.assert_array_equal(back.spontaneous.eigvecs, net.spontaneous.eigvecs)
    assert store.load_or_analyse_network(small_cfg, G, tmp_path).metrics() == net.metrics()  # read, not recomputed
    assert store.load_network(tmp_path, "0" * 16) is None
    other = config.resolve("smoke", ["hidden_size=40", "spont_h0=0.2"])
    assert network.network_key(other, G) != net.key
    assert network.network_key(config.resolve("smoke", ["hidden_size=40", "lr=0.5"]), G) == net.key  # training
    assert network.network_key(small_cfg, G + 1e-3 * torch.ones_like(G)) != net.key


def test_one_G_analysed_under_two_code_versions_is_one_network(net, tmp_path):
    """Seeds analysed by two versions of the code cache the same G under two keys: the population
    report shows it once."""
    older = replace(net, key="0123456789abcdef")
    store.save_network(net, tmp_path)
    store.save_network(older, tmp_path)
    table = pd.DataFrame({"seed": [1, 2], "network_key": [older.key, net.key], "network_G": [net.G_digest] * 2})
    assert population.shares_G(table)
    (only,) = store.networks(tmp_path, table)
    assert only.G_digest == net.G_digest



def test_a_seeds_arrays_are_read_when_asked_for(tmp_path):
    arrays = {"a": np.arange(3.0), "b": np.eye(2)}
    files.seed_dir(tmp_path, 1).mkdir()
    store.save_model(metrics.ModelAnalysis({"seed": 1}, arrays), files.seed_dir(tmp_path, 1), "k" * 16)
    runs = store.runs({"main": (tmp_path, [1])})
    got = runs["main"][1]
    assert {"a", "b"} <= set(got) and len(got) == len(set(got))
    np.testing.assert_array_equal(got["b"], arrays["b"])
    assert store.load_model(files.seed_dir(tmp_path, 1), "k" * 16).metrics == {"seed": 1}
    assert store.load_model(files.seed_dir(tmp_path, 1), "x" * 16) is None  # another key: stale
