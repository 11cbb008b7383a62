"""A careful user's worst day, on real `sysa` processes: folders that are not sysa's, damaged and
interrupted run folders found by `sysa check` and repaired by a re-run, SIGKILL of a run (no process
of it survives), `sysa train` beside a running `sysa run`, a full disk, resources too large for the
machine. Every case ends in one line and an exit status, and no finished file is lost."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from conftest import (
    REPO,
    SMOKE_RUN,
    alive,
    assert_user_error,
    cli_env,
    cmdline,
    copy_run,
    descendants,
    locked,
    parse_json_lines,
    popen_cli,
    run_cli,
    wait_for,
)

from sysa_core import cli, files
from sysa_core.pipeline import verify
from sysa_core.pipeline.jobs import running_path

SMOKE = ["--profile", "smoke", "--threads", "1", "--no-batch-seeds", "--quiet"]


def _bytes(folder: Path) -> dict:
    return {p: p.read_bytes() for p in Path(folder).rglob("*") if p.is_file()}


def _metrics(run: Path, seed: int) -> dict:
    return json.loads((run / f"seed_{seed}" / "metrics.json").read_text())


def _check(run: Path) -> subprocess.CompletedProcess:
    return run_cli("check", run)


def test_a_folder_that_is_not_sysas_is_refused_untouched(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.json").write_text('{"mine": 1}\n')
    (out / "index.html").write_text("<p>my page</p>\n")
    before = _bytes(out)
    rc = cli.main(["run", "--profile", "smoke", "--seeds", "1", "--out", str(out)])
    assert_user_error(capsys.readouterr().err, rc, str(out), "not a sysa run", "sysa-run.json")
    rc = cli.main(["train", "--profile", "smoke", "--seeds", "1", "--out", str(out)])
    assert_user_error(capsys.readouterr().err, rc, str(out), "not a sysa run")
    assert _bytes(out) == before
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "index.html"]


def test_sysa_check_passes_a_complete_run_and_refuses_a_folder_that_is_not_one(smoke_run, tmp_path):
    res = _check(smoke_run)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "all 5 parts verify" in res.stderr and res.stdout.count(": complete") == 5
    res = _check(tmp_path)
    assert_user_error(res.stderr, res.returncode, str(tmp_path), "not a sysa run folder")


def test_a_corrupt_checkpoint_is_retrained_and_a_failing_seed_is_isolated_then_redone(smoke_run, tmp_path):
    """Seed 1's checkpoint is replaced by random bytes (a re-run retrains it to the same bits); seed
    2's analysis cannot be written (a folder stands where its arrays go): the seed fails alone, its
    failed notebook kept and linked, and the next run, the cause removed, redoes only seed 2."""
    run = copy_run(smoke_run, tmp_path / "run")
    ck = run / "seed_1" / "sys_A1_state.pth"
    ck.write_bytes(os.urandom(ck.stat().st_size))
    bad = run / "seed_2" / "analysis.npz"
    bad.unlink()
    bad.mkdir()
    res = _check(run)
    assert res.returncode == 1, res.stdout
    assert re.search(r"^main seed 1: sys_A1_state.pth: .*a re-run would: retrain", res.stdout, re.M), res.stdout
    assert re.search(r"^main seed 2: analysis.npz is missing or unreadable.*reanalyse", res.stdout, re.M), res.stdout

    args = ["run", "--profile", "smoke", "--seeds", "1-2", "--threads", "1", "--no-batch-seeds", "--quiet", "--out", run]
    res = run_cli(*args)
    assert res.returncode == 1
    assert "repairing seed 1: sys_A1_state.pth: " in res.stderr and "training it again" in res.stderr
    assert "1/2 seeds complete; failed: 2" in res.stderr
    assert list((run / "seed_1").glob("sys_A1_state.pth.bad-*")), "the bad checkpoint was not kept aside"
    assert ck.read_bytes() == (smoke_run / "seed_1" / "sys_A1_state.pth").read_bytes()
    assert _metrics(run, 1) == _metrics(smoke_run, 1)
    rec2 = json.loads((run / "seed_2" / "pipeline.json").read_text())
    assert rec2["status"] == "failed" and "analysis.npz" in rec2["error"]
    assert "papermill-error-cell" in (run / "seed_2" / "inspect.ipynb").read_text()
    index = (run / "index.html").read_text()
    assert 'class="failed"' in index and 'href="seed_2/inspect.html"' in index
    assert pd.read_csv(run / "population.csv")["seed"].tolist() == [1]  # the seed that succeeded

    seed1 = {p: p.stat().st_mtime_ns for p in (run / "seed_1").iterdir()}
    bad.rmdir()
    res = run_cli(*args)
    assert res.returncode == 0, res.stderr
    assert {p: p.stat().st_mtime_ns for p in (run / "seed_1").iterdir()} == seed1  # seed 1 untouched
    assert _metrics(run, 2) == _metrics(smoke_run, 2)
    assert pd.read_csv(run / "population.csv")["seed"].tolist() == [1, 2]
    assert _check(run).returncode == 0


def test_a_redo_killed_midway_is_found_and_finished_on_rerun(smoke_run, tmp_path):
    """A redo of seed 1 killed in its pca notebook, and the population report deleted: `sysa check`
    names both and the same command repairs both without training."""
    run = copy_run(smoke_run, tmp_path / "run")
    (run / "seed_1" / "metrics.json").unlink()
    pca = run / "seed_1" / "pca.ipynb"
    old = pca.stat().st_mtime_ns
    proc = popen_cli(*SMOKE_RUN, "--out", run)
    try:
        # the redo of seed 1 has begun writing its pca notebook: kill the run there
        wait_for(lambda: pca.exists() and pca.stat().st_mtime_ns != old, what="the pca notebook to start")
        procs = descendants(proc.pid)  # the notebooks' kernels
        assert any("ipykernel" in cmdline(p) for p in procs)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    wait_for(lambda: not any(alive(p) for p in procs), timeout=15, what="the run's kernels to end")
    assert not locked(run)
    rec = json.loads((run / "seed_1" / "pipeline.json").read_text())
    assert rec["status"] == "running"  # never taken for complete
    (run / "population.ipynb").unlink()  # and the population report is lost too
    res = _check(run)
    assert res.returncode == 1 and "main seed 1" in res.stdout, res.stdout
    assert "population: population.ipynb is missing" in res.stdout

    res = run_cli(*SMOKE_RUN, "--out", run)
    assert res.returncode == 0, res.stderr
    assert "repairing seed 1: its notebooks did not complete" in res.stderr
    assert "repairing the population report: population.ipynb is missing" in res.stderr
    assert verify.notebook_problem(pca) is None
    assert len([c for c in nbformat.read(pca, as_version=4).cells if c.get("execution_count")]) > 5
    assert _metrics(run, 1) == _metrics(smoke_run, 1)
    assert _check(run).returncode == 0


def test_a_train_killed_while_writing_its_final_files_finishes_them_on_rerun(smoke_train, tmp_path):
    """The state a kill between the last checkpoint and the final files leaves: the metadata says
    "running", the bare state dict and the plots are missing."""
    out = tmp_path / "train"
    shutil.copytree(smoke_train.parent, out, ignore=shutil.ignore_patterns(".sysa.lock"))
    sdir = out / "seed_1"
    meta = json.loads((sdir / "sys_A1_train.json").read_text())
    meta["status"] = "running"
    meta.pop("checkpoint_sha256")
    (sdir / "sys_A1_train.json").write_text(json.dumps(meta))
    for name in ("sys_A1.pth", "sys_A1_err.png", "sys_A1_param.png"):
        (sdir / name).unlink()
    ck = (sdir / "sys_A1_state.pth").read_bytes()
    res = _check(out)
    assert res.returncode == 1 and "training did not finish" in res.stdout and "sys_A1_err.png" in res.stdout

    res = run_cli("train", "--profile", "smoke", "--seeds", "1", "--out", out, "--quiet")
    assert res.returncode == 0, res.stderr
    assert "repairing seed 1" in res.stderr
    assert (sdir / "sys_A1_state.pth").read_bytes() == ck  # finished, not retrained
    for name in ("sys_A1.pth", "sys_A1_err.png", "sys_A1_param.png", "sys_A1_train.json"):
        assert (sdir / name).read_bytes() == (smoke_train / name).read_bytes() or name.endswith(".png"), name
        assert (sdir / name).stat().st_size > 0
    assert json.loads((sdir / "sys_A1_train.json").read_text())["status"] == "complete"
    assert _check(out).returncode == 0


def test_sysa_train_is_refused_while_sysa_run_holds_the_folder(tmp_path, capsys):
    out = tmp_path / "run"
    proc = popen_cli("run", *SMOKE, "--seeds", "1", "--out", out)
    try:
        wait_for(lambda: locked(out), what="the run to take its lock")
        rc = cli.main(["train", "--profile", "smoke", "--seeds", "1", "--out", str(out), "--quiet"])
        assert_user_error(capsys.readouterr().err, rc, str(out), "another sysa process is writing to this folder")
        rc = cli.main(["run", "--profile", "smoke", "--seeds", "1", "--out", str(out), "--quiet"])
        assert_user_error(capsys.readouterr().err, rc, "another sysa process is writing to this folder")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()


def test_the_control_folder_is_under_the_runs_lock(tmp_path):
    """While `sysa run --control` holds its folder, a `sysa train` into its control folder is refused
    in one line and writes nothing; the run then completes its control seed."""
    out = tmp_path / "run"
    proc = popen_cli("run", *SMOKE, "--seeds", "1", "--control", "--out", out)
    wait_for(lambda: locked(out), what="the run to take its lock")
    other = run_cli("train", "--profile", "smoke", "--seeds", "1", "--set", "model.init=independent",
                    "--out", out / "control", "--quiet")
    assert_user_error(other.stderr, other.returncode, "another sysa process is writing to", str(out))
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert not (out / "control" / files.RUN_MARKER).exists()
    assert verify.check_seed(out / "control" / "seed_1", _control_cfg()).action == "none"


def _control_cfg():
    from dataclasses import replace

    from sysa_core import config
    return replace(config.resolve("smoke", ["model.init=independent"]), seed=1)


def test_a_folder_whose_lock_is_held_is_reported_as_busy_even_before_its_manifest_exists(tmp_path, capsys):
    """The moment a run has taken its lock and is writing its first manifest (a temporary file beside
    the lock, no sysa-run.json yet), a second command hears that the folder is busy, not that it is
    someone else's."""
    out = tmp_path / "run"
    out.mkdir()
    (out / f".{files.RUN_MARKER}.x1y2.tmp").write_text("{")
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a+'); "
                               "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(120)",
                               str(out / files.LOCK_NAME)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = _bytes(out)
        for cmd in ("run", "train"):
            rc = cli.main([cmd, "--profile", "smoke", "--seeds", "1", "--out", str(out), "--quiet"])
            assert_user_error(capsys.readouterr().err, rc, str(out), "another sysa process is writing to this folder")
        assert _bytes(out) == before
    finally:
        holder.kill()
        holder.communicate()
    rc = cli.main(["run", "--profile", "smoke", "--seeds", "1", "--out", str(out), "--quiet"])
    assert_user_error(capsys.readouterr().err, rc, str(out), "is not a sysa run")  # free again: not sysa's


