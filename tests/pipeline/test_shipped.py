"""The shipped study (sysa_core.pipeline.shipped, `sysa study`): a run's models packed compactly
and rebuilt bit for bit, on the session's smoke run (both ensembles, analysed). The real shipped
paper study in data/paper is checked in test_paper_study.py."""
from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch
from conftest import assert_user_error, run_cli

from sysa_core import files, runtime
from sysa_core.analysis import metrics
from sysa_core.errors import UserError
from sysa_core.pipeline import shipped, verify

SEEDS = (1, 2)
LABELS = {"main": "", "control": "control/"}


@pytest.fixture(scope="module")
def packed(smoke_run, tmp_path_factory):
    dest = tmp_path_factory.mktemp("shipped") / "study"
    proc = run_cli("study", "pack", smoke_run, "--shipped", dest)
    assert proc.returncode == 0, proc.stderr
    assert "4 model(s) added" in proc.stderr
    return dest


def test_pack_keeps_every_model_with_one_G_its_metrics_and_sha256s(packed, smoke_run):
    assert shipped.shipped_seeds(packed) == {"main": list(SEEDS), "control": list(SEEDS)}
    assert shipped.check_sums(packed) == []
    for label, prefix in LABELS.items():
        for s in SEEDS:
            got = sorted(p.name for p in shipped.seed_folder(packed, label, s).iterdir())
            assert got == ["checkpoint.json", "checkpoint.npz", "metrics.json", "train.json"]
            shipped_metrics = json.loads((shipped.seed_folder(packed, label, s) / "metrics.json").read_text())
            assert shipped_metrics == json.loads(files.metrics_path(smoke_run / f"{prefix}seed_{s}").read_text())
            with np.load(shipped.seed_folder(packed, label, s) / "checkpoint.npz") as z:
                assert not any(z[k].size == 48 * 48 for k in z.files)  # G is stored once, in network.npz
    assert shipped.load_network(packed).shape == (48, 48)
    study = json.loads((packed / shipped.STUDY).read_text())  # the run's configuration, not its bookkeeping
    assert "state" not in study and "last_run" not in study and study["config"]["model"]["hidden_size"] == 48
    for name in shipped.REPORT_FILES:  # the run-level reports travel with the models
        if name != "index.html":
            assert (packed / shipped.REPORT / name).read_bytes() == (smoke_run / name).read_bytes(), name
    # the index without the per-seed reports and the notebooks: no link to a file that is not shipped,
    # and a line that says how to get them
    index, original = (packed / shipped.REPORT / "index.html").read_text(), (smoke_run / "index.html").read_text()
    assert index == shipped.unlinked_unshipped(original)
    assert 'href="seed_1/train.html"' in original and 'href="control/seed_1/pca.html"' in original
    assert 'href="population.ipynb"' in original
    local = re.findall(r'href="([^":#]+)"', index)
    assert local and all((packed / shipped.REPORT / target).is_file() for target in local), local
    unshipped = [t for t in re.findall(r'href="([^":#]+)"', original) if t not in shipped.REPORT_FILES]
    assert index.count("not shipped: make paper-report re-makes") == len(unshipped) > 0
    assert shipped.NOT_SHIPPED in index and 'href="population.html"' in index
    again = run_cli("study", "pack", smoke_run, "--shipped", packed)
    assert again.returncode == 0 and "0 model(s) added" in again.stderr, again.stderr


