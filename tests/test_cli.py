"""sysa_core.cli: `sysa evaluate` reproduces the published checkpoints' numbers; every user error
(parameters, options, files) ends in one line on stderr and exit status 2, never a traceback."""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import pytest
import torch
from conftest import PUBLISHED, assert_user_error, cli_env, parse_json_lines, run_cli

from sysa_core import cli
from sysa_core.analysis import metrics

pytestmark = pytest.mark.usefixtures("single_threaded_torch")

METRIC_KEYS = set(metrics.CORE_KEYS)


@pytest.fixture(scope="module")
def reference_eval(reference_dir, tmp_path_factory):
    """One `sysa evaluate --core-only --json` over both published checkpoints and a bare state dict of seed 1."""
    bare = tmp_path_factory.mktemp("bare") / "sys_A1.pth"
    torch.save(torch.load(reference_dir / "sys_A1_state.pth", weights_only=True)["state_dict"], bare)
    proc = run_cli("evaluate", reference_dir / "sys_A1_state.pth", reference_dir / "sys_A2_state.pth", bare,
                   "--core-only", "--json")
    assert proc.returncode == 0, proc.stderr
    out = parse_json_lines(proc.stdout)
    assert len(out) == 3
    return {"1": out[0], "2": out[1], "bare1": out[2]}


@pytest.mark.parametrize("seed", [1, 2])
def test_evaluate_reproduces_the_published_numbers(reference_eval, seed):
    m = reference_eval[str(seed)]
    precision, correlation = PUBLISHED[seed]
    assert METRIC_KEYS <= set(m)
    assert m["seed"] == seed and m["epoch"] == 49
    assert m["precision"] == pytest.approx(precision, rel=1e-4)
    assert m["weight_correlation"] == pytest.approx(correlation, abs=1e-5)
    by = m["precision_by_duration"]
    assert set(by) == {"50", "150", "300"}
    assert m["precision"] == pytest.approx(sum(by.values()) / 3, rel=1e-6)
    assert by["300"] > by["50"] and by["300"] > by["150"]  # 300 ms lies outside the training range
    for k in ("pr_input_l1", "pr_input_l2", "pr_output_l1", "pr_output_l2", "dim_spontaneous", "dim_memory"):
        assert 1.0 <= m[k] <= 500.0, k
    assert m["pr_input_l2"] <= m["pr_input_l1"] and m["pr_output_l2"] <= m["pr_output_l1"]


def test_reference_activity_dimensionalities_match_spec_facts(reference_eval):
    """README, Definitions 6: about 3.9 spontaneous, 2.5 .. 3.8 in the memory period. The spontaneous run
    depends only on G (shared by every seed) and h = 0.1, so it is the same for both models."""
    m1, m2 = reference_eval["1"], reference_eval["2"]
    assert m1["dim_spontaneous"] == pytest.approx(3.9, abs=0.1)
    assert m1["dim_spontaneous"] == pytest.approx(m2["dim_spontaneous"], rel=1e-9)
    for m in (m1, m2):
        assert 2.4 <= m["dim_memory"] <= 3.9


def test_bare_state_dict_gives_the_same_numbers(reference_eval):
    a, b = reference_eval["1"], reference_eval["bare1"]
    assert b["seed"] == 1 and b["epoch"] is None
    for k in METRIC_KEYS - {"precision_by_duration"}:
        assert math.isclose(a[k], b[k], rel_tol=1e-12), k
    assert a["precision_by_duration"] == pytest.approx(b["precision_by_duration"], rel=1e-12)


def test_evaluate_uses_the_metadata_beside_a_trained_checkpoint(smoke_train, smoke_cfg):
    """A smoke checkpoint (48 units) is evaluated with its own configuration, read from
    sys_A1_train.json, and gives the in-process analysis numbers."""
    proc = run_cli("evaluate", smoke_train / "sys_A1_state.pth", "--json")
    assert proc.returncode == 0, proc.stderr
    (m,) = parse_json_lines(proc.stdout)
    sd = torch.load(smoke_train / "sys_A1_state.pth", weights_only=True)["state_dict"]
    ref = metrics.analyse(smoke_cfg, sd).metrics
    assert m["epoch"] == smoke_cfg.train.epochs - 1
    for k in ("precision", "weight_correlation", "dim_spontaneous", "dim_memory"):
        assert m[k] == pytest.approx(ref[k], rel=1e-4), k
    # participation ratios over all N eigenvectors include a near-null space fixed by rounding
    # (README, Definitions 6), so another thread count may move them by more than float noise
    for k in ("pr_input_l1", "pr_input_l2", "pr_output_l1", "pr_output_l2"):
        assert m[k] == pytest.approx(ref[k], rel=0.1), k


