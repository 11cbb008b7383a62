"""sysa_core.pipeline.tables: the tables the notebooks show read their numbers from the metrics
(the improvement over untrained as the analysis stored it, the trained window from the configuration)."""
from __future__ import annotations

import json

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
    assert prec.loc["mean inside the trained range", "untrained / trained"] == ratio
    assert tables.mechanism(m).data.loc["in-range precision, × better than untrained", "value"] == ratio
    hold = tables.hold(m, cfg).data
    assert list(hold["through the trained window"]) == [
        m["plateau_hold_ms_by_duration"][str(d)] >= cfg.trained_window_ms for d in durations]
