"""sysa_core.files: atomic writes under SIGKILL, and the safe checkpoint loader (through the CLI for
the files a user could be sent: truncated, random bytes, code-running pickle, another hidden
size, empty)."""
from __future__ import annotations

import json
import pickle
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import REPO, assert_user_error, cli_env, run_cli

from sysa_core import cli, config, files, model
from sysa_core.errors import UserError

pytestmark = pytest.mark.usefixtures("single_threaded_torch")


# -- atomic writes -----------------------------------------------------------------------

HELPER = textwrap.dedent('''
    """Fork writers that save checkpoints in a loop with sysa_core.files.save_torch and SIGKILL them at
    random moments (torch is imported once). After each kill, copy the files on disk into
    snap/<round>/ so the test can check exactly what a crash left behind."""
    import json, os, random, shutil, signal, sys, time
    from pathlib import Path
    import torch
    from sysa_core import files

    folder, snap, n, seed = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    rng = random.Random(seed)
    seen_tmp, mid_write, r = set(), 0, 0
    while r < 15 or (mid_write < 3 and r < 200):
        pid = os.fork()
        if pid == 0:
            try:
                i = r * 10**6
                while True:
                    v = float(i)
                    sd = {"G": torch.full((n, n), v), "I": torch.full((n, 1), v), "w": torch.full((n, 1), v),
                          "h0": torch.full((n,), v)}
                    files.save_torch(folder / f"sys_A{i % 3 + 1}_state.pth", {"epoch": i, "state_dict": sd})
                    i += 1
            finally:
                os._exit(1)
        time.sleep(rng.uniform(0.0, 0.25))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        tmp = {p.name for p in folder.iterdir() if p.name.endswith(".tmp")}
        new_tmp = bool(tmp - seen_tmp)
        mid_write += new_tmp
        seen_tmp |= tmp
        dest = snap / str(r)
        dest.mkdir(parents=True)
        for p in folder.iterdir():
            shutil.copyfile(p, dest / p.name)
        print(json.dumps({"round": r, "killed": os.WIFSIGNALED(status) and os.WTERMSIG(status) == 9,
                          "mid_write": new_tmp}), flush=True)
        r += 1
    print(json.dumps({"rounds": r, "mid_write": mid_write}), flush=True)
''')


def test_sigkill_while_writing_leaves_complete_checkpoints_or_none(tmp_path):
    n = 300
    folder, snap = tmp_path / "ck", tmp_path / "snap"
    folder.mkdir()
    script = tmp_path / "writer.py"
    script.write_text(HELPER)
    proc = subprocess.run([sys.executable, str(script), str(folder), str(snap), str(n), "1"], cwd=REPO,
                          capture_output=True, text=True, timeout=300, env=cli_env())
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(ln) for ln in proc.stdout.splitlines()]
    summary = lines[-1]
    assert all(ln["killed"] for ln in lines[:-1])
    # some kills landed while a file was being written (a temporary file stayed behind)
    assert summary["mid_write"] >= 3, summary
    checked = 0
    for rnd in sorted(snap.iterdir(), key=lambda p: int(p.name)):
        for p in rnd.iterdir():
            if p.name.startswith(".") and p.name.endswith(".tmp"):
                continue  # a writer's temporary file, never a checkpoint name
            assert p.name in {"sys_A1_state.pth", "sys_A2_state.pth", "sys_A3_state.pth"}, p.name
            ck = files.load_checkpoint(p, hidden_size=n)  # complete, or this raises
            v = float(ck["epoch"])
            assert all(bool((t == v).all()) for t in ck["state_dict"].values()), f"{p}: mixed content"
            checked += 1
    assert checked > 0


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "metrics.json"
    files.write_json(target, {"a": 1})

    def broken(fh):
        fh.write(b'{"a": 2, "b"')
        raise OSError("disk full")

    with pytest.raises(OSError):
        files._atomic_write(target, broken)
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # the temporary file was removed


def test_write_json_round_trip_with_tensors_and_paths(tmp_path):
    files.write_json(tmp_path / "x.json", {"t": torch.tensor([1.0, 2.0]), "p": Path("a/b"), "s": torch.tensor(3)})
    assert files.read_json(tmp_path / "x.json") == {"t": [1.0, 2.0], "p": "a/b", "s": 3}


@pytest.mark.parametrize("names, ours", [
    (["network-0123456789abcdef.json", "network-0123456789abcdef.npz"], True),  # a kept analysis of G
    (["sys_A3_state.pth"], True),
    (["network-xyz.json"], False),
    (["network-0123456789abcdef.json.bak"], False),
    (["thesis.tex"], False),
])
def test_a_folder_is_sysas_when_it_holds_a_models_or_a_networks_files(tmp_path, names, ours):
    for n in names:
        (tmp_path / n).write_text("{}")
    if ours:
        files.check_model_folder(tmp_path, "run_dir")
    else:
        with pytest.raises(UserError, match="none of sysa's"):
            files.check_model_folder(tmp_path, "run_dir")


def test_seed_from_name():
    assert files.seed_from_name("x/sys_A12_state.pth") == 12 and files.seed_from_name("sys_A3.pth") == 3
    assert files.seed_from_name("model.pth") is None and files.seed_from_name("sys_A3_train.json") is None


# -- loading -----------------------------------------------------------------------------