def test_evaluate_keeps_the_network_analysis_in_network_dir_and_reads_it_back(smoke_train, tmp_path, capsys):
    """--network-dir DIR: the first evaluation writes G's analysis there, a second reads it instead of
    recomputing (the files are left as they are) and prints the same numbers. A file where the
    folder goes, an empty name, --core-only (nothing to keep), a folder of other files and a
    symbolic link are each one line naming the option, with nothing written."""
    ck, cache = str(smoke_train / "sys_A1_state.pth"), tmp_path / "networks"
    assert cli.main(["evaluate", ck, "--json", "--network-dir", str(cache)]) == 0
    (first,) = parse_json_lines(capsys.readouterr().out)
    written = sorted(cache.iterdir())
    assert [p.name for p in written] == [f"network-{first['network_key']}.json", f"network-{first['network_key']}.npz"]
    stamp = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in written}
    assert cli.main(["evaluate", ck, "--json", "--network-dir", str(cache)]) == 0
    (second,) = parse_json_lines(capsys.readouterr().out)
    assert second == first
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in cache.iterdir()} == stamp

    blocked = tmp_path / "a_file"
    blocked.write_text("x")
    rc = cli.main(["evaluate", ck, "--network-dir", str(blocked / "sub")])
    assert_user_error(capsys.readouterr().err, rc, "--network-dir", str(blocked / "sub"), "cannot create")
    assert blocked.read_text() == "x"
    assert cli.main(["evaluate", ck, "--network-dir", ""]) == 2
    assert "--network-dir: empty folder name" in capsys.readouterr().err
    rc = cli.main(["evaluate", ck, "--core-only", "--network-dir", str(tmp_path / "never")])
    assert_user_error(capsys.readouterr().err, rc, "--network-dir", "--core-only")
    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    link = tmp_path / "link"
    link.symlink_to(cache)
    for folder, needle in ((foreign, "none of sysa's"), (link, "symbolic link")):
        rc = cli.main(["evaluate", ck, "--network-dir", str(folder)])
        assert_user_error(capsys.readouterr().err, rc, "--network-dir", str(folder), needle)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"] and not (tmp_path / "never").exists()
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in cache.iterdir()} == stamp


