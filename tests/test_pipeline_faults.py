"""The pipeline isolates a failing seed, reports it, redoes only it once the cause is gone, and
refuses a second run writing to the same folder."""
from __future__ import annotations

import fcntl
import json
import subprocess
import sys


def sysa(*args):
    return subprocess.run([sys.executable, "-m", "sysa_core", *args], capture_output=True, text=True, timeout=600)


def test_failed_seed_is_isolated_marked_and_redone_alone(tmp_path):
    out = tmp_path / "run"
    bad = out / "seed_2" / "sys_A2_state.pth"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"this is not a checkpoint")  # the cause: a corrupt file in seed 2's folder

    res = sysa("run", "--profile", "smoke", "--seeds", "1-2", "--out", str(out), "--quiet")
    assert res.returncode == 1
    assert "1/2 seeds complete; failed: 2" in res.stderr
    rec2 = json.loads((out / "seed_2" / "pipeline.json").read_text())
    assert rec2["status"] == "failed" and "sys_A2_state.pth" in rec2["error"]
    assert json.loads((out / "seed_1" / "pipeline.json").read_text())["status"] == "complete"
    # the failed notebook was kept, with papermill's error banner, and the index links it
    train_nb = (out / "seed_2" / "train.ipynb").read_text()
    assert "papermill-error-cell" in train_nb
    index = (out / "index.html").read_text()
    assert 'class="failed"' in index and 'href="seed_2/train.html"' in index
    # the population report covers the seed that succeeded
    assert (out / "population.csv").read_text().splitlines()[1].startswith("1,")

    seed1_files = {p: p.stat().st_mtime_ns for p in (out / "seed_1").iterdir()}
    bad.unlink()  # remove the cause
    res = sysa("run", "--profile", "smoke", "--seeds", "1-2", "--out", str(out), "--quiet")
    assert res.returncode == 0, res.stderr
    assert {p: p.stat().st_mtime_ns for p in (out / "seed_1").iterdir()} == seed1_files  # seed 1 untouched
    assert json.loads((out / "seed_2" / "pipeline.json").read_text())["status"] == "complete"
    assert len((out / "population.csv").read_text().splitlines()) == 3


def test_second_run_on_the_same_folder_refuses(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    with open(out / ".sysa.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a run in progress holds this lock
        res = sysa("run", "--profile", "smoke", "--seeds", "1", "--out", str(out))
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [f"sysa: error: {out}: another sysa run is writing to this folder"]
    assert not (out / "seed_1").exists()
