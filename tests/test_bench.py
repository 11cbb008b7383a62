"""sysa_core.bench on a tiny configuration: every case prints one JSON line with the documented
keys, and the fast engine's gradients agree with the autograd reference. Times are never
asserted: they depend on the machine and on its other load."""
from __future__ import annotations

import contextlib
import io
import json
import shutil
from dataclasses import replace

import pytest

import torch

from sysa_core import bench, config, engine, training
from sysa_core.model import init_weights
from sysa_core.pipeline import shipped

STEP_KEYS = {"case", "reference_ms", "reference_steps_measured", "fast_ms", "fast_steps_measured", "speedup",
             "roofline_ms", "roofline_ratio", "roofline_steps_measured", "roofline_all_rows_ms", "simulated_rows",
             "active_steps", "row_steps",
             "streams", "roofline_streams_ms", "peak_rss_mb", "analysis_s", "analysis_one_thread_s", "analysis_speedup",
             "analysis_model",
             "grad_rel_err_I", "grad_rel_err_w", "loss_rel_err", "threads",
             "gemm_gflops", "flops", "flop_bound_ms", "fast_vs_flop_bound", "roofline_vs_flop_bound", "reference_flops",
             "reference_vs_flop_bound"}
BATCHED_KEYS = {"case", "k", "batched_ms", "separate_ms", "fast_ms_per_model", "batching_speedup", "roofline_ms",
                "roofline_ratio", "batched_vs_separate_rel_err_I", "batched_vs_separate_rel_err_w",
                "reference_ms", "speedup_per_model", "gemm_gflops", "flops", "flop_bound_ms", "batched_vs_flop_bound",
                "separate_vs_flop_bound"}
ARGS = ["--quick", "--profile", "smoke", "--set", "hidden_size=24", "--set", "perc=0.3", "--batch", "8"]


