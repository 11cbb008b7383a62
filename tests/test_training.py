"""sysa_core.training (README, Definitions 4): what changes, reproducibility, the checkpoint format,
learning, resuming after SIGKILL, and stopping on non-finite values."""
from __future__ import annotations

import json
import math
import shutil
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, Net1, assert_user_error, cli_env, run_cli, wait_for
from scipy import stats

from sysa_core import cli, config, files, model, runtime, task, training
from sysa_core.analysis import precision
from sysa_core.errors import TrainingDiverged, UserError

pytestmark = pytest.mark.usefixtures("single_threaded_torch")

TRAIN_SMOKE = ["train", "--profile", "smoke", "--seeds", "1", "--quiet"]


def _ck(folder: Path, seed: int = 1) -> dict:
    return torch.load(folder / f"sys_A{seed}_state.pth", weights_only=True)


def _tensors(obj, prefix=""):
    """Every tensor in a nested checkpoint, by path."""
    out = {}
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_tensors(v, f"{prefix}/{k}"))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            out.update(_tensors(v, f"{prefix}/{i}"))
    return out


def _assert_identical_tensors(a: dict, b: dict):
    ta, tb = _tensors(a), _tensors(b)
    assert set(ta) == set(tb)
    for k in ta:
        assert ta[k].dtype == tb[k].dtype and ta[k].shape == tb[k].shape, k
        assert ta[k].numpy().tobytes() == tb[k].numpy().tobytes(), f"{k} differs"


# -- the checkpoint and its metadata -------------------------------------------------------