def test_evaluate_refuses_a_profile_or_training_override_that_contradicts_the_checkpoint(smoke_train, capsys):
    """The configuration recorded beside a checkpoint wins, in `sysa evaluate` as in the notebooks (one
    function, files.for_checkpoint): a contradicting profile or training setting is one line naming both."""
    p = str(smoke_train / "sys_A1_state.pth")
    assert cli.main(["evaluate", p, "--profile", "quick", "--core-only"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "profile='quick'" in err and "profile 'smoke'" in err and "sys_A1_train.json" in err
    assert cli.main(["evaluate", p, "--set", "hidden_size=40", "--core-only"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "sysa evaluate: overrides set model.hidden_size=40" in err


def test_evaluate_text_output_and_explicit_seed(smoke_train, tmp_path, capsys):
    p = tmp_path / "model.pth"
    shutil.copyfile(smoke_train / "sys_A1.pth", p)
    assert cli.main(["evaluate", str(p), "--seed", "1", "--profile", "smoke"]) == 0
    out = capsys.readouterr().out
    assert str(p) in out and "(seed 1, profile smoke)" in out
    for k in METRIC_KEYS:
        assert k in out


def test_help_exits_cleanly(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    assert "evaluate" in capsys.readouterr().out


# -- user errors -------------------------------------------------------------------------

def _train(*extra):
    return lambda tmp: ["train", "--profile", "smoke", "--quiet", "--out", str(tmp / "out"), *extra]


def _with_file(make, *extra):
    def build(tmp):
        return ["evaluate", str(make(tmp)), *extra]
    return build


def _missing(tmp):
    return tmp / "nowhere" / "sys_A1_state.pth"


def _unnamed(tmp):
    p = tmp / "model.pth"
    p.write_bytes(b"x")
    return p


def _folder(tmp):
    p = tmp / "sys_A1_state.pth"
    p.mkdir()
    return p


def _meta_without_config(tmp):
    p = tmp / "sys_A1.pth"
    p.write_bytes(b"x")
    (tmp / "sys_A1_train.json").write_text('{"status": "complete"}')
    return p


def _meta_not_json(tmp):
    p = tmp / "sys_A1.pth"
    p.write_bytes(b"x")
    (tmp / "sys_A1_train.json").write_text('{"config": ')
    return p


def _meta_bad_value(tmp):
    p = tmp / "sys_A1.pth"
    p.write_bytes(b"x")
    (tmp / "sys_A1_train.json").write_text(json.dumps({"config": {"model": {"hidden_size": -4}}}))
    return p


def _out_is_a_file(tmp):
    (tmp / "file").write_text("")
    return ["train", "--profile", "smoke", "--quiet", "--out", str(tmp / "file")]


INVALID = {
    # configuration values (--set), each naming the parameter
    "hidden size too small": (_train("--set", "hidden_size=1"), ["model.hidden_size"]),
    "hidden size not an int": (_train("--set", "hidden_size=abc"), ["hidden_size", "'abc'"]),
    "hidden size as float text": (_train("--set", "hidden_size=1e3"), ["hidden_size"]),
    "dt larger than tau": (_train("--set", "dt_ms=200"), ["model.dt_ms", "tau_ms"]),
    "tau zero": (_train("--set", "tau_ms=0"), ["model.tau_ms"]),
    "dt not dividing the times": (_train("--set", "dt_ms=0.7"), ["whole number of steps"]),
    "catch fraction above 1": (_train("--set", "perc=1.5"), ["task.perc"]),
    "zero plateau target": (_train("--set", "thresh=0"), ["task.thresh"]),
    "negative learning rate": (_train("--set", "lr=-1"), ["train.lr"]),
    "NaN learning rate": (_train("--set", "lr=nan"), ["train.lr", "finite"]),
    "zero epochs": (_train("--set", "epochs=0"), ["train.epochs"]),
    "batch larger than the trials": (_train("--set", "batch_size=100"), ["train.batch_size"]),
    "unknown engine": (_train("--set", "engine=fast"), ["train.engine"]),
    "unknown init": (_train("--set", "init=coupled"), ["model.init"]),
    "G per seed with the coupled init": (_train("--set", "G_per_seed=true"), ["model.G_per_seed"]),
    "bool not a bool": (_train("--set", "h0_zero=maybe"), ["h0_zero", "maybe"]),
    "unsupported dtype": (_train("--set", "dtype=float16"), ["model.dtype"]),
    "negative seed": (_train("--set", "seed=-3"), ["seed"]),
    "pulse ends after cost onset": (_train("--set", "cost_onset_ms=200"), ["task.cost_onset_ms"]),
    "cost onset outside the trial": (_train("--set", "Nt_ms=300"), ["task.cost_onset_ms", "Nt_ms=300"]),
    "onset before the trial": (_train("--set", "O_on_ms=40"), ["task.O_on_ms"]),
    "zero test duration": (_train("--set", "durations_ms=0,50"), ["analysis.durations_ms"]),
    "test pulse after cost onset": (_train("--set", "eval_onset_ms=300"), ["analysis.eval_onset_ms"]),
    "memory window inside the pulse": (_train("--set", "mem_start_ms=50"), ["analysis.mem_start_ms"]),
    "unknown key": (_train("--set", "hiden_size=5"), ["unknown key 'hiden_size'"]),
    "ambiguous or bare key without value": (_train("--set", "hidden_size"), ["expected key=value"]),
    # options
    "unknown profile": (_train("--profile", "fast"), ["profile", "fast"]),
    "reversed seed range": (_train("--seeds", "5-1"), ["--seeds"]),
    "seed range beyond 2^31": (_train("--seeds", "1-99999999999"), ["--seeds"]),
    "seeds not numbers": (_train("--seeds", "a,b"), ["--seeds"]),
    "empty seeds": (_train("--seeds", ""), ["--seeds", "cannot read ''"]),
    "blank seeds": (_train("--seeds", " "), ["--seeds", "cannot read ' '"]),
    "unknown option": (_train("--bogus"), ["unrecognized arguments: --bogus"]),
    "unknown device": (_train("--device", "tpu"), ["--device", "'tpu'"]),
    "batched seeds with workers": (lambda tmp: ["run", "--profile", "smoke", "--quiet", "--workers", "2", "--batch-seeds",
                                                "--out", str(tmp / "out")], ["--batch-seeds", "--workers"]),
    "a device with workers": (lambda tmp: ["run", "--profile", "smoke", "--quiet", "--workers", "2", "--device", "cpu",
                                           "--out", str(tmp / "out")], ["--device cpu", "--workers"]),
    "missing --out": (lambda tmp: ["train", "--profile", "smoke"], ["--out"]),
    "no command": (lambda tmp: [], ["command"]),
    "--out is a file": (_out_is_a_file, ["--out", "file"]),
    # files given to evaluate
    "missing checkpoint": (_with_file(_missing), ["sys_A1_state.pth", "no such file"]),
    "seed not in the file name": (_with_file(_unnamed), ["model.pth", "--seed"]),
    "a folder": (_with_file(_folder), ["sys_A1_state.pth", "folder"]),
    "seed option not a number": (_with_file(_missing, "--seed", "one"), ["--seed"]),
    "metadata without config": (_with_file(_meta_without_config), ["sys_A1_train.json", "config"]),
    "metadata not JSON": (_with_file(_meta_not_json), ["sys_A1_train.json", "JSON"]),
    "metadata with a bad value": (_with_file(_meta_bad_value), ["sys_A1_train.json", "model.hidden_size"]),
}

if not torch.cuda.is_available():  # on a machine with a GPU the same command would train on it
    INVALID["CUDA without a GPU"] = (_train("--device", "cuda"), ["--device cuda", "no CUDA GPU"])
    INVALID["run: CUDA without a GPU"] = (lambda tmp: ["run", "--profile", "smoke", "--quiet", "--device", "cuda",
                                                       "--out", str(tmp / "out")], ["--device cuda", "no CUDA GPU"])


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_input_is_one_line_and_status_2(case, tmp_path, capsys):
    build, needles = INVALID[case]
    rc = cli.main(build(tmp_path))
    err = capsys.readouterr()
    assert_user_error(err.err, rc, *needles)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.pth")), "work started"


@pytest.mark.parametrize("case", ["dt larger than tau", "no command", "missing checkpoint", "unknown option"])
def test_invalid_input_in_a_real_process(case, tmp_path):
    build, needles = INVALID[case]
    proc = run_cli(*build(tmp_path))
    assert_user_error(proc.stderr, proc.returncode, *needles)
    assert proc.stdout == ""


def test_sysa_device_in_the_environment_is_checked_before_any_work(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SYSA_DEVICE", "tpu")
    rc = cli.main(_train()(tmp_path))
    assert_user_error(capsys.readouterr().err, rc, "SYSA_DEVICE=tpu", "unknown device")
    assert not (tmp_path / "out").exists()


def test_a_batch_that_does_not_fit_in_memory_is_one_line(tmp_path):
    """Two seeds batched whose rates and trials (12.9 GB) exceed a 3 GB address-space limit: refused before any
    work, in one line that names the settings and says what to do, status 2, no traceback."""
    import resource

    limit = 3 << 30
    proc = subprocess.run([sys.executable, "-m", "sysa_core", *_train("--set", "hidden_size=2000", "--set", "Nt_ms=50000",
                                                                      "--seeds", "1-2", "--batch-seeds")(tmp_path)],
                          capture_output=True, text=True, env=cli_env(), timeout=300,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)))
    assert_user_error(proc.stderr, proc.returncode, "model.hidden_size=2000, task.Nt_ms=50000",
                      "training 2 models at once needs about 12.9 GB", "--no-batch-seeds")