def test_both_original_formats_load_the_same(reference_dir, tmp_path):
    wrapped = files.load_checkpoint(reference_dir / "sys_A1_state.pth", hidden_size=500)
    assert wrapped["epoch"] == 49 and wrapped["optimizer"] is not None
    bare_path = tmp_path / "sys_A1.pth"
    torch.save(wrapped["state_dict"], bare_path)
    bare = files.load_checkpoint(bare_path, hidden_size=500)
    assert bare["epoch"] is None and bare["optimizer"] is None
    assert all(torch.equal(bare["state_dict"][k], wrapped["state_dict"][k]) for k in ("G", "I", "w", "h0"))


class _RunsCode:
    """Unpickling this calls open(marker, 'w'): it creates the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _weights(hidden=500):
    return model.init_weights(config.resolve("paper", [f"hidden_size={hidden}"]).model, 1)


def _bad_file(kind: str, folder: Path, marker: Path) -> Path:
    folder.mkdir(parents=True)
    path = folder / "sys_A1_state.pth"
    if kind == "truncated":
        torch.save({"epoch": 3, "state_dict": _weights(), "optimizer": {}}, path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "random bytes":
        path.write_bytes(random.Random(0).randbytes(8192))
    elif kind == "code-running pickle (torch.save)":
        torch.save({"epoch": 1, "state_dict": dict(_weights(), G=_RunsCode(marker))}, path)
    elif kind == "code-running pickle (plain pickle)":
        path.write_bytes(pickle.dumps({"state_dict": _RunsCode(marker)}))
    elif kind == "another hidden size":
        torch.save({"epoch": 1, "state_dict": _weights(48), "optimizer": {}}, path)
    elif kind == "empty":
        path.write_bytes(b"")
    return path


def test_the_code_running_pickles_are_really_dangerous(tmp_path):
    """Sanity check of the fixture: an unsafe load does run the code."""
    for i, kind in enumerate(("code-running pickle (torch.save)", "code-running pickle (plain pickle)")):
        marker = tmp_path / f"ran{i}"
        path = _bad_file(kind, tmp_path / str(i), marker)
        if "plain" in kind:
            pickle.loads(path.read_bytes())
        else:
            torch.load(path, weights_only=False)
        assert marker.exists()


BAD_FILES = [("truncated", "truncated"), ("random bytes", ""), ("code-running pickle (torch.save)", "refused"),
             ("code-running pickle (plain pickle)", ""), ("another hidden size", "hidden size 48"), ("empty", "empty")]


@pytest.mark.parametrize("kind, needle", BAD_FILES)
def test_evaluate_refuses_bad_checkpoints_without_running_code(tmp_path, capsys, kind, needle):
    marker = tmp_path / "code_ran"
    path = _bad_file(kind, tmp_path / "in", marker)
    rc = cli.main(["evaluate", str(path), "--json"])
    out = capsys.readouterr()
    line = assert_user_error(out.err, rc, str(path), needle)
    assert out.out == ""
    assert not marker.exists(), "code from the file ran"
    if kind == "another hidden size":
        assert "500" in line


def test_a_code_running_pickle_is_refused_by_a_real_process(tmp_path):
    marker = tmp_path / "code_ran"
    path = _bad_file("code-running pickle (torch.save)", tmp_path / "in", marker)
    proc = run_cli("evaluate", path, "--json")
    assert_user_error(proc.stderr, proc.returncode, str(path), "refused")
    assert proc.stdout == "" and not marker.exists()


@pytest.mark.parametrize("change, needle", [
    (lambda sd: sd.pop("h0"), "expected tensors G, I, w, h0"),
    (lambda sd: sd.update(extra=torch.zeros(1)), "expected tensors G, I, w, h0"),
    (lambda sd: sd.update(I=torch.zeros(500, 2)), "I has shape (500, 2)"),
    (lambda sd: sd.update(G=torch.zeros(500, 499)), "G has shape"),
    (lambda sd: sd.update(w=torch.zeros(500, 1, dtype=torch.int64)), "w is not a floating-point tensor"),
    (lambda sd: sd["I"].__setitem__((3, 0), float("nan")), "I holds non-finite values"),
])
def test_loader_names_what_is_wrong(tmp_path, change, needle):
    sd = _weights()
    change(sd)
    path = tmp_path / "sys_A1.pth"
    torch.save(sd, path)
    with pytest.raises(UserError) as exc:
        files.load_checkpoint(path, hidden_size=500)
    msg = str(exc.value)
    assert str(path) in msg and needle in msg and "\n" not in msg


def test_loader_refuses_missing_files_and_folders(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        files.load_checkpoint(tmp_path / "sys_A1_state.pth")
    with pytest.raises(UserError, match="folder"):
        files.load_checkpoint(tmp_path)
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        files.read_json(tmp_path / "x.json")


def test_a_folder_holding_only_another_runs_lock_and_probe_is_not_someone_elses(tmp_path):
    """A run that is starting has written its lock and its workers' probe but no manifest yet: a second
    run into the same folder is not told that the folder is someone else's (it is told it is busy
    when it asks for the lock). A probe beside a file of another's still counts as someone else's."""
    out = tmp_path / "run"
    out.mkdir()
    (out / files.LOCK_NAME).touch()
    (out / f"{files.PROBE_PREFIX}0123abcd").write_text("0123abcd")
    files.check_owned(out)
    (out / "notes.txt").write_text("mine\n")
    with pytest.raises(UserError, match="not a sysa run"):
        files.check_owned(out)