def test_unpack_rebuilds_the_trained_checkpoints_bit_for_bit(packed, smoke_run, tmp_path):
    out = tmp_path / "run"
    proc = run_cli("study", "unpack", "--shipped", packed, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "sysa run --profile smoke" in proc.stderr
    for prefix in LABELS.values():
        for s in SEEDS:
            for name in (f"sys_A{s}_state.pth", f"sys_A{s}.pth", f"sys_A{s}_train.json"):
                assert (out / f"{prefix}seed_{s}" / name).read_bytes() == \
                    (smoke_run / f"{prefix}seed_{s}" / name).read_bytes(), name
    checks = verify.check_run(out)
    for name, chk in checks.items():  # trained and verified: only the notebooks are left to run
        if name != "population":
            assert chk.action == "reanalyse", (name, chk.problems)
            assert not any("train" in p and "did not" in p for p in chk.problems)


def test_unpack_names_what_it_writes_again_and_leaves_the_notebooks_to_the_run(packed, smoke_run, tmp_path, capsys):
    """Unpacking again into an analysed run folder whose seeds lost a training file or a report says
    once what it writes again, and nothing of the reports (the run that follows repairs and names them)."""
    out = shutil.copytree(smoke_run, tmp_path / "run", ignore=shutil.ignore_patterns(".sysa.lock"))
    bare, plot = files.bare_path(out / "seed_1", 1), files.loss_plot_path(out / "control/seed_2", 2)
    kept = bare.read_bytes(), plot.read_bytes()
    for p in (bare, plot, out / "seed_2" / "inspect.html"):
        p.unlink()
    shipped.unpack(out, packed)
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"sysa study: repairing seed 1: {bare.name} is missing; unpacking the shipped model again",
                     f"sysa study: repairing control seed 2: {plot.name} is missing; unpacking the shipped model again"]
    assert (bare.read_bytes(), plot.read_bytes()) == kept
    assert verify.check_run(out)["main seed 2"].problems == ["inspect.html is missing"]