def _can_mount_tmpfs() -> bool:
    if not shutil.which("unshare"):
        return False
    res = subprocess.run(["unshare", "--mount", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"],
                         capture_output=True)
    return res.returncode == 0


needs_tmpfs = pytest.mark.skipif(not _can_mount_tmpfs(), reason="cannot mount a tmpfs here (unshare --mount)")


def _in_small_disk(tmp_path: Path, size: str, script: str, **env) -> subprocess.CompletedProcess:
    """Run a shell script in a private mount namespace where DISK is a tmpfs of `size`; the script's
    sysa is this interpreter's. The tmpfs goes with the namespace: the script reports what it saw."""
    disk = tmp_path / "disk"
    disk.mkdir()
    env = dict(cli_env(), **env, DISK=str(disk), SYSA=f"{sys.executable} -m sysa_core")
    return subprocess.run(["unshare", "--mount", "sh", "-c", f"mount -t tmpfs -o size={size} tmpfs \"$DISK\" && {script}"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


@needs_tmpfs
def test_a_disk_too_small_for_the_run_is_refused_before_any_work(tmp_path):
    res = _in_small_disk(tmp_path, "4m", '$SYSA run --profile smoke --seeds 1-2 --quiet --out "$DISK/run"; '
                                          'echo "rc=$?" >&2; ls -A "$DISK" >&2')
    *msg, rc, listing = (res.stderr.strip().splitlines() + [""])[:3]
    assert rc == "rc=2", res.stderr
    assert_user_error("\n".join(msg), 2, "not enough free disk", "MB needed", "MB free")
    assert listing == ""  # nothing was written


@needs_tmpfs
def test_a_disk_that_fills_during_the_run_fails_the_seed_in_one_line_and_keeps_the_finished_one(smoke_run, tmp_path):
    """Seed 1 is complete; seed 2's files are gone, and the disk fills up once the run holds its lock."""
    src = tmp_path / "src"
    copy_run(smoke_run, src)
    shutil.rmtree(src / "seed_2")
    shutil.rmtree(src / "control")
    for name in ("population.ipynb", "population.html", "index.html"):
        (src / name).unlink()
    script = ('cp -a "$SRC" "$DISK/run" && (cd "$DISK/run/seed_1" && sha256sum * | sort > "$DISK/before") && '
              '{ $SYSA run --profile smoke --seeds 1-2 --threads 1 --no-batch-seeds --quiet --out "$DISK/run" & } && '
              'while [ ! -e "$DISK/run/seed_2" ]; do sleep 0.02; done; '
              'dd if=/dev/zero of="$DISK/fill" bs=64k 2>/dev/null; wait $!; echo "rc=$?" >&2; '
              '(cd "$DISK/run/seed_1" && sha256sum * | sort | cmp - "$DISK/before" >&2 && echo "seed 1 intact" >&2)')
    res = _in_small_disk(tmp_path, "64m", script, SRC=str(src))
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in res.stderr, res.stderr
    assert "seed 1 intact" in lines, res.stderr
    status = [ln for ln in lines if ln.startswith("rc=")]
    assert status in (["rc=1"], ["rc=2"]), res.stderr
    sysa = [ln for ln in lines if ln.startswith("sysa")]
    assert len(sysa) == 1 and "the disk is full" in sysa[0], res.stderr


def test_a_disk_full_while_writing_is_one_line_and_keeps_what_was_written(smoke_train, tmp_path, monkeypatch, capsys):
    """Without a tmpfs: the write of a checkpoint fails with ENOSPC (simulated at the OS call)."""
    import errno

    out = tmp_path / "train"
    real = files.os.replace

    def full(src, dst):
        if str(dst).endswith("_state.pth"):
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real(src, dst)

    monkeypatch.setattr(files.os, "replace", full)
    rc = cli.main(["train", "--profile", "smoke", "--seeds", "1", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    line = assert_user_error(err, rc, "disk is full")
    assert str(out) in line
    assert not list(out.rglob("*.tmp")), "a temporary file was left behind"


def test_an_allocation_too_large_for_the_machine_is_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    rc = cli.main(["run", "--profile", "smoke", "--seeds", "1", "--out", str(out), "--set", "model.hidden_size=1000000"])
    assert_user_error(capsys.readouterr().err, rc, "model.hidden_size=1000000", "GB of memory", "GB are available")
    assert not out.exists()


@pytest.mark.parametrize("seeds", ["1-2147483647", "1-10001", "1-5000,6000-11000"])
def test_a_seed_range_beyond_the_maximum_is_one_line_at_once(tmp_path, capsys, seeds):
    rc = cli.main(["run", "--profile", "smoke", "--seeds", seeds, "--out", str(tmp_path / "run")])
    assert_user_error(capsys.readouterr().err, rc, "--seeds", "at most 10000")
    assert not (tmp_path / "run").exists()


def test_an_empty_seed_list_is_refused_not_read_as_the_default(tmp_path, capsys):
    rc = cli.main(["run", "--profile", "smoke", "--seeds", "", "--out", str(tmp_path / "run")])
    assert_user_error(capsys.readouterr().err, rc, "--seeds", "cannot read ''")
    assert not (tmp_path / "run").exists()


def test_sigterm_ends_a_run_with_a_message_and_frees_the_folder(tmp_path):
    out = tmp_path / "run"
    proc = popen_cli("run", *SMOKE, "--seeds", "1", "--out", out)
    wait_for(lambda: locked(out), what="the run to take its lock")
    procs = descendants(proc.pid)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == "sysa: terminated (SIGTERM)"
    assert "Traceback" not in err
    wait_for(lambda: not any(alive(p) for p in procs), timeout=15, what="the run's processes to end")
    assert not locked(out)


def test_sigterm_during_the_population_report_ends_the_run_at_once_with_143(smoke_run, tmp_path):
    """The signal is not taken for a failing notebook: no "report failed", no index written after it,
    and the last whole population notebook and report stay as they were."""
    run = copy_run(smoke_run, tmp_path / "run")
    for name in ("population.json", "index.html"):
        (run / name).unlink()
    before = {name: (run / name).read_bytes() for name in ("population.ipynb", "population.html")}
    proc = popen_cli("run", *SMOKE, "--seeds", "1-2", "--control", "--out", run)
    wait_for(lambda: running_path(run / "population.ipynb").exists(), what="the population notebook to start")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == "sysa: terminated (SIGTERM)" and "failed" not in err
    assert not (run / "index.html").exists()
    assert {name: (run / name).read_bytes() for name in before} == before
    assert not running_path(run / "population.ipynb").exists()
    wait_for(lambda: not locked(run), timeout=15, what="the lock to be freed")


def test_sigterm_starts_no_queued_chain(tmp_path):
    """Four seeds, two notebook lanes: a SIGTERM as the first notebooks start ends the run without
    starting the notebooks of the seeds still queued."""
    out = tmp_path / "run"
    proc = popen_cli("run", *SMOKE, "--seeds", "1-4", "--out", out)
    wait_for(lambda: any(running_path(out / f"seed_{s}" / "train.ipynb").exists() for s in (1, 2)), timeout=300,
             what="the first notebooks to start")
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"still running 180 s after SIGTERM: {proc.communicate()[1][-3000:]}") from None
    assert proc.returncode == 143, err
    assert not any(running_path(out / f"seed_{s}" / "train.ipynb").exists() or (out / f"seed_{s}" / "train.ipynb").exists()
                   for s in (3, 4)), err
    assert not (out / "index.html").exists()


@pytest.mark.parametrize("args, needle", [
    (["run", "--out", ""], "--out"),
    (["run", "--scheduler", "tcp://127.0.0.1:99999"], "the port 1-65535"),
    (["run", "--seeds"], "sysa: error: run: argument --seeds"),
])
def test_small_message_defects(tmp_path, capsys, args, needle):
    rc = cli.main(args + (["--profile", "smoke"] if args[0] == "run" else []))
    line = assert_user_error(capsys.readouterr().err, rc, needle)
    assert not line.startswith("sysa: error: sysa:")


def test_a_symlink_loop_is_named_as_one(tmp_path, capsys):
    loop = tmp_path / "sys_A1_state.pth"
    loop.symlink_to(loop)
    rc = cli.main(["evaluate", str(loop)])
    assert_user_error(capsys.readouterr().err, rc, str(loop), "points to itself")


def _deep_json(path: Path) -> None:
    path.write_text("[" * 200_000 + "]" * 200_000)


@pytest.mark.parametrize("case, needles", [
    ("manifest without config", ["sysa-run.json", "no 'config'"]),
    ("manifest seeds not a list", ["sysa-run.json", "'seeds' must be a list of seeds"]),
    ("manifest nested too deeply", ["sysa-run.json", "nested too deeply"]),
])
def test_a_malformed_manifest_is_one_line_from_check_and_run(smoke_run, tmp_path, case, needles):
    run = copy_run(smoke_run, tmp_path / "run")
    marker = run / files.RUN_MARKER
    man = json.loads(marker.read_text())
    if case == "manifest without config":
        man.pop("config")
        marker.write_text(json.dumps(man))
    elif case == "manifest seeds not a list":
        man["seeds"] = 5
        marker.write_text(json.dumps(man))
    else:
        _deep_json(marker)
    before = _bytes(run)
    proc = _check(run)
    assert_user_error(proc.stderr, proc.returncode, *needles)
    proc = run_cli("run", *SMOKE, "--seeds", "1-2", "--out", run)
    assert_user_error(proc.stderr, proc.returncode, *needles)
    assert _bytes(run) == before


def test_training_metadata_nested_too_deeply_is_one_line_for_evaluate_and_a_notebook(smoke_train, tmp_path):
    folder = tmp_path / "seed_1"
    shutil.copytree(smoke_train, folder, ignore=shutil.ignore_patterns(".sysa.lock"))
    _deep_json(files.meta_path(folder, 1))
    proc = run_cli("evaluate", files.checkpoint_path(folder, 1), "--core-only")
    assert_user_error(proc.stderr, proc.returncode, "sys_A1_train.json", "nested too deeply")
    from sysa_core.errors import UserError
    from sysa_core.pipeline import notebook as nb
    with pytest.raises(UserError, match="nested too deeply"):
        nb.setup("inspect", {"profile": "", "seed": 1, "overrides": [], "run_dir": "",
                             "checkpoint": str(files.checkpoint_path(folder, 1))})


def test_a_checkpoint_without_its_resume_data_is_retrained_not_a_keyerror(smoke_run, tmp_path):
    """Checkpoints that carry the run's training id but not the rest of their resume data (the batch
    generator, a history, Adam's moments): `sysa check` names what is missing and says a re-run
    retrains them; the re-run does, to the same bits."""
    import torch

    run = copy_run(smoke_run, tmp_path / "run")
    damaged = {}
    for folder, s, damage in ((run / "seed_1", 1, "batch_rng"), (run / "seed_2", 2, "monitor_loss"),
                              (run / "control" / "seed_1", 1, "optimizer")):
        ck = files.checkpoint_path(folder, s)
        obj = torch.load(ck, weights_only=True)
        if damage == "optimizer":
            obj["optimizer"]["state"][2].pop("exp_avg_sq")
        else:
            obj["sysa"].pop(damage)
        torch.save(obj, ck)
        damaged[ck] = damage
    proc = _check(run)
    assert proc.returncode == 1
    assert proc.stdout.count("resume data is incomplete") == 3 and "(the optimizer's state)" in proc.stdout
    assert "'batch_rng' is missing" in proc.stdout and "'monitor_loss' is missing" in proc.stdout
    proc = run_cli("run", *SMOKE, "--seeds", "1-2", "--control", "--out", run)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("resume data is incomplete") == 3
    for ck in damaged:
        assert files.sha256(ck) == files.sha256(smoke_run / ck.relative_to(run))


@pytest.mark.parametrize("force", [False, True])
def test_a_seed_folder_that_is_a_symbolic_link_is_refused_and_its_target_untouched(smoke_run, tmp_path, force):
    run = copy_run(smoke_run, tmp_path / "run")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("not sysa's")
    shutil.rmtree(run / "seed_2")
    (run / "seed_2").symlink_to(foreign)
    before, theirs = _bytes(run / "seed_1"), _bytes(foreign)
    proc = run_cli("run", *SMOKE, "--seeds", "1-2", "--out", run, *(["--force"] if force else []))
    assert_user_error(proc.stderr, proc.returncode, "seed_2", "a symbolic link", "not through links")
    assert _bytes(foreign) == theirs and _bytes(run / "seed_1") == before


def test_a_notebook_never_writes_into_a_folder_that_is_not_sysas(tmp_path):
    """train.ipynb (and an analysis notebook) given a non-empty folder of someone else's files as
    run_dir refuses in one line, before anything is written into it."""
    from sysa_core.errors import UserError
    from sysa_core.pipeline import notebook as nb

    foreign = tmp_path / "F"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("\\\\documentclass{article}")
    before = _bytes(foreign)
    with pytest.raises(UserError, match="holds files and none of sysa's") as info:
        nb.setup("train", {"profile": "smoke", "seed": 1, "overrides": [], "run_dir": str(foreign)})
    assert "\n" not in str(info.value) and "train.ipynb: run_dir" in str(info.value)
    link = tmp_path / "L"
    link.symlink_to(foreign)
    with pytest.raises(UserError, match="a symbolic link"):
        nb.setup("train", {"profile": "smoke", "seed": 1, "overrides": [], "run_dir": str(link)})
    assert _bytes(foreign) == before


def test_sysa_check_verifies_every_output_against_its_recorded_sha256_and_a_rerun_repairs_it(smoke_run, tmp_path):
    """An edited metrics value, a bare state dict swapped with another seed's, one of random bytes,
    a plot, an analysis.npz cut short and an edited population.csv: each named by `sysa check`; one
    re-run sets each aside and writes it again, to the bytes the run first wrote."""
    run = copy_run(smoke_run, tmp_path / "run")
    m_path = files.metrics_path(run / "seed_1")
    m = json.loads(m_path.read_text())
    m["precision"] = 123.456
    m_path.write_text(json.dumps(m, indent=2) + "\n")
    swapped = files.bare_path(run / "seed_2", 2)
    shutil.copyfile(files.bare_path(run / "seed_1", 1), swapped)
    noise = files.bare_path(run / "control" / "seed_1", 1)
    noise.write_bytes(os.urandom(noise.stat().st_size))
    plot = files.loss_plot_path(run / "control" / "seed_2", 2)
    plot.write_bytes(files.grad_plot_path(run / "control" / "seed_2", 2).read_bytes())
    arrays = files.arrays_path(run / "seed_2")
    arrays.write_bytes(arrays.read_bytes()[:2000])
    csv = run / "population.csv"
    csv.write_text(csv.read_text().replace(",", ";", 3))
    edited = [m_path, swapped, noise, plot, arrays, csv]
    original = {p: (smoke_run / p.relative_to(run)).read_bytes() for p in edited}
    proc = _check(run)
    assert proc.returncode == 1, proc.stdout
    for p in edited:
        assert f"{p.name} differs from what the run wrote" in proc.stdout, p
    assert "analysis.npz is missing or unreadable" in proc.stdout
    proc = run_cli("run", *SMOKE, "--seeds", "1-2", "--control", "--out", run)
    assert proc.returncode == 0, proc.stderr
    for p in edited:
        assert f"{p.name} differs" in proc.stderr, p
        assert p.read_bytes() == original[p], p
        assert list(p.parent.glob(f"{p.name}.bad-*")), f"{p} was set aside, not deleted"
    assert _check(run).returncode == 0
    assert "123.456" not in (run / "population.csv").read_text() + (run / "index.html").read_text()


def test_a_corrupt_checkpoint_in_a_batched_run_is_repaired_to_the_same_sha256(tmp_path):
    """Under the default batching the seeds of a run train as one computation, whose float32 sums
    depend on the batch: the repaired seed is trained again in that batch (its companion recomputed
    in memory, its own files untouched), so it gets its first training's bytes."""
    args = ["--profile", "smoke", "--seeds", "1-2", "--threads", "1", "--quiet"]
    ref = tmp_path / "ref"
    proc = run_cli("run", *args, "--out", ref)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(files.meta_path(ref / "seed_2", 2).read_text())["trained_with"] == [["1", "2"]]
    run = copy_run(ref, tmp_path / "run")
    ck = files.checkpoint_path(run / "seed_2", 2)
    ck.write_bytes(ck.read_bytes()[:5000])
    seed_1 = _bytes(run / "seed_1")
    proc = run_cli("run", *args, "--out", run)
    assert proc.returncode == 0, proc.stderr
    assert "repairing seed 2" in proc.stderr and "in the batch it first trained in (with 1" in proc.stderr
    for path in (files.checkpoint_path, files.bare_path):
        assert files.sha256(path(run / "seed_2", 2)) == files.sha256(path(ref / "seed_2", 2))
    assert _bytes(run / "seed_1") == seed_1
    assert _metrics(run, 2) == _metrics(ref, 2)


def test_what_a_write_killed_midway_left_is_removed_on_the_next_run(smoke_run, tmp_path):
    run = copy_run(smoke_run, tmp_path / "run")
    left = [run / "seed_2" / ".sys_A2_state.pth.k3j2_x.tmp", run / ".sysa-run.json.a1b2.tmp"]
    for p in left:
        p.write_bytes(b"half a checkpoint")
    proc = run_cli("run", *SMOKE, "--seeds", "1-2", "--control", "--out", run)
    assert proc.returncode == 0, proc.stderr
    assert not any(p.exists() for p in left)


def _limited(limit_as: int | None = None, limit_fsize: int | None = None):
    import resource

    def apply():
        if limit_as:
            resource.setrlimit(resource.RLIMIT_AS, (limit_as, limit_as))
        if limit_fsize:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_fsize, limit_fsize))
    return apply


def _cli_limited(*args, **limits) -> subprocess.CompletedProcess:
    from conftest import cli_env
    return subprocess.run([sys.executable, "-m", "sysa_core", *map(str, args)], capture_output=True, text=True,
                          env=cli_env(), timeout=600, preexec_fn=_limited(**limits))


@pytest.mark.parametrize("overrides, needles", [
    (["analysis.spont_T_ms=100000000"], ["analysis.spont_T_ms=100000000", "a model's analysis needs about"]),
    (["hidden_size=6000"], ["model.hidden_size=6000", "a model's analysis needs about"]),
    (["train.n_trials=700000"], ["train.n_trials=700000", "training"]),
])
def test_memory_beyond_the_address_space_limit_is_one_line_before_any_work(tmp_path, overrides, needles):
    """Under a 3 GB address-space limit (ulimit -v): the analysis and the whole batch are counted."""
    out = tmp_path / "run"
    sets = [a for o in overrides for a in ("--set", o)]
    proc = _cli_limited("run", "--profile", "smoke", "--seeds", "1-2", "--out", out, *sets, "--quiet", limit_as=3 << 30)
    line = assert_user_error(proc.stderr, proc.returncode, *needles, "GB are available")
    assert len(line) < 300
    assert not out.exists()


def test_evaluate_checks_the_analysis_memory_too(smoke_train, capsys):
    rc = cli.main(["evaluate", str(files.checkpoint_path(smoke_train, 1)), "--set", "analysis.spont_T_ms=100000000"])
    assert_user_error(capsys.readouterr().err, rc, "analysis.spont_T_ms=100000000", "GB of memory")


def test_a_file_size_limit_is_one_line_and_leaves_the_finished_report_whole(smoke_run, tmp_path):
    """ulimit -f: the population notebook that no longer fits fails in its own temporary file; the
    report of the last run stays whole, nothing is cut short."""
    run = copy_run(smoke_run, tmp_path / "run")
    (run / "population.json").unlink()
    before = {n: (run / n).read_bytes() for n in ("population.ipynb", "population.csv")}
    proc = _cli_limited("run", *SMOKE, "--seeds", "1-2", "--control", "--out", run, limit_fsize=200 << 10)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert {n: (run / n).read_bytes() for n in before} == before
    assert not list(run.glob(".*.tmp"))


def test_a_network_dir_that_cannot_take_the_analysis_is_a_warning_and_the_metrics_are_printed(smoke_train, tmp_path):
    """`sysa evaluate --network-dir` under ulimit -f smaller than G's analysis (the smoke G's .npz is
    about 40 KiB; were it smaller, no warning would come and this would fail): one warning line,
    the metrics printed all the same, nothing cut short left in the folder."""
    cache = tmp_path / "networks"
    proc = _cli_limited("evaluate", smoke_train / "sys_A1_state.pth", "--json", "--network-dir", cache,
                        limit_fsize=20 << 10)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"sysa: warning: --network-dir {cache}: G's analysis was not kept")
    (m,) = parse_json_lines(proc.stdout)
    assert m["precision"] > 0 and m["network_key"]
    assert list(cache.iterdir()) == []


def test_a_file_where_a_seed_folder_goes_is_one_line(smoke_run, tmp_path):
    run = copy_run(smoke_run, tmp_path / "run")
    shutil.rmtree(run / "seed_1")
    (run / "seed_1").write_text("not a folder")
    proc = run_cli("run", *SMOKE, "--seeds", "1-2", "--out", run)
    assert_user_error(proc.stderr, proc.returncode, "seed_1", "a file stands where this folder goes")
    assert (run / "seed_1").read_text() == "not a folder"