@pytest.fixture(scope="module", autouse=True)
def small_gemm():
    """A small square product for the GEMM rate: the tiny cases' bound needs no 17 GFLOP measurement."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bench, "GEMM_N", 256)
        yield


@pytest.fixture(scope="module")
def quick_smoke_lines(small_gemm):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert bench.main(ARGS) == 0
    return [json.loads(ln) for ln in out.getvalue().splitlines() if ln.strip()]


def test_quick_prints_one_json_object_per_case(quick_smoke_lines):
    cases = {d["case"]: d for d in quick_smoke_lines}
    k = training.MODELS_PER_BATCH  # by default the batch training steps as one computation
    assert list(cases) == ["train_step", f"seeds_batched_k{k}"]
    step, batched = cases["train_step"], cases[f"seeds_batched_k{k}"]
    assert STEP_KEYS <= set(step), STEP_KEYS - set(step)
    assert BATCHED_KEYS <= set(batched), BATCHED_KEYS - set(batched)
    assert step["reference_steps_measured"] >= 1 and step["fast_steps_measured"] >= 1
    # ratios of the unrounded medians; the printed times are rounded to 0.1 ms
    assert step["speedup"] == pytest.approx(step["reference_ms"] / step["fast_ms"], rel=0.05, abs=0.05)
    assert step["roofline_ratio"] == pytest.approx(step["fast_ms"] / step["roofline_ms"], rel=0.05, abs=0.05)
    assert step["steps"] == 600 and step["batch"] == 8 and step["hidden_size"] == 24
    assert 0 < step["simulated_rows"] <= 8 and 0 < step["active_steps"] <= 600
    assert step["peak_rss_mb"] > 10
    assert step["analysis_model"] == "seed 1, untrained"  # no shipped study of this configuration
    # the batched case's throughput is measured against the train_step case's reference of this run
    assert batched["reference_ms"] == step["reference_ms"]
    assert batched["speedup_per_model"] == pytest.approx(step["reference_ms"] / batched["fast_ms_per_model"], rel=0.05)
    # the FLOP bound: the products' FLOPs at the GEMM rate measured in this run
    for d, time_key, ratio_key in ((step, "fast_ms", "fast_vs_flop_bound"), (batched, "batched_ms", "batched_vs_flop_bound")):
        assert d["gemm_gflops"] > 0 and d["flops"] == 4 * 24 ** 2 * d["row_steps"]
        assert d["flop_bound_ms"] == pytest.approx(d["flops"] / (d["gemm_gflops"] * 1e9) * 1e3, rel=0.01, abs=0.1)
        assert d[ratio_key] == pytest.approx(d[time_key] / d["flop_bound_ms"], rel=0.05)
    assert step["reference_flops"] == 4 * 24 ** 2 * 8 * 600


def test_fast_engine_matches_the_reference_in_the_benchmark(quick_smoke_lines):
    step = quick_smoke_lines[0]
    assert step["grad_rel_err_I"] < 1e-4 and step["grad_rel_err_w"] < 1e-4 and step["loss_rel_err"] < 1e-4
    b = quick_smoke_lines[1]
    assert b["batched_vs_separate_rel_err_I"] < 1e-5 and b["batched_vs_separate_rel_err_w"] < 1e-5


def test_float64_case_and_G_per_seed_case():
    cfg = config.resolve("smoke", ["hidden_size=24", "perc=0.3", "dtype=float64"])
    d = bench.train_step_case(cfg, batch=6, repeats=1, reference_repeats=1, memory=False, analysis_time=False)
    assert d["dtype"] == "float64"
    assert d["grad_rel_err_I"] < 1e-9 and d["grad_rel_err_w"] < 1e-9 and d["loss_rel_err"] < 1e-9
    b = bench.seeds_batched_case(config.resolve("smoke", ["hidden_size=24"]), 2, batch=6, repeats=1, per_seed_G=True)
    assert b["case"] == "seeds_batched_k2_G_per_seed"
    assert b["batched_vs_separate_rel_err_I"] < 1e-5 and b["batched_vs_separate_rel_err_w"] < 1e-5


def test_active_work_counts_what_the_engine_simulates():
    """Rows = non-catch trials, steps from the earliest onset, each row in the products from its
    own onset (h0 = 0); all rows at all steps otherwise."""
    cfg = config.resolve("smoke", ["perc=0.3"])
    args = bench.step_args(cfg, [1], 16)
    tr = args[4][0]
    T = tr.x.shape[1]
    work = bench.active_work(args)
    onsets = tr.onset_step[~tr.catch]
    assert work["rows"] == len(onsets) and work["blocks"] == [(0, len(onsets))]
    assert work["active_steps"] == T - int(onsets.min())
    assert work["row_steps"] == int((T - onsets).sum())
    cfg2 = config.resolve("smoke", ["perc=0.3", "h0_zero=false"])
    work2 = bench.active_work(bench.step_args(cfg2, [1], 16))
    assert (work2["rows"], work2["active_steps"], work2["row_steps"]) == (16, T, 16 * T)


@pytest.mark.parametrize("args, needle", [(["--profile", "nope"], "nope"), (["--seeds-batched", "1"], "--seeds-batched")])
def test_bad_arguments_are_a_one_line_error(capsys, args, needle):
    assert bench.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]


def test_seeds_batched_sets_k(monkeypatch):
    """--seeds-batched K reaches the batched case (the single-seed case, measured by the fixture's
    run, is left out here)."""
    monkeypatch.setattr(bench, "train_step_case", lambda cfg, **kw: {"case": "train_step", "reference_ms": 1.0})
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert bench.main(ARGS + ["--seeds-batched", "3"]) == 0
    lines = [json.loads(ln) for ln in out.getvalue().splitlines() if ln.strip()]
    b = lines[1]
    assert b["case"] == "seeds_batched_k3" and b["k"] == 3
    assert b["batched_vs_separate_rel_err_I"] < 1e-5 and b["batched_vs_separate_rel_err_w"] < 1e-5


def test_roofline_with_streams_covers_the_same_products():
    """Split in streams or not, the roofline runs the same row-steps (the engine's split)."""
    import torch

    cfg = config.resolve("smoke", ["perc=0.3"])
    args = bench.step_args(cfg, [1, 2], 16)
    work = bench.active_work(args)
    per_group = [engine.row_schedule(work["starts"][sel], [(0, len(sel))], work["t0"], work["T"])
                 for sel in bench.row_groups(work["blocks"], 2)]
    assert sum(e - lo for sched in per_group for step in sched for lo, e in step) == work["row_steps"]
    prev = torch.get_num_threads()
    assert bench.roofline_s(args[0], work, streams=2) > 0 and bench.roofline_s(args[0], work) > 0
    assert torch.get_num_threads() == prev


def test_the_analysis_is_timed_on_the_shipped_trained_network_of_its_configuration():
    """The paper profile's analysis is timed on the shipped study's main seed 1, with the analysis
    settings asked for; a configuration trained otherwise, on its untrained seed 1."""
    if 1 not in shipped.shipped_seeds()["main"]:
        pytest.skip("data/paper holds no main seed 1")
    asked = config.resolve("paper", ["analysis.census_starts=64"], seed=7)
    cfg, sd, what = bench.analysed_model(asked)
    main_1 = shipped.checkpoint_bytes(shipped.default_dir(), "main", 1)[1]["state_dict"]
    assert what == "the shipped study's main seed 1 (trained)" and cfg == replace(asked, seed=1)
    assert set(sd) == set(main_1) and all(torch.equal(sd[k], v) for k, v in main_1.items())
    other = config.resolve("paper", ["train.epochs=3"], seed=7)
    cfg, sd, what = bench.analysed_model(other)
    assert what == "seed 1, untrained" and cfg == replace(other, seed=1)
    assert all(torch.equal(sd[k], v) for k, v in init_weights(other.model, 1).items())


def test_a_shipped_study_that_cannot_be_read_is_named_and_the_untrained_seed_timed(tmp_path, monkeypatch, capsys):
    if 1 not in shipped.shipped_seeds()["main"]:
        pytest.skip("data/paper holds no main seed 1")
    src = shipped.default_dir()
    broken = tmp_path / "paper"
    (broken / "main").mkdir(parents=True)
    for name in ("study.json", shipped.NETWORK):
        shutil.copy(src / name, broken / name)
    shutil.copytree(src / "main" / "seed_1", broken / "main" / "seed_1")
    (broken / "main" / "seed_1" / "train.json").write_text("[]")  # valid JSON, not training metadata
    monkeypatch.setattr(shipped, "default_dir", lambda: broken)
    cfg, sd, what = bench.analysed_model(config.resolve("paper", seed=1))
    assert what == "seed 1, untrained"
    assert all(torch.equal(sd[k], v) for k, v in init_weights(cfg.model, 1).items())
    err = capsys.readouterr().err
    assert "the shipped study cannot be read" in err and "untrained seed 1" in err, err