def test_export_writes_the_originals_two_files(packed, smoke_run, tmp_path):
    proc = run_cli("study", "export", "--shipped", packed, "--seeds", "2", "--control", "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "sys_A2_state.pth").read_bytes() == (smoke_run / "control/seed_2/sys_A2_state.pth").read_bytes()
    ck = files.load_checkpoint(tmp_path / "sys_A2.pth")
    assert ck["epoch"] is None and set(ck["state_dict"]) == {"G", "I", "w", "h0"}
    missing = run_cli("study", "export", "--shipped", packed, "--seeds", "7", "--out", tmp_path)
    assert_user_error(missing.stderr, missing.returncode, "no shipped main seed 7", "shipped: 1, 2")


def test_a_changed_shipped_file_is_named_and_refused(packed, tmp_path):
    bad = tmp_path / "study"
    shutil.copytree(packed, bad)
    npz = shipped.seed_folder(bad, "main", 1) / "checkpoint.npz"
    with np.load(npz) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["/state_dict/w"] = arrays["/state_dict/w"] * np.float32(1.0001)
    np.savez_compressed(npz, **arrays)
    chk = run_cli("study", "check", "--shipped", bad)
    assert chk.returncode == 1 and "main/seed_1/checkpoint.npz: its sha256 differs" in chk.stdout
    shipped.write_sums(bad)  # even with matching sums, the rebuilt checkpoint is not the trained one
    proc = run_cli("study", "unpack", "--shipped", bad, "--out", tmp_path / "run")
    assert_user_error(proc.stderr, proc.returncode, "main/seed_1", "does not match the sha256 its training recorded")


def test_unpack_never_overwrites_another_training(packed, smoke_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(smoke_run, out, ignore=shutil.ignore_patterns(".sysa.lock"))
    ck = out / "seed_1" / "sys_A1_state.pth"
    obj = torch.load(ck, weights_only=True)
    obj["state_dict"]["w"] = obj["state_dict"]["w"] * 2
    files.save_torch(ck, obj)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".sysa.lock"}
    proc = run_cli("study", "unpack", "--shipped", packed, "--out", out)
    assert_user_error(proc.stderr, proc.returncode, "seed_1", "holds another training of main seed 1")
    assert before == {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".sysa.lock"}


def test_pack_refuses_a_run_of_another_configuration(packed, tmp_path, smoke_train):
    dest = tmp_path / "study"
    shutil.copytree(packed, dest)
    run = smoke_train.parent
    man = json.loads((run / files.RUN_MARKER).read_text())
    man["config"]["train"]["epochs"] += 1
    other = tmp_path / "other"
    shutil.copytree(run, other, ignore=shutil.ignore_patterns(".sysa.lock"))
    (other / files.RUN_MARKER).write_text(json.dumps(man))
    proc = run_cli("study", "pack", other, "--shipped", dest)
    assert_user_error(proc.stderr, proc.returncode, "trained with another configuration than the shipped study")
    assert shipped.shipped_seeds(dest) == shipped.shipped_seeds(packed)


def test_report_remakes_every_report_without_training_and_confirms_the_metrics(packed, tmp_path):
    out = tmp_path / "run"
    proc = run_cli("study", "report", "--shipped", packed, "--out", out, "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "4 of 4 shipped models' metrics re-made within 1e-06 relative" in proc.stderr
    assert "train seed" not in proc.stderr  # nothing was trained
    assert "repairing" not in proc.stderr  # trained models analysed for the first time: nothing to repair
    for prefix in LABELS.values():
        for s in SEEDS:
            meta = json.loads((out / f"{prefix}seed_{s}" / f"sys_A{s}_train.json").read_text())
            assert meta == json.loads((shipped.seed_folder(packed, prefix.strip("/") or "main", s)
                                       / "train.json").read_text())
            for name in ("train", "inspect", "pca"):
                assert (out / f"{prefix}seed_{s}" / f"{name}.html").is_file()
    assert (out / "index.html").is_file() and (out / "population.html").is_file()
    assert verify.check_run(out)["main seed 1"].action == "none"
    # a shipped number that the re-made analysis does not give is named
    tampered = tmp_path / "study"
    shutil.copytree(packed, tampered)
    m_path = shipped.seed_folder(tampered, "control", 2) / "metrics.json"
    m = json.loads(m_path.read_text())
    m["precision"] *= 1 + 1e-5
    m_path.write_text(json.dumps(m))
    diffs = shipped.compare_metrics(out, tampered)
    assert [d.split(":")[0] for d in diffs["control seed 2"]] == ["precision"]
    assert not any(v for k, v in diffs.items() if k != "control seed 2")


def _with_analysed_on(packed, dest, made_on) -> None:
    """A copy of the packed study whose study.json records made_on (None: says nothing), sums kept."""
    shutil.copytree(packed, dest)
    study = json.loads((dest / shipped.STUDY).read_text())
    study.pop(shipped.ANALYSED_ON)
    (dest / shipped.STUDY).write_text(json.dumps(study if made_on is None else {**study, shipped.ANALYSED_ON: made_on}))
    shipped.write_sums(dest)


def test_pack_records_the_numerics_and_refuses_other_ones(packed, smoke_run, tmp_path):
    assert json.loads((packed / shipped.STUDY).read_text())[shipped.ANALYSED_ON] == runtime.numerics()
    assert shipped.comparison(packed) == shipped.SAME_NUMERICS == shipped.Comparison(False, 1e-6, "within 1e-06 relative")
    other = tmp_path / "study"
    _with_analysed_on(packed, other, {**runtime.numerics(), "cpu_vendor": "OtherVendor"})
    before = {p: p.read_bytes() for p in other.rglob("*") if p.is_file()}
    proc = run_cli("study", "pack", smoke_run, "--shipped", other)
    assert_user_error(proc.stderr, proc.returncode, str(other / shipped.STUDY), "cpu_vendor OtherVendor",
                      f"cpu_vendor {runtime.numerics()['cpu_vendor']}")
    assert before == {p: p.read_bytes() for p in other.rglob("*") if p.is_file()}
    rule = shipped.comparison(other)  # metrics made with other code paths: compared as such
    assert rule.across_cpus and rule.rtol == shipped.ACROSS_CPUS_RTOL and "OtherVendor" in rule.text
    assert rule.floors["plateau_hold_ms_by_duration"] == 1.0 and "one 1 ms step" in rule.text  # the smoke profile's dt
    # the run's metrics against the study's, moved beyond 1e-6 in a number rounding decides and one it does not
    m_path = shipped.seed_folder(other, "main", 1) / "metrics.json"
    m = json.loads(m_path.read_text())
    m_path.write_text(json.dumps({**m, "pr_input_l1": m["pr_input_l1"] * 1.05, "precision": m["precision"] * (1 + 1e-4)}))
    assert not any(shipped.compare_metrics(smoke_run, other).values())
    assert [d.split(":")[0] for d in shipped.compare_metrics(smoke_run, other, shipped.comparison(packed))["main seed 1"]] \
        == ["pr_input_l1", "precision"]
    m_path.write_text(json.dumps({k: v for k, v in m.items() if k != "pr_input_l1"} | {"precision": m["precision"] * 1.002}))
    assert [d.split(":")[0] for d in shipped.compare_metrics(smoke_run, other)["main seed 1"]] == ["pr_input_l1", "precision"]
    # a study that does not say is compared to the bit; pack adds what it packs on
    silent = tmp_path / "silent"
    _with_analysed_on(packed, silent, None)
    assert shipped.comparison(silent) == shipped.comparison(packed)
    assert run_cli("study", "pack", smoke_run, "--shipped", silent).returncode == 0
    assert json.loads((silent / shipped.STUDY).read_text())[shipped.ANALYSED_ON] == runtime.numerics()
    assert shipped.check_sums(silent) == []
    for made_on in ("AuthenticAMD", {"cpu_vendor": ""}, {"cpu_vendor": "AuthenticAMD", "openblas_core": 3}):
        bad = tmp_path / "bad"
        shutil.rmtree(bad, ignore_errors=True)
        _with_analysed_on(packed, bad, made_on)
        with pytest.raises(UserError, match=re.escape(f"{bad / shipped.STUDY}: 'analysed_on' must be an object")):
            shipped.comparison(bad)


def test_the_numbers_rounding_decides_are_metrics_of_a_run(smoke_run):
    keys = json.loads((smoke_run / "seed_1" / "metrics.json").read_text())
    assert set(metrics.POINT_SEARCH_KEYS) <= set(keys)
    fixed = {k for k in keys if metrics.rounding_fixed(k)}
    assert {k for k in fixed if k.startswith("pr_")} == {f"pr_{v}_{p}{x}" for v in ("input", "output")
                                                         for p in ("l1", "l2") for x in ("", "_f64", "_spread")}
    assert len(fixed) == len(metrics.POINT_SEARCH_KEYS) + 12 + 8  # the searches, pr_*, and 8 other spreads


def test_across_cpus_only_what_rounding_decides_is_left_out():
    a = {"precision": 1.0, "precision_by_duration": {"50": 2.0}, "pr_input_l1": 300.0, "input_topk90_fraction_spread": 0.1,
         "memory_points": [{"norm": 1.0}], "memory_n_slow_points": 3, "memory_mechanism": "transient"}
    moved = {"precision": 1.0005, "precision_by_duration": {"50": 2.0}, "pr_input_l1": 330.0,
             "input_topk90_fraction_spread": 0.9, "memory_points": [{"norm": 1.5}, {"norm": 2.0}],
             "memory_n_slow_points": 5, "memory_mechanism": "transient"}
    assert [d.split(":")[0] for d in shipped.metric_differences(a, moved)] == [
        "input_topk90_fraction_spread", "memory_n_slow_points", "memory_points", "pr_input_l1", "precision"]
    across = shipped.Comparison(True, shipped.ACROSS_CPUS_RTOL, "")
    assert shipped.metric_differences(a, moved, across) == []
    for key, value in (("precision", 1.002), ("precision_by_duration", {"50": 2.01}), ("memory_mechanism", "attractor")):
        got = shipped.metric_differences(a, {**moved, key: value}, across)
        assert [d.split(":")[0].split(".")[0] for d in got] == [key]
    # near 0 and at a step's resolution: the floors of a comparison across numerics
    floored = shipped.Comparison(True, shipped.ACROSS_CPUS_RTOL, "", {"plateau_drift_per_s_by_duration": 1e-5,
                                                                       "plateau_hold_ms_by_duration": 1.0})
    b = {"plateau_drift_per_s_by_duration": {"50": 5e-5}, "plateau_hold_ms_by_duration": {"50": 120}}
    near = {"plateau_drift_per_s_by_duration": {"50": 5.8e-5}, "plateau_hold_ms_by_duration": {"50": 121}}
    far = {"plateau_drift_per_s_by_duration": {"50": 7e-5}, "plateau_hold_ms_by_duration": {"50": 122}}
    assert shipped.metric_differences(b, near, floored) == []
    assert len(shipped.metric_differences(b, far, floored)) == 2
    assert len(shipped.metric_differences(b, near)) == 2  # on the same numerics: to the bit


def test_metric_differences_respects_the_tolerance():
    a = {"x": 1.0, "nested": {"y": [1.0, 2.0]}, "flag": True, "name": "a"}
    assert shipped.metric_differences(a, {"x": 1.0 + 5e-7, "nested": {"y": [1.0, 2.0]}, "flag": True, "name": "a"}) == []
    got = shipped.metric_differences(a, {"x": 1.0, "nested": {"y": [1.0, 2.00001]}, "flag": False, "extra": 1})
    assert [g.split(":")[0] for g in got] == ["extra", "flag", "name", "nested.y.1"]
