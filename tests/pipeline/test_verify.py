"""sysa_core.pipeline.verify: a seed is complete only when its outputs verify, and a damaged part
names the least a re-run must redo."""
from __future__ import annotations

from dataclasses import replace

from conftest import copy_run

from sysa_core import config, files
from sysa_core.pipeline import verify


def test_a_complete_run_verifies_and_each_damage_names_its_repair(smoke_run, tmp_path):
    run = copy_run(smoke_run, tmp_path / "run")
    assert {k: v.action for k, v in verify.check_run(run).items()} == {
        "main seed 1": "none", "main seed 2": "none", "control seed 1": "none", "control seed 2": "none",
        "population": "none"}
    cfg = replace(config.Config.from_manifest(files.read_json(run / files.RUN_MARKER)), seed=1)
    sdir = files.seed_dir(run, 1)
    (sdir / "pca.ipynb").unlink()
    assert verify.check_seed(sdir, cfg).action == "reanalyse"
    assert verify.check_seed(sdir, cfg, trained_only=True).action == "none"  # its training is complete
    files.loss_plot_path(sdir, 1).unlink()
    assert verify.check_seed(sdir, cfg, trained_only=True).action == "finish"
    files.checkpoint_path(sdir, 1).write_bytes(b"not a checkpoint")
    chk = verify.prepare(sdir, cfg, "seed 1", "sysa run")
    assert chk.action == "retrain" and not files.checkpoint_path(sdir, 1).exists()  # set aside, not deleted
    assert list(sdir.glob("sys_A1_state.pth.bad-*"))
    assert verify.check_seed(tmp_path / "nothing", cfg).action == "run"


def test_a_record_never_makes_check_or_repair_touch_a_file_outside_the_folder(tmp_path):
    from sysa_core.pipeline import verify

    victim = tmp_path / "victim.txt"
    victim.write_text("someone else's")
    folder = tmp_path / "run" / "seed_1"
    folder.mkdir(parents=True)
    chk = verify.SeedCheck()
    verify.check_outputs(folder, {"../../victim.txt": "0" * 64, "/etc/hostname": "0" * 64}, chk, lambda n: "reanalyse")
    assert chk.action == "reanalyse" and not chk.differing
    assert all("not a file of its folder" in p for p in chk.problems)
    verify.set_aside_files(chk.differing)
    assert victim.read_text() == "someone else's"