def test_checkpoint_is_in_the_original_format(smoke_train, smoke_cfg):
    ck = _ck(smoke_train)  # loads with weights_only=True: no arbitrary objects inside
    assert {"epoch", "state_dict", "optimizer"} <= set(ck)
    assert ck["epoch"] == smoke_cfg.train.epochs - 1
    sd = ck["state_dict"]
    n = smoke_cfg.model.hidden_size
    assert set(sd) == {"G", "I", "w", "h0"}
    assert {k: tuple(v.shape) for k, v in sd.items()} == {"G": (n, n), "I": (n, 1), "w": (n, 1), "h0": (n,)}
    assert all(v.dtype == torch.float32 for v in sd.values())
    opt = ck["optimizer"]
    assert set(opt) == {"state", "param_groups"}
    assert set(opt["state"]) == {1, 2}  # Adam state for I and w (parameters 1 and 2 of G, I, w, h0)
    steps = smoke_cfg.train.epochs * (smoke_cfg.train.n_trials // smoke_cfg.train.batch_size)
    for i, name in ((1, "I"), (2, "w")):
        st = opt["state"][i]
        assert set(st) == {"step", "exp_avg", "exp_avg_sq"}
        assert float(st["step"]) == steps
        assert st["exp_avg"].shape == sd[name].shape
    assert opt["param_groups"][0]["lr"] == smoke_cfg.train.lr
    # the bare state dict the original also wrote holds the same tensors
    bare = torch.load(smoke_train / "sys_A1.pth", weights_only=True)
    assert set(bare) == set(sd) and all(torch.equal(bare[k], sd[k]) for k in sd)
    # and the project's loader reads both
    for f in ("sys_A1_state.pth", "sys_A1.pth"):
        got = files.load_checkpoint(smoke_train / f, hidden_size=n)["state_dict"]
        assert all(torch.equal(got[k], sd[k]) for k in sd)


def test_checkpoint_structure_matches_the_published_files(smoke_train, reference_dir):
    ours, ref = _ck(smoke_train), torch.load(reference_dir / "sys_A1_state.pth", weights_only=True)
    assert set(ref) <= set(ours)
    assert set(ours["state_dict"]) == set(ref["state_dict"])
    assert set(ours["optimizer"]["state"]) == set(ref["optimizer"]["state"])
    for i in ref["optimizer"]["state"]:
        assert set(ours["optimizer"]["state"][i]) == set(ref["optimizer"]["state"][i])
    g_ours, g_ref = ours["optimizer"]["param_groups"][0], ref["optimizer"]["param_groups"][0]
    assert set(g_ours) == set(g_ref)
    assert {k: v for k, v in g_ours.items() if k != "lr"} == {k: v for k, v in g_ref.items() if k != "lr"}


def test_metadata_records_config_code_version_and_histories(smoke_train, smoke_cfg):
    meta = json.loads((smoke_train / "sys_A1_train.json").read_text())
    assert meta["status"] == "complete" and meta["seed"] == 1
    assert meta["epochs_done"] == smoke_cfg.train.epochs
    assert config.Config.from_dict(meta["config"]) == smoke_cfg
    assert meta["training_id"] == smoke_cfg.training_id()
    assert {"sysa", "torch", "git_commit"} <= set(meta["code_version"])
    assert meta["torch_threads"] >= 1
    assert meta["device"] == str(runtime.resolve_device("auto"))  # where the steps ran ("cpu" without a GPU)
    steps = smoke_cfg.train.epochs * (smoke_cfg.train.n_trials // smoke_cfg.train.batch_size)
    for k in ("loss", "grad_norm_I", "grad_norm_w"):
        h = meta["history"][k]
        assert len(h) == steps and all(v > 0 for v in h), k
    # per-step values, not a running sum (the original's bug): a cumulative series never decreases
    assert any(b < a for a, b in zip(meta["history"]["grad_norm_w"], meta["history"]["grad_norm_w"][1:]))
    for png in ("sys_A1_err.png", "sys_A1_param.png"):
        assert (smoke_train / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_first_steps_match_autograd_and_adam(smoke_train, smoke_cfg):
    """The recorded loss and gradient norms of steps 0 and 1 equal an independent recomputation:
    the same seed-derived batches, Net1 + autograd, torch's Adam on I and w."""
    cfg = smoke_cfg
    hist = json.loads((smoke_train / "sys_A1_train.json").read_text())["history"]
    st = training._new_state(cfg, None)
    net = Net1(cfg, model.init_weights(cfg.model, 1))
    opt = torch.optim.Adam([net.I, net.w], lr=cfg.train.lr)
    for step in range(2):
        idx = training.batch_indices(st.batch_gen, cfg.train.n_trials, cfg.train.batch_size)
        b = st.trials.subset(idx)
        opt.zero_grad()
        loss = task.training_loss(net(b.x), b.target)
        loss.backward()
        assert hist["loss"][step] == pytest.approx(float(loss.detach()), rel=1e-4)
        assert hist["grad_norm_I"][step] == pytest.approx(float(net.I.grad.norm()), rel=1e-3)
        assert hist["grad_norm_w"][step] == pytest.approx(float(net.w.grad.norm()), rel=1e-3)
        opt.step()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_adam_is_torchs_adam_optimizer_to_the_bit_and_resumes_from_its_state(dtype):
    """training.Adam, on stacked weights, against torch.optim.Adam (defaults but lr, which changes
    every step as the schedules change it): the same weights, moments and step count, bit for bit,
    also when a second instance takes over from the first's state (a resume)."""
    gen = torch.Generator().manual_seed(5)
    I0, w0 = (torch.randn(3, 20, 1, generator=gen, dtype=dtype) for _ in range(2))
    grads = [(torch.randn(3, 20, 1, generator=gen, dtype=dtype), torch.randn(3, 20, 1, generator=gen, dtype=dtype) * 1e-3)
             for _ in range(8)]
    lrs = [0.03 * (1 + math.cos(math.pi * k / 8)) / 2 for k in range(8)]
    ref_I, ref_w = torch.nn.Parameter(I0.clone()), torch.nn.Parameter(w0.clone())
    ref = torch.optim.Adam([ref_I, ref_w], lr=lrs[0])
    I, w = I0.clone(), w0.clone()
    ours = training.Adam(I, w)
    for k, ((gI, gw), lr) in enumerate(zip(grads, lrs)):
        if k == 4:  # resume: each model's state as a checkpoint holds it, then stacked again
            st = ours.state()
            per_model = [{"step": st["step"], "I": (st["I"][0][r], st["I"][1][r]), "w": (st["w"][0][r], st["w"][1][r])}
                         for r in range(3)]
            ours = training.Adam(I, w, per_model)
        ref_I.grad, ref_w.grad = gI.clone(), gw.clone()
        ref.param_groups[0]["lr"] = lr
        ref.step()
        ours.step(gI, gw, lr)
        assert torch.equal(I, ref_I.detach()) and torch.equal(w, ref_w.detach()), f"step {k}"
    st = ours.state()
    for name, p in (("I", ref_I), ("w", ref_w)):
        s = ref.state[p]
        assert torch.equal(st[name][0], s["exp_avg"]) and torch.equal(st[name][1], s["exp_avg_sq"])
        assert torch.equal(st["step"], s["step"]) and st["step"].dtype == s["step"].dtype


def test_training_does_not_import_torch_dynamo():
    """A process that trains never imports torch._dynamo (torch.optim.Adam's step wrapper would:
    the largest import of a training process)."""
    code = ("import sys\n"
            "from sysa_core import config, training\n"
            "cfg = config.resolve('smoke', seed=1, overrides=['train.epochs=1'])\n"
            "training.train(cfg, None, progress=False)\n"
            "assert 'torch._dynamo' not in sys.modules, 'torch._dynamo was imported'\n"
            "import torch; torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))]).step()\n"
            "assert 'torch._dynamo' in sys.modules  # the check itself can fail\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, env=cli_env(),
                          timeout=300)
    assert proc.returncode == 0, proc.stderr


# -- what training changes, reproducibility, learning ------------------------------------

def test_training_changes_only_I_and_w(smoke_train, smoke_cfg):
    init = model.init_weights(smoke_cfg.model, 1)
    sd = _ck(smoke_train)["state_dict"]
    assert torch.equal(sd["G"], init["G"]) and torch.equal(sd["h0"], init["h0"])
    assert not torch.equal(sd["I"], init["I"]) and not torch.equal(sd["w"], init["w"])


def test_two_runs_give_byte_identical_checkpoints(smoke_train, smoke_train_again):
    """Same seed and configuration, two processes: the checkpoint files are byte-identical (every
    tensor in them: weights, Adam state, generator state, histories), and so is the bare state dict."""
    for name in ("sys_A1_state.pth", "sys_A1.pth"):
        assert (smoke_train / name).read_bytes() == (smoke_train_again / name).read_bytes(), name
    _assert_identical_tensors(_ck(smoke_train), _ck(smoke_train_again))
    _assert_identical_tensors(torch.load(smoke_train / "sys_A1.pth", weights_only=True),
                              torch.load(smoke_train_again / "sys_A1.pth", weights_only=True))
    h1 = json.loads((smoke_train / "sys_A1_train.json").read_text())["history"]
    h2 = json.loads((smoke_train_again / "sys_A1_train.json").read_text())["history"]
    assert h1 == h2


def test_in_process_runs_are_identical_and_seeds_differ(smoke_cfg):
    cfg = config.resolve("smoke", ["epochs=2"])
    a = training.train(cfg, progress=False)
    b = training.train(cfg, progress=False)
    c = training.train(config.resolve("smoke", ["epochs=2"], seed=2), progress=False)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["w"], c["w"])


def test_it_learns(smoke_train, smoke_cfg):
    """Precision (lower is better) improves at least 10x over the same network untrained."""
    before = precision.evaluate(smoke_cfg, model.init_weights(smoke_cfg.model, 1)).precision
    after = precision.evaluate(smoke_cfg, _ck(smoke_train)["state_dict"]).precision
    assert after * 10 <= before, (before, after)


# -- resuming after SIGKILL --------------------------------------------------------------

def test_sigkill_mid_training_then_rerun_equals_an_uninterrupted_run(tmp_path, smoke_train, smoke_cfg):
    out = tmp_path / "run"
    ck_path = out / "seed_1" / "sys_A1_state.pth"
    cmd = [sys.executable, "-m", "sysa_core", *TRAIN_SMOKE, "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=cli_env())
    try:
        def first_checkpoint() -> bool:  # the first epoch's: training is in a later epoch now
            assert proc.poll() is None, f"training ended before its first checkpoint: {proc.stderr.read()}"
            return ck_path.exists()

        wait_for(first_checkpoint, timeout=300, what="the first checkpoint", every_s=0.002)
        proc.send_signal(signal.SIGSTOP)  # frozen wherever it is, then killed there
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    epoch_at_kill = files.load_checkpoint(ck_path)["epoch"]
    assert epoch_at_kill < smoke_cfg.train.epochs - 1, "the kill came too late to test resuming"
    assert not (out / "seed_1" / "sys_A1.pth").exists()

    again = run_cli(*TRAIN_SMOKE, "--out", out)
    assert again.returncode == 0, again.stderr
    _assert_identical_tensors(_ck(out / "seed_1"), _ck(smoke_train))
    meta = json.loads((out / "seed_1" / "sys_A1_train.json").read_text())
    ref = json.loads((smoke_train / "sys_A1_train.json").read_text())
    assert meta["status"] == "complete" and meta["history"] == ref["history"]


def test_the_metadata_says_running_after_each_epoch_and_holds_the_histories_when_complete(tmp_path, smoke_cfg,
                                                                                         monkeypatch):
    """After every epoch the metadata says "running", with the epochs done and the time so far, and
    leaves the histories to the checkpoint; the finished training's metadata holds them, equal to the
    checkpoint's."""
    seen = []
    save = training._save_group_epoch

    def observed(group, *args):
        save(group, *args)
        seen.append(json.loads(files.meta_path(tmp_path, 1).read_text()))

    monkeypatch.setattr(training, "_save_group_epoch", observed)
    training.train(smoke_cfg, tmp_path, progress=False)
    assert [m["epochs_done"] for m in seen] == list(range(1, smoke_cfg.train.epochs + 1))
    assert all(m["status"] == "running" and "history" not in m and "convergence" not in m for m in seen)
    times = [m["train_seconds"] for m in seen]
    assert times == sorted(times) and times[0] > 0
    final = json.loads(files.meta_path(tmp_path, 1).read_text())
    extra = files.load_checkpoint(files.checkpoint_path(tmp_path, 1))["extra"]
    assert final["status"] == "complete" and final["train_seconds"] >= times[-1]
    assert final["history"]["loss"] == extra["loss"].tolist()
    assert final["history"]["monitor_loss"] == extra["monitor_loss"].tolist()
    assert final["convergence"]["converged"] is not None


def test_rerun_of_a_finished_run_changes_nothing(tmp_path, smoke_train, capsys):
    out = tmp_path / "run"
    shutil.copytree(smoke_train, out / "seed_1")
    before = {p.name: p.read_bytes() for p in (out / "seed_1").iterdir()}
    assert cli.main([*TRAIN_SMOKE, "--out", str(out)]) == 0  # the same command, in this process
    assert {p.name: p.read_bytes() for p in (out / "seed_1").iterdir()} == before


def test_resume_refuses_a_checkpoint_of_another_configuration(tmp_path, smoke_train, capsys):
    out = tmp_path / "run"
    shutil.copytree(smoke_train, out / "seed_1")
    before = {p.name: p.read_bytes() for p in (out / "seed_1").iterdir()}
    rc = cli.main([*TRAIN_SMOKE, "--out", str(out), "--set", "lr=0.03"])
    assert_user_error(capsys.readouterr().err, rc, "seed_1", "another training configuration", "another --out")
    assert {p.name: p.read_bytes() for p in (out / "seed_1").iterdir()} == before


# -- non-finite values stop training -----------------------------------------------------

@pytest.mark.parametrize("lr, real_process", [("1e17", True), ("1e39", False)])
def test_huge_learning_rate_stops_with_a_message(tmp_path, capsys, lr, real_process):
    """lr 1e17: the loss overflows float32 in the first epoch; lr 1e39: Adam's step size itself
    overflows. Either way: one line, status 2, metadata 'failed', no checkpoint."""
    args = [*TRAIN_SMOKE, "--out", str(tmp_path), "--set", f"lr={lr}"]
    if real_process:
        proc = run_cli(*args)
        rc, err = proc.returncode, proc.stderr
    else:
        rc = cli.main(args)
        err = capsys.readouterr().err
    line = assert_user_error(err, rc, "seed 1", "non-finite", "epoch 0")
    meta = json.loads((tmp_path / "seed_1" / "sys_A1_train.json").read_text())
    assert meta["status"] == "failed" and meta["message"] == line.removeprefix("sysa: error: ")
    assert meta["epochs_done"] == 0
    assert not (tmp_path / "seed_1" / "sys_A1_state.pth").exists()


def test_nan_mid_training_keeps_the_previous_checkpoint(tmp_path, monkeypatch, smoke_cfg, smoke_train):
    """A NaN appears in the engine's result at epoch 3 (step 1): training stops with the message,
    epoch 2's checkpoint stays intact and loadable, the metadata says 'failed'; re-running after the
    cause is gone continues from epoch 2 to the end."""
    folder = tmp_path / "seed_1"
    real = training.ENGINES["adjoint"]
    steps = smoke_cfg.train.n_trials // smoke_cfg.train.batch_size
    calls = {"n": 0}

    def nan_at_epoch_3(*args):
        res = real(*args)
        calls["n"] += 1
        if calls["n"] == 3 * steps + 2:
            res.dI[0, 0, 0] = float("nan")
        return res

    monkeypatch.setitem(training.ENGINES, "adjoint", nan_at_epoch_3)
    with pytest.raises(TrainingDiverged) as exc:
        training.train(smoke_cfg, folder, progress=False)
    msg = str(exc.value)
    assert "non-finite gradient at epoch 3, step 1" in msg and "epoch 2" in msg and "\n" not in msg
    ck = files.load_checkpoint(folder / "sys_A1_state.pth", hidden_size=smoke_cfg.model.hidden_size)
    assert ck["epoch"] == 2 and all(torch.isfinite(v).all() for v in ck["state_dict"].values())
    meta = json.loads((folder / "sys_A1_train.json").read_text())
    assert meta["status"] == "failed" and meta["message"] == msg and meta["epochs_done"] == 3
    ref = json.loads((smoke_train / "sys_A1_train.json").read_text())["history"]["loss"]
    assert ck["extra"]["loss"].tolist() == pytest.approx(ref[:3 * steps], rel=1e-5)
    assert not (folder / "sys_A1.pth").exists()

    monkeypatch.setitem(training.ENGINES, "adjoint", real)
    final = training.train(smoke_cfg, folder, progress=False)
    want = _ck(smoke_train)["state_dict"]
    for k in want:
        torch.testing.assert_close(final[k], want[k], rtol=1e-5, atol=1e-6)
    assert json.loads((folder / "sys_A1_train.json").read_text())["status"] == "complete"


# -- seeds as one computation ---------------------------------------------------------

EPOCHS = 4  # 4 x 4 Adam steps


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


@pytest.mark.parametrize("overrides", [[], ["init=independent", "G_per_seed=true"]],
                         ids=["shared_G", "G_per_seed"])
def test_two_seeds_batched_equal_separate_training(overrides):
    cfg = config.resolve("smoke", [f"epochs={EPOCHS}", *overrides])
    together = training.train_seeds(cfg, [1, 2], batch_seeds=True, progress=False)
    apart = {s: training.train_seeds(cfg, [s], batch_seeds=False, progress=False)[s] for s in (1, 2)}
    init = {s: model.init_weights(cfg.model, s) for s in (1, 2)}
    if overrides:  # the variant really has a G per seed
        assert not torch.equal(together[1]["G"], together[2]["G"])
    for s in (1, 2):
        for k in ("I", "w"):
            assert not torch.equal(apart[s][k], init[s][k]), f"seed {s} {k} did not train"
            err = _rel(together[s][k], apart[s][k])
            assert err < 1e-5, f"seed {s} {k}: batched vs separate rel err {err:.2e}"
        for k in ("G", "h0"):
            assert torch.equal(together[s][k], apart[s][k])
    # the two seeds are different models, not copies of one
    assert _rel(together[1]["w"], together[2]["w"]) > 0.1


def test_main_and_control_models_batched_equal_separate_training():
    """A seed-compatible and an independently initialised model (the control ensemble) share G and
    train as one computation, with the result of training each alone."""
    cfg = config.resolve("smoke", [f"epochs={EPOCHS}"], seed=1)
    ctl = config.resolve("smoke", [f"epochs={EPOCHS}", "init=independent"], seed=1)
    together = training.train_models([(cfg, None), (ctl, None)], batch_seeds=True, progress=False)
    apart = [training.train(c, progress=False) for c in (cfg, ctl)]
    for a, b in zip(together, apart):
        for k in ("I", "w"):
            assert _rel(a[k], b[k]) < 1e-5
    assert _rel(together[0]["w"], together[1]["w"]) > 0.1


def test_a_seed_depends_on_its_batch_companions_only_by_rounding():
    """Seed 1 trained in a default batch of MODELS_PER_BATCH seeds and alone: its batch companions
    change only the float32 summation order of the shared products (a few 1e-7 relative after
    16 Adam steps)."""
    cfg = config.resolve("smoke", [f"epochs={EPOCHS}"])
    seeds = list(range(1, training.MODELS_PER_BATCH + 1))
    states = [training._new_state(replace(cfg, seed=s), None) for s in seeds]
    assert [len(g) for g in training.batches(states, None, torch.device("cpu"))] == [len(seeds)]
    together = training.train_seeds(cfg, seeds, progress=False)[1]
    alone = training.train_seeds(cfg, [1], progress=False)[1]
    for k in ("I", "w"):
        err = _rel(together[k], alone[k])
        assert err < 1e-5, f"{k}: in a batch of {len(seeds)} vs alone, rel err {err:.2e}"


def test_the_metadata_names_each_models_batch(tmp_path):
    cfg = config.resolve("smoke", ["epochs=1"])
    folders = {s: tmp_path / f"seed_{s}" for s in (1, 2)}
    ctl = config.resolve("smoke", ["epochs=1", "init=independent"], seed=1)
    training.train_models([(replace(cfg, seed=1), folders[1]), (replace(cfg, seed=2), folders[2]),
                           (ctl, tmp_path / "control")], progress=False)
    for folder, s in ((folders[1], 1), (folders[2], 2), (tmp_path / "control", 1)):
        meta = json.loads((folder / f"sys_A{s}_train.json").read_text())
        assert meta["trained_with"] == [["1", "2", "c1"]] and meta["trained_together"] == 3


# -- the original's checkpoints in a seed folder ----------------------------------------------

def test_a_finished_checkpoint_without_sysa_metadata_is_loaded_not_retrained(tmp_path, reference_dir):
    """The original's sys_A1_state.pth (epoch 49 of 50, no sysa resume data) in a seed folder is
    the finished model of the paper configuration: loaded as it is, nothing written."""
    folder = tmp_path / "seed_1"
    folder.mkdir()
    shutil.copyfile(reference_dir / "sys_A1_state.pth", folder / "sys_A1_state.pth")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    sd = training.train(config.resolve("paper", seed=1), folder, progress=False)
    ref = torch.load(reference_dir / "sys_A1_state.pth", weights_only=True)["state_dict"]
    assert all(torch.equal(sd[k], ref[k]) for k in ref)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    # not the last epoch of this configuration: it cannot be continued
    with pytest.raises(UserError, match="without sysa's resume data at epoch 49"):
        training.train(config.resolve("paper", ["epochs=60"], seed=1), folder, progress=False)


def test_batches_group_compatible_models_by_count_within_memory(monkeypatch):
    cfg = config.resolve("smoke")
    ctl = config.resolve("smoke", ["init=independent"])
    other = config.resolve("smoke", ["lr=0.05"])
    states = [training._new_state(replace(c, seed=s), None) for c in (cfg, ctl, other) for s in (1, 2, 3)]
    cpu = torch.device("cpu")
    key = lambda groups: [[(st.cfg.model.init, st.cfg.train.lr, st.seed) for st in g] for g in groups]
    # main and control share everything but the initialisation: one batch; another lr: its own
    assert key(training.batches(states, True, cpu)) == [key([states[:6]])[0], key([states[6:]])[0]]
    assert training.batches(states, False, cpu) == [[st] for st in states]
    assert key(training.batches(states, None, cpu)) == key(training.batches(states, True, cpu))  # under 8 each
    # more models than MODELS_PER_BATCH: as few batches as they need, of equal sizes
    many = [training._new_state(replace(cfg, seed=s), None) for s in range(1, 21)]
    assert [len(g) for g in training.batches(many, None, cpu)] == [7, 7, 6]
    assert [st.seed for g in training.batches(many, None, cpu) for st in g] == list(range(1, 21))
    # the same batches whatever memory the machine has, as long as it holds them
    big = int(training.MODELS_PER_BATCH * training.model_bytes(cfg) / training.BATCH_MEMORY_SHARE) + 1
    assert key(training.batches(many, None, cpu, memory=big)) == key(training.batches(many, None, cpu, memory=100 * big))
    # a machine that cannot hold them trains fewer at a time: memory for two models per batch
    two = int(2.5 * training.model_bytes(cfg) / training.BATCH_MEMORY_SHARE)
    assert [len(g) for g in training.batches(states, None, cpu, memory=two)] == [2, 2, 2, 2, 1]
    assert [len(g) for g in training.batches(states, None, cpu, memory=1)] == [1] * 9
    monkeypatch.setattr(training.runtime, "available_memory", lambda: two)  # the default: this machine's
    assert [len(g) for g in training.batches(states, None, cpu)] == [2, 2, 2, 2, 1]
    # on a GPU the paper ensemble, main and control, is one batch where its memory holds it
    gpu, paper = torch.device("cuda"), config.resolve("paper")
    ens = [training._new_state(replace(c, seed=s), None) for c in (paper, config.resolve("paper", ["init=independent"])) for s in range(1, 21)]
    per_gpu = int(training.MODELS_PER_BATCH_GPU * training.model_bytes(paper) / training.BATCH_MEMORY_SHARE) + 1
    assert [len(g) for g in training.batches(ens, None, gpu, memory=per_gpu)] == [40]
    assert [len(g) for g in training.batches(ens, None, gpu, memory=per_gpu // 2)] == [20, 20]
    assert [len(g) for g in training.batches(ens, None, cpu, memory=per_gpu)] == [8] * 5
    states[0].epoch = 3  # models at another epoch are not stepped with the others
    assert [len(g) for g in training.batches(states, True, cpu)] == [1, 5, 3]


# -- the learning-rate schedule and convergence -----------------------------------------------

def test_learning_rate_schedules():
    const = config.resolve("smoke").train
    cos = config.resolve("smoke", ["lr_schedule=cosine"]).train
    total = cos.epochs * (cos.n_trials // cos.batch_size)
    assert all(training.learning_rate(const, t) == const.lr for t in (0, 7, total - 1))
    assert training.learning_rate(cos, 0) == cos.lr
    assert training.learning_rate(cos, total // 2) == pytest.approx(cos.lr / 2)
    lrs = [training.learning_rate(cos, t) for t in range(total)]
    assert all(b < a for a, b in zip(lrs, lrs[1:])) and 0 < lrs[-1] < 0.01 * cos.lr


def test_convergence_of_known_loss_curves():
    steps = list(range(800, 1001, 20))  # the last 20 % of 1000 steps
    flat = training.convergence(steps, [0.5] * len(steps), 1000)
    assert flat == {"final_loss": 0.5, "loss_fall": pytest.approx(0.0, abs=1e-12), "converged": True}
    # a loss falling linearly from 1.1 to 0.9 over the window falls by 0.2 / mean 1.0 = 20 %
    falling = training.convergence(steps, [1.1 - 0.2 * (s - 800) / 200 for s in steps], 1000)
    assert falling["loss_fall"] == pytest.approx(0.2) and falling["converged"] is False
    rising = training.convergence(steps, [1.0 + 0.001 * (s - 800) for s in steps], 1000)
    assert rising["loss_fall"] < 0 and rising["converged"] is True
    assert training.convergence([1000], [0.3], 1000) == {"final_loss": 0.3, "loss_fall": None, "converged": None}
    assert training.convergence([1000, 1000], [0.3, 0.2], 1000)["loss_fall"] is None  # no two steps apart


def test_convergence_is_the_trend_a_few_excursions_do_not_pull():
    """A loss falling 5 % over the window, with three upward excursions early in it (as Adam's late
    steps make them): the Theil-Sen fall equals scipy's, the trend is found, and the model has
    converged, where a least-squares line, pulled by the excursions, would call it still falling."""
    rng = np.random.default_rng(0)
    s = np.arange(800, 1001, 5, dtype=np.float64)
    L = 1.0 - 0.05 * (s - 800) / 200 + rng.normal(0, 0.002, len(s))
    L[[1, 3, 6]] += 0.15
    c = training.convergence(s.tolist(), L.tolist(), 1000)
    reference = -stats.theilslopes(L, s).slope * 200 / L.mean()
    assert c["loss_fall"] == pytest.approx(reference, rel=1e-12)
    assert training.loss_trend(s, L)[1] == pytest.approx(stats.theilslopes(L, s, method="joint").intercept, rel=1e-12)
    assert c["loss_fall"] == pytest.approx(0.05 / L[4:].mean(), rel=0.1) and c["converged"] is True
    assert -np.polyfit(s, L, 1)[0] * 200 / L.mean() > training.CONVERGENCE_FALL


def test_the_monitor_loss_is_the_training_loss_of_the_first_trials(smoke_train, smoke_cfg):
    """The smoke profile has 10 epochs of 4 steps: the epochs ending in the last 20 % of the steps
    end at steps 32, 36 and 40; the last monitor loss equals an independent recomputation (Net1 on
    the first training trials) from the final weights, to float32 rounding carried along the
    trajectory (the engine's fused Euler update; bounded as in tests/test_engine.py)."""
    meta = json.loads((smoke_train / "sys_A1_train.json").read_text())
    h = meta["history"]
    assert h["monitor_step"] == [32, 36, 40]
    st = training._new_state(smoke_cfg, None)
    tr = st.trials.subset(torch.arange(min(training.MONITOR_TRIALS, len(st.trials))))
    net = Net1(smoke_cfg, _ck(smoke_train)["state_dict"])
    with torch.no_grad():
        ref = float(task.training_loss(net(tr.x), tr.target))
    assert h["monitor_loss"][-1] == pytest.approx(ref, rel=1e-4)
    conv = training.convergence(h["monitor_step"], h["monitor_loss"], 40)
    assert meta["convergence"] == conv and set(conv) == {"final_loss", "loss_fall", "converged"}


def test_the_monitor_loss_of_a_float64_batch_is_the_reference_to_1e_9(tmp_path):
    """Two seeds trained together in float64: each one's recorded monitor losses are the training
    loss of its first trials, recomputed independently (Net1) from its final weights, to 1e-9
    relative, and each model's monitor is its own (not its batch companion's)."""
    cfg = config.resolve("smoke", ["dtype=float64", "epochs=5"])
    folders = {s: tmp_path / f"seed_{s}" for s in (1, 2)}
    training.train_seeds(cfg, [1, 2], folders, batch_seeds=True, progress=False)
    refs = {}
    for s, folder in folders.items():
        meta = json.loads((folder / f"sys_A{s}_train.json").read_text())
        assert meta["trained_together"] == 2
        st = training._new_state(replace(cfg, seed=s), None)
        tr = st.trials.subset(torch.arange(min(training.MONITOR_TRIALS, len(st.trials))))
        with torch.no_grad():
            refs[s] = float(task.training_loss(Net1(cfg, _ck(folder, s)["state_dict"])(tr.x), tr.target))
        assert meta["history"]["monitor_loss"][-1] == pytest.approx(refs[s], rel=1e-9)
    assert refs[1] != pytest.approx(refs[2], rel=1e-3)


def test_an_interrupted_cosine_schedule_resumes_to_the_same_bits(tmp_path, monkeypatch):
    cfg = config.resolve("smoke", ["lr_schedule=cosine", "epochs=6", "lr=0.05"])
    straight = training.train(cfg, progress=False)
    real = training.ENGINES["adjoint"]
    calls = {"n": 0}

    def stop_in_epoch_3(*args):
        calls["n"] += 1
        if calls["n"] == 3 * 4 + 2:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setitem(training.ENGINES, "adjoint", stop_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        training.train(cfg, tmp_path, progress=False)
    assert files.load_checkpoint(tmp_path / "sys_A1_state.pth")["epoch"] == 2
    monkeypatch.setitem(training.ENGINES, "adjoint", real)
    resumed = training.train(cfg, tmp_path, progress=False)
    assert all(torch.equal(resumed[k], straight[k]) for k in straight)
    ck = files.load_checkpoint(tmp_path / "sys_A1_state.pth")
    assert ck["optimizer"]["param_groups"][0]["lr"] == training.learning_rate(cfg.train, 6 * 4 - 1)


class _Killed(BaseException):
    """Stands for the process being killed at that instant (nothing after it runs)."""


def _batched_pair(cfg, run: Path) -> list:
    return [(replace(cfg, seed=s), files.seed_dir(run, s)) for s in (1, 2)]


@pytest.mark.parametrize("phase", ["before the first checkpoint is moved into place",
                                   "between the two checkpoints of one epoch",
                                   "while writing the second new checkpoint"])
def test_a_batch_killed_between_its_checkpoints_resumes_to_the_same_bits(smoke_cfg, tmp_path, monkeypatch, phase):
    """Two models trained as one computation write each epoch's checkpoints in two phases; a kill
    anywhere in between leaves them resumable as one batch again, at one epoch, to the bits of the
    uninterrupted training (without it, one model is an epoch ahead and they train apart)."""
    cfg = replace(smoke_cfg, train=replace(smoke_cfg.train, epochs=4))
    ref = tmp_path / "ref"
    training.train_models(_batched_pair(cfg, ref), batch_seeds=True, progress=False)
    run = tmp_path / "run"
    calls = {"replace": 0, "save": 0}
    real_replace, real_save = training.os.replace, files.save_torch

    def replace_then_die(src, dst):
        if str(dst).endswith("_state.pth") and "-e2-" in str(src):  # a NEXT file moved into place
            calls["replace"] += 1
            if calls["replace"] == (1 if phase.startswith("before") else 2):
                raise _Killed
        real_replace(src, dst)

    def save_then_die(path, obj):
        if training.NEXT in str(path) and "-e2-" in str(path) and phase.startswith("while"):
            calls["save"] += 1
            if calls["save"] == 2:
                raise _Killed
        real_save(path, obj)

    monkeypatch.setattr(training.os, "replace", replace_then_die)
    monkeypatch.setattr(files, "save_torch", save_then_die)
    with pytest.raises(_Killed):
        training.train_models(_batched_pair(cfg, run), batch_seeds=True, progress=False)
    monkeypatch.undo()
    epochs = [files.load_checkpoint(files.checkpoint_path(files.seed_dir(run, s), s))["epoch"] for s in (1, 2)]
    if phase.startswith("between"):
        assert epochs == [2, 1], sorted(p.name for p in run.rglob("*"))  # the state the kill left
    training.train_models(_batched_pair(cfg, run), batch_seeds=True, progress=False)
    for s in (1, 2):
        a, b = (files.checkpoint_path(files.seed_dir(d, s), s) for d in (ref, run))
        assert files.sha256(a) == files.sha256(b), f"seed {s}"
        assert not list(files.seed_dir(run, s).glob(f"*{training.NEXT}-*"))
    assert json.loads(files.meta_path(files.seed_dir(run, 2), 2).read_text())["trained_with"] == [["1", "2"]]


def test_only_the_batch_in_training_holds_its_trials(smoke_cfg, monkeypatch):
    """The training trials are drawn when a model's batch trains and released after it, so that
    training.memory_needed (one batch's trials) bounds what is held."""
    held, most = [0], [0]
    real = training.draw_trials

    def counting(*args, **kwargs):
        held[0] += 1
        most[0] = max(most[0], held[0])
        return real(*args, **kwargs)

    real_release = training.SeedState.release_trials

    def release(self):
        if self._trials is not None:
            held[0] -= 1
        real_release(self)

    monkeypatch.setattr(training, "draw_trials", counting)
    monkeypatch.setattr(training.SeedState, "release_trials", release)
    cfg = replace(smoke_cfg, train=replace(smoke_cfg.train, epochs=1))
    training.train_seeds(cfg, [1, 2, 3], batch_seeds=False, progress=False)
    assert most[0] == 1 and held[0] == 0
