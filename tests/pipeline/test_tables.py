"""sysa_core.pipeline.tables: the tables the notebooks show read their numbers from the metrics
(the improvement over untrained as the analysis stored it, the trained window from the configuration)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import t as t_dist

from sysa_core import config, files
from sysa_core.pipeline import tables


def test_the_tables_read_the_metrics(smoke_run):
    m = json.loads(files.metrics_path(files.seed_dir(smoke_run, 1)).read_text())
    cfg = config.Config.from_manifest(json.loads((smoke_run / files.RUN_MARKER).read_text()))
    prec = tables.precision(m, cfg).data
    durations = [int(d) for d in m["precision_by_duration"]]
    assert [prec.loc[d, "in trained range"] for d in durations] == [cfg.in_trained_range(d) for d in durations]
    ratio = m["improvement_over_untrained"]
    assert ratio == m["precision_untrained_trained_range"] / m["precision_trained_range"]
    inside = "inside the trained range (MSE: mean; relative error: root mean square)"
    assert prec.loc[inside, "untrained / trained"] == ratio
    rel = [m["relative_error_by_duration"][str(d)] for d in durations if cfg.in_trained_range(d)]
    assert prec.loc[inside, "relative error (RMS / target)"] == pytest.approx(np.sqrt(np.mean(np.square(rel))))
    assert prec.loc[inside, "precision loss (MSE, a.u.²)"] == pytest.approx(
        np.mean([m["precision_by_duration"][str(d)] for d in durations if cfg.in_trained_range(d)]))
    mech = tables.mechanism(m).data
    assert mech.loc["in-range precision, × better than untrained", "value"] == ratio
    from sysa_core.analysis.mechanism import NOISE_DRAWS

    noise = [i for i in mech.index if i.startswith("in-range precision with state noise")]
    assert noise and all(f"mean of {NOISE_DRAWS} seeded draws per duration" in i for i in noise)
    assert "PCs the readout needs to reproduce the output (within 10 % of the target at every step)" in mech.index
    for d, v in m["lyapunov_per_s_by_duration"].items():  # the interval the prose reads its sign from
        half = (float(t_dist.ppf(0.975, m["lyapunov_blocks"] - 1)) * m["lyapunov_se_per_s_by_duration"][d]
                + m["lyapunov_start_spread_per_s_by_duration"][d])
        label = (f"finite-time Lyapunov exponent along the {d} ms memory trajectory (1/s, ± its 95 % interval, "
                 "widened by how far other starting vectors land)")
        assert mech.loc[label, "value"] == (f"{v:.3g} ± {half:.2f}" if half >= 1 else f"{v:.3g} ± {half:.2g}")
    hold = tables.hold(m, cfg).data
    assert list(hold["through the trained window"]) == [
        m["plateau_hold_ms_by_duration"][str(d)] >= cfg.trained_window_ms for d in durations]
    with np.load(files.arrays_path(files.seed_dir(smoke_run, 1))) as z:
        A = {k: z[k] for k in z.files}
    share = tables.hold(m, cfg, A).data["share of the trained window inside the band"]
    onset, end = cfg.task.cost_onset_ms, cfg.task.cost_onset_ms + cfg.trained_window_ms
    for i, d in enumerate(A["eval_durations_ms"]):  # step by step, each step's target from the arrays
        steps = [j for j, t in enumerate(A["eval_t_ms"]) if onset <= t < end]
        inside = [abs(float(A["eval_y"][i, j]) - float(A["eval_target"][i, j]))
                  <= 0.1 * abs(float(A["eval_target"][i, j])) for j in steps]
        assert share[int(d)] == pytest.approx(sum(inside) / len(steps))
    assert all(share[int(d)] > 0 for d in durations if m["plateau_hold_ms_by_duration"][str(d)] > 0)
    assert "share of the trained window inside the band" not in tables.hold(m, cfg).data


def test_the_mechanisms_table_gives_each_in_range_exponent_with_its_half_width():
    import pandas as pd

    both = pd.DataFrame({"ensemble": ["main", "main", "control"], "seed": [1, 2, 1],
                         "memory_mechanism": ["transient"] * 3, "lyapunov_in_range_per_s": [0.4412, -0.05, None],
                         "lyapunov_in_range_halfwidth_per_s": [0.3081, 0.52, None]})
    shown = tables.mechanisms(both).to_html()
    column = next(c for c in tables.mechanisms(both).data.columns if c.startswith("finite-time Lyapunov"))
    assert "over the in-range trials ± 95 % (1/s)" in column
    assert "+0.44 ± 0.31" in shown and "-0.05 ± 0.52" in shown and "–" in shown


def test_a_memory_exponent_whose_blocks_are_short_against_its_lag_says_its_interval_may_be_too_narrow():
    """Paper profile: a 2.5 s window in 3 blocks of 833 ms. A lag of 683 ms (blocks under 2× it) is
    flagged, one of 412 ms is not; without the configuration nothing is said of the blocks."""
    cfg = config.resolve("paper")
    m = {"memory_mechanism": "transient", "improvement_over_untrained": 181.0, "plateau_state_speed_per_s": 1.9,
         "state_travel": 5.4, "readout_pcs_needed": 21, "precision_trained_range": 0.0028, "lyapunov_blocks": 3,
         "lyapunov_per_s_by_duration": {"50": 0.611, "300": 0.487},
         "lyapunov_se_per_s_by_duration": {"50": 0.23, "300": 0.4},
         "lyapunov_start_spread_per_s_by_duration": {"50": 0.28, "300": 0.45},
         "lyapunov_decorrelation_ms_by_duration": {"50": 412.0, "300": 683.0}}
    rows = tables.mechanism(m, cfg).data["value"]
    value = {d: next(v for k, v in rows.items() if f"along the {d} ms memory trajectory" in k) for d in ("50", "300")}
    half = float(t_dist.ppf(0.975, 2)) * 0.4 + 0.45
    assert value["300"] == f"0.487 ± {half:.2f} (may be too narrow: blocks under 2× the 683 ms lag)"
    assert "narrow" not in value["50"]
    assert not any("narrow" in str(v) for v in tables.mechanism(m).data["value"])
