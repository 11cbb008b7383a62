"""sysa_core.pipeline.preflight: what is checked before a run or a training writes anything (the
folder, the configuration against the folder's), and the manifest."""
from __future__ import annotations

from dataclasses import replace

import pytest

from sysa_core import config, files
from sysa_core.errors import UserError
from sysa_core.pipeline import preflight
from sysa_core.pipeline.ensembles import ensembles


def test_the_output_folder_and_its_parents_are_made(tmp_path):
    out = tmp_path / "a" / "b"
    preflight.check_output_dir(out)
    assert out.is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="cannot create the folder"):
        preflight.check_output_dir(tmp_path / "file" / "out")


def test_the_manifest_records_the_configuration_without_the_seed():
    cfg = config.resolve("smoke", ["lr=0.5"], seed=7)
    m = preflight.manifest(cfg, ["lr=0.5"], [1, 2], True, states={"main": {"1": "pending"}})
    assert (m["kind"], m["profile"], m["overrides"], m["seeds"], m["control"]) == ("run", "smoke", ["lr=0.5"], [1, 2],
                                                                                     True)
    assert "seed" not in m["config"] and m["analysis_id"] == cfg.analysis_id()
    assert m["state"] == {"main": {"1": "pending"}} and m["code_version"]["sysa"]
    assert replace(config.Config.from_manifest(m), seed=7) == cfg


def test_a_folder_trained_with_another_configuration_is_refused(tmp_path):
    cfg = config.resolve("smoke")
    files.write_json(tmp_path / files.RUN_MARKER, preflight.manifest(cfg, [], [1], False))
    preflight.check_trained_with(tmp_path, ensembles(cfg, tmp_path, [], False), [1])  # the same: fine
    other_analysis = config.resolve("smoke", ["durations_ms=20,40"])
    preflight.check_trained_with(tmp_path, ensembles(other_analysis, tmp_path, [], False), [1])  # analysis only
    other = config.resolve("smoke", ["lr=0.5"])
    with pytest.raises(UserError, match="another training configuration; use --force"):
        preflight.check_trained_with(tmp_path, ensembles(other, tmp_path, [], False), [1])
    (tmp_path / files.RUN_MARKER).write_text("[1]")
    with pytest.raises(UserError, match="not a sysa manifest .expected a JSON object.; use --force"):
        preflight.check_trained_with(tmp_path, ensembles(cfg, tmp_path, [], False), [1])
