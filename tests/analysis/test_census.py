"""The fixed-point census (sysa_core.analysis.census) on systems whose fixed points are known.

Decoupled units, tau dh_i/dt = -h_i + g a_i tanh(h_i) with g a_i > 1, have exactly three fixed
values per unit (0 and +-h*_i, the roots of h = g a_i tanh(h)): 3^N fixed points, each with one
growing mode per unit at 0 (slope g a_i - 1 > 0) and decaying ones elsewhere."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import brentq

from sysa_core.analysis import census, dynamics


def _decoupled(a, g=1.0):
    return dynamics.RateDynamics(np.diag(a), g, 100.0, "tanh")


def _known_points(a, g=1.0):
    roots = [brentq(lambda h, ai=ai: h - g * ai * np.tanh(h), 1e-3, 10 * ai) for ai in a]
    return np.array(list(itertools.product(*[(-r, 0.0, r) for r in roots])))


def _random_starts(n, m, scale, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((m, n)) * scale


@pytest.mark.parametrize("a", [(1.5, 2.0, 3.0), (1.2, 1.8, 2.5, 4.0)])
def test_every_fixed_point_of_a_known_system_is_found_with_its_unstable_modes(a, single_threaded_torch):
    known = _known_points(a)
    assert len(known) > 8  # more than the network analysis kept before
    c = census.take(_decoupled(a), _random_starts(len(a), 400, 2.5))
    assert len(c) == len(known)
    for p in known:
        d = np.linalg.norm(c.h - p, axis=1)
        k = int(np.argmin(d))
        assert d[k] < 1e-9
        assert c.n_unstable[k] == int((p == 0).sum())  # one growing mode per unit at 0
    assert c.residual.max() < 1e-12
    comp = c.completeness()
    assert comp["n_points"] == len(known) and comp["n_pairs"] == (len(known) + 1) // 2
    assert comp["n_starts"] == 400


def test_mirror_images_are_added_and_counted_as_one_pair(single_threaded_torch):
    a = (1.5, 2.0, 3.0)
    known = _known_points(a)
    positive = known[(known >= 0).all(axis=1)]  # the 8 points in the closed positive orthant
    rng = np.random.default_rng(1)
    c = census.take(_decoupled(a), np.repeat(positive, 3, axis=0) + 1e-3 * rng.standard_normal((24, 3)))
    expected = np.unique(np.vstack([positive, -positive]), axis=0)  # 15: the origin is its own mirror
    assert len(c) == len(expected) == 15
    for p in expected:
        assert np.linalg.norm(c.h - p, axis=1).min() < 1e-9
    for k in range(len(c)):
        j = int(np.argmin(np.linalg.norm(c.h + c.h[k], axis=1)))
        assert c.orbit[k] == c.orbit[j] and c.n_unstable[k] == c.n_unstable[j] and c.found[k] == c.found[j]
    origin = int(np.argmin(c.norm))
    assert c.norm[origin] == 0 and c.n_unstable[origin] == 3


def test_completeness_reports_points_found_once_and_new_in_the_second_half(single_threaded_torch):
    a = (1.5, 2.0, 3.0)
    target = _known_points(a)[[0, 4, 13, 26]]  # four points: starts right on them
    starts = np.vstack([target[[0, 1]], target[[0, 2]]]) + 1e-3
    c = census.take(_decoupled(a), starts)
    comp = c.completeness()
    # orbits: target 0 & 26 are one pair (found 2x), target 4 once in the first half,
    # target 13 (the origin) once in the second half
    assert comp["found_once"] == 2 and comp["new_in_second_half"] == 1


def test_a_linear_system_has_only_the_origin(single_threaded_torch):
    rng = np.random.default_rng(2)
    G = rng.standard_normal((20, 20)) / np.sqrt(20) * 0.5
    c = census.take(dynamics.RateDynamics(G, 1.0, 100.0, "linear"), rng.standard_normal((16, 20)))
    assert len(c) == 1 and c.norm[0] == 0 and c.n_unstable[0] == 0


def test_the_census_of_the_originals_seed_1_G(reference_full):
    """`sysa evaluate` on the original's seed 1 reports G's census: at least 20 fixed points, among
    them the mirror pair at |h| = 15.77 and a point near |h| = 19 with a single unstable mode (an
    independent float64 search found both), with its completeness estimate."""
    m = reference_full
    pts = m["network_points"]
    assert m["network_n_fixed_points"] == len(pts) >= 20
    assert m["network_n_fixed_pairs"] == len({p["pair"] for p in pts})
    pairs = {}
    for p in pts:
        pairs.setdefault(p["pair"], []).append(p["norm"])
    assert any(len(n) == 2 and abs(n[0] - 15.77) < 0.005 for n in pairs.values())  # h and -h, |h| = 15.77
    assert any(abs(p["norm"] - 19.0) < 0.1 and p["n_unstable"] == 1 for p in pts)
    assert all(p["residual"] < census.F_TOL for p in pts)
    assert m["network_census_starts"] == 512
    assert 0 <= m["network_census_found_once"] <= m["network_n_fixed_pairs"]
    assert 0 <= m["network_census_new_in_second_half"] <= m["network_n_fixed_pairs"]
    # the memory trajectories reach G's flow too: their fixed points are united with the census
    assert m["fixed_points_with_memory"] >= m["network_n_fixed_points"]
