"""sysa_core.pipeline.folder: the one lifecycle of a run folder (checks, lock, repair, manifest)
that `sysa run` and `sysa train` share."""
from __future__ import annotations

import pytest
from conftest import locked

from sysa_core import config, files
from sysa_core.errors import UserError
from sysa_core.pipeline.ensembles import ensembles
from sysa_core.pipeline.folder import RunFolder


def _folder(out, kind="run", control=False, **kw):
    cfg = config.resolve("smoke")
    return RunFolder(out, cfg, ensembles(cfg, out, [], control), [1, 2], kind=kind, control=control, **kw)


def _open(out, kind="run"):
    folder = _folder(out, kind)
    folder.check()
    return folder.open()


def test_a_run_holds_the_lock_while_open_and_records_every_seed_as_pending(tmp_path):
    out = tmp_path / "run"
    folder = _folder(out, control=True)
    folder.check()
    assert not (out / files.RUN_MARKER).exists()  # the checks write nothing
    with folder.open():
        assert locked(out)
        m = files.read_json(out / files.RUN_MARKER)
        assert m["kind"] == "run" and m["state"] == {"main": {"1": "pending", "2": "pending"},
                                                    "control": {"1": "pending", "2": "pending"}}
        assert [(e.label, s) for e, s in folder.todo] == [("main", 1), ("main", 2), ("control", 1), ("control", 2)]
        folder.write_manifest({"main": {"1": "complete", "2": "failed"}})
    assert not locked(out)
    assert files.read_json(out / files.RUN_MARKER)["state"] == {"main": {"1": "complete", "2": "failed"}}


def test_a_training_writes_its_manifest_once_and_never_over_a_runs(tmp_path):
    out = tmp_path / "run"
    with _open(out):
        pass
    before = (out / files.RUN_MARKER).read_bytes()
    folder = _folder(out, kind="train")
    folder.check()
    with folder.open():
        assert [(e.label, s) for e, s in folder.todo] == [("main", 1), ("main", 2)]
        assert (out / "seed_1").is_dir()
    assert (out / files.RUN_MARKER).read_bytes() == before
    fresh = tmp_path / "train"
    with _open(fresh, kind="train"):
        pass
    assert files.read_json(fresh / files.RUN_MARKER)["kind"] == "train"


def test_a_folder_that_is_not_sysas_or_trained_otherwise_is_refused_before_anything_is_written(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(UserError):
        _folder(foreign).check()
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    out = tmp_path / "run"
    with _open(out):
        pass
    cfg = config.resolve("smoke", ["lr=0.5"])
    other = RunFolder(out, cfg, ensembles(cfg, out, [], False), [1], kind="train")
    with pytest.raises(UserError, match="use another --out"):
        other.check()
    RunFolder(out, cfg, ensembles(cfg, out, [], False), [1], force=True).check()  # a run may redo them
