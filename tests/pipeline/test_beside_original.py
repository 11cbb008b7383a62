"""The population report's section beside the original's published table: its prose says what the
numbers say (checked against hand-made samples of known outcome), its table and figure render."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sysa_core import original
from sysa_core.analysis import published
from sysa_core.pipeline import population_plots, prose, tables

PUB = original.published_table()


def _main(seeds, scale: float = 1.0, init=1.0) -> pd.DataFrame:
    """sysa's main seeds with the published values (precision times `scale`) and an initial cosine."""
    rows = [{"seed": s, "precision": PUB[s]["precision"] * scale, "weight_correlation": PUB[s]["weight_correlation"],
             "pr_input_l1": 100.0 + s, "pr_output_l1": 50.0 + s, "weight_correlation_init": init} for s in seeds]
    return pd.DataFrame(rows)


def _text(main):
    dist = published.distributions(PUB, main)
    return dist, prose.beside_original(dist, published.init_cosines(main), original.source(), tables.PUBLISHED_LABELS)


def test_the_same_values_are_not_told_apart_and_the_initial_draw_is_confirmed():
    dist, text = _text(_main(range(1, 7)))
    assert "within 0.0e+00, for all 6 seeds" in text
    assert text.count("no difference is detected at these n") == 2  # precision and the I-w cosine
    assert "Participation ratio of I: " in text and "not tested" in text
    assert original.source()["commit"][:12] in text
    assert set(dist.loc[dist.tested, "measure"]) == {"precision", "weight_correlation"}
    assert text.count("Seed by seed (6 seeds in both): Spearman rho = 1.00") == 2  # every value its published one
    assert text.count("sysa's seeds follow their published rows") == 2


def test_seeds_in_the_opposite_order_of_their_published_rows_are_named():
    main = _main(range(1, 7))
    p_same = published.distributions(PUB, main).set_index("measure").loc["weight_correlation", "p"]
    order = np.argsort(np.argsort([PUB[s]["weight_correlation"] for s in range(1, 7)]))
    main["weight_correlation"] = np.sort(main["weight_correlation"].to_numpy())[::-1][order]
    dist, text = _text(main)
    r = dist.set_index("measure").loc["weight_correlation"]
    assert r.rho_paired == pytest.approx(-1.0) and r.exact_paired and r.p_paired == pytest.approx(2 / 720)
    assert r.p == pytest.approx(p_same, rel=0.05)  # the same values as a sample (ties: a permutation p)
    assert "run against their published rows" in text


def test_a_shifted_sample_is_told_apart_and_a_wrong_initial_draw_is_named():
    main = _main(range(1, 7), scale=100.0)
    main.loc[2, "weight_correlation_init"] = 0.5
    dist, text = _text(main)
    r = dist.set_index("measure").loc["precision"]
    assert r.p_holm < 0.05 and r.prob_greater == 1.0
    assert "Precision (MSE, a.u.²): " in text and "the two differ" in text
    assert "1 of 6 seeds lie more than 1e-06 from 1" in text


def test_the_table_and_the_figure_render():
    main = _main(range(1, 7))
    dist = published.distributions(PUB, main)
    html = tables.beside_original(dist).to_html()
    assert "I–w cosine" in html and "6, 20" in html and "seed by seed: Spearman rho" in html
    fig = population_plots.beside_original(PUB, main, published.MEASURES, tables.PUBLISHED_LABELS)
    axes = fig.axes
    assert len(axes) == 4 and axes[0].get_yscale() == "log"
    assert all(ax.get_ylabel() for ax in axes)
    assert "seed" in tables.published_rows(published.side_by_side(PUB, main)).to_html()
    population_plots.plt.close(fig)


def test_the_answer_line_names_the_original_and_what_its_tests_say():
    """The index's answer carries the comparison with the original's table: both medians, the exact
    test's verdict worded as no more than it shows, and the seed-by-seed rank correlation."""
    dist = published.distributions(PUB, _main(range(1, 7)))
    line = prose.original_line(dist, tables.PUBLISHED_LABELS)
    assert line.startswith("Beside the original's published table (6 main seeds): ")
    assert line.count("no difference detected") == 2 and "does not show that there is none" in line
    assert line.count("seed by seed Spearman rho = 1.00 (Holm p = ") == 2  # exact at n = 6: a value, not a bound
    far = published.distributions(PUB, _main(range(1, 7), scale=100.0))
    assert "they differ" in prose.original_line(far, tables.PUBLISHED_LABELS)
