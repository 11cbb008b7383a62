"""The study beside the original's published table (sysa_core.analysis.published), and the exact
Mann-Whitney p beyond enumerable sizes that its n = 20 + 20 needs (analysis.stats)."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from sysa_core import original
from sysa_core.analysis import published, stats


def _enumerated_p(x, y) -> float:
    """Two-sided p of |U - n_x n_y / 2| over every split of the pooled values (the definition)."""
    pooled = np.concatenate([x, y])
    n, k = len(pooled), len(x)
    idx = np.array(list(itertools.combinations(range(n), k)))
    mask = np.zeros((len(idx), n), dtype=bool)
    mask[np.arange(len(idx))[:, None], idx] = True
    greater = (pooled[:, None] > pooled[None, :]).astype(float)  # greater[i, j]: value i exceeds value j
    u = np.einsum("si,ij,sj->s", mask.astype(float), greater, (~mask).astype(float))
    centre = k * (n - k) / 2
    u0 = float((x[:, None] > y[None, :]).sum())
    return float(np.mean(np.abs(u - centre) >= abs(u0 - centre) - 1e-9))


@pytest.mark.parametrize("shift", [0.0, 0.6, 1.5])
def test_mann_whitney_beyond_enumeration_is_the_exact_p(shift):
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=10) + shift, rng.normal(size=10)  # C(20, 10) = 184,756 splits > N_RESAMPLES
    assert stats.N_RESAMPLES < 184_756
    r = stats.mann_whitney(x, y)
    assert r["exact"] is True
    assert r["p"] == pytest.approx(_enumerated_p(x, y), rel=1e-9)


def test_mann_whitney_with_ties_beyond_enumeration_is_a_seeded_sample():
    x = np.repeat([1.0, 2.0], 5)
    y = np.repeat([1.0, 3.0], 5)
    r = stats.mann_whitney(x, y)
    assert r["exact"] is False and 1 / (stats.N_RESAMPLES + 1) <= r["p"] <= 1


def _main_like(table, scale=1.0, jitter=1e-6):
    """A main ensemble whose values are the published ones (scaled), made distinct."""
    rng = np.random.default_rng(0)
    rows = []
    for s, r in table.items():
        rows.append({"seed": s, "precision": r["precision"] * scale * (1 + jitter * rng.normal()),
                     "weight_correlation": r["weight_correlation"] * (1 + jitter * rng.normal()),
                     "pr_input_l1": 3.9 + rng.random(), "pr_output_l1": 2.5 + rng.random(),
                     "weight_correlation_init": 1.0})
    return pd.DataFrame(rows)


def test_the_same_distribution_is_not_told_apart_and_a_shifted_one_is():
    table = original.published_table()
    same = published.distributions(table, _main_like(table))
    assert list(same["measure"]) == list(published.MEASURES)
    tested = same[same["tested"]]
    assert list(tested["measure"]) == ["precision", "weight_correlation"]
    assert (tested["exact"] == True).all() and (tested["p"] > 0.9).all()  # noqa: E712
    assert (same.loc[~same["tested"], "why_untested"].str.contains("signs of its eigenvectors")).all()
    assert same.loc[~same["tested"], "p_holm"].isna().all()
    worse = published.distributions(table, _main_like(table, scale=3.0))
    row = worse.set_index("measure").loc["precision"]
    assert row["p"] < 1e-6 and row["prob_greater"] > 0.95
    assert row["p_holm"] == pytest.approx(min(1.0, 2 * row["p"]))
    assert row["sysa_median"] == pytest.approx(3 * np.median([r["precision"] for r in table.values()]), rel=1e-4)


def test_side_by_side_pairs_the_seeds_in_both():
    table = original.published_table()
    main = _main_like(table).iloc[[4, 0, 2]]
    rows = published.side_by_side(table, main)
    assert list(rows["seed"]) == [1, 3, 5]
    assert rows.loc[0, "precision_published"] == table[1]["precision"]
    assert rows.loc[2, "weight_correlation_sysa"] == pytest.approx(table[5]["weight_correlation"], rel=1e-5)
