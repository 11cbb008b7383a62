"""The CUDA path: the engine's step on a GPU against autograd, training on a GPU against the same
training on the CPU, its reproducibility, `sysa train --device cuda`, and a whole `sysa run` on a GPU
machine.

These run only where torch sees a CUDA GPU (the CPU is the path the rest of the suite checks);
elsewhere they are skipped, and `bash .ci/run` has none.
"""
from __future__ import annotations

import json

import pytest
import torch

from conftest import SMOKE_RUN, Net1, moved_weights, run_cli

from sysa_core import config, engine, model, task, training
from sysa_core.model import generator

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")

CUDA = torch.device("cuda")
TOL = {"float32": 1e-5, "float64": 1e-9}
EPOCHS = 4  # 4 x 4 Adam steps of the smoke profile


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).norm() / b.norm())


def _reference(cfg, wts, trials):
    """Loss and gradients of Net1's plain loop and autograd, in float64 on the CPU."""
    cfg64 = cfg.with_dtype("float64")
    net = Net1(cfg64, {k: v.double() for k, v in wts.items()})
    y = net(trials.x.double())
    loss = task.training_loss(y, trials.target.double())
    dI, dw = torch.autograd.grad(loss, (net.I, net.w))
    return loss.detach(), dI, dw


@pytest.mark.parametrize("per_seed_G", [False, True], ids=["shared_G", "G_per_seed"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_adjoint_on_cuda_matches_float64_autograd_on_the_cpu(dtype, per_seed_G):
    """Eight seeds as one step on the GPU: each seed's loss and gradients agree with its own
    float64 autograd reference on the CPU."""
    extra = ["init=independent", "G_per_seed=true"] if per_seed_G else []
    cfg = config.resolve("smoke", ["hidden_size=64", f"dtype={dtype}", "perc=0.3", *extra])
    dt = model.DTYPES[dtype]
    seeds = list(range(1, 9))
    wts = [{k: v.to(dt) for k, v in moved_weights(cfg.model, s, s + 77, dI=0.5, dw=0.1).items()} for s in seeds]
    batches = [task.draw_trials(cfg, 8, generator(1000 + s)) for s in seeds]
    G = torch.stack([w["G"] for w in wts]) if per_seed_G else wts[0]["G"]
    args = (G.to(CUDA), torch.stack([w["I"] for w in wts]).to(CUDA), torch.stack([w["w"] for w in wts]).to(CUDA),
            torch.stack([w["h0"] for w in wts]).to(CUDA), batches, cfg.alpha, cfg.model.g_G)
    res = engine.adjoint_step(*args)
    fwd = engine.forward_loss(*args)  # the convergence monitor's pass
    assert res.dI.device.type == "cuda" and res.dI.dtype == dt
    tol = TOL[dtype]
    for k, s in enumerate(seeds):
        loss, dI, dw = _reference(cfg, wts[k], batches[k])
        assert float(res.loss[k]) == pytest.approx(float(loss), rel=tol), f"seed {s} loss"
        assert float(fwd[k]) == pytest.approx(float(loss), rel=tol), f"seed {s} forward_loss"
        assert _rel(res.dI[k], dI) < tol, f"seed {s} dI: {_rel(res.dI[k], dI):.2e}"
        assert _rel(res.dw[k], dw) < tol, f"seed {s} dw: {_rel(res.dw[k], dw):.2e}"


def test_the_autograd_reference_runs_on_cuda():
    cfg = config.resolve("smoke", ["hidden_size=64", "dtype=float64", "perc=0.3"])
    wts = moved_weights(cfg.model, 1, 78, dI=0.5, dw=0.1)
    tr = task.draw_trials(cfg, 8, generator(1001))
    ag = engine.autograd_step(wts["G"].double().to(CUDA), wts["I"].double()[None].to(CUDA),
                              wts["w"].double()[None].to(CUDA), wts["h0"].double()[None].to(CUDA), [tr],
                              cfg.alpha, cfg.model.g_G)
    loss, dI, dw = _reference(cfg, wts, tr)
    assert float(ag.loss[0]) == pytest.approx(float(loss), rel=1e-12)
    assert _rel(ag.dI[0], dI) < 1e-12 and _rel(ag.dw[0], dw) < 1e-12


@pytest.mark.parametrize("dtype,tol", [("float32", 1e-4), ("float64", 1e-10)])
def test_training_on_cuda_equals_training_on_the_cpu(dtype, tol):
    """Two seeds and a control model trained as one batch on the GPU and on the CPU: the same
    weights up to rounding (16 Adam steps of different summation orders)."""
    cfg = config.resolve("smoke", [f"epochs={EPOCHS}", f"dtype={dtype}"], seed=1)
    ctl = config.resolve("smoke", [f"epochs={EPOCHS}", f"dtype={dtype}", "init=independent"], seed=1)
    models = [(cfg, None), (config.resolve("smoke", [f"epochs={EPOCHS}", f"dtype={dtype}"], seed=2), None), (ctl, None)]
    gpu = training.train_models(models, batch_seeds=True, progress=False, device="cuda")
    cpu = training.train_models(models, batch_seeds=True, progress=False, device="cpu")
    init = model.init_weights(cfg.model, 1)
    for a, b in zip(gpu, cpu):
        for k in ("G", "h0"):
            assert torch.equal(a[k], b[k])
        for k in ("I", "w"):
            assert a[k].device.type == "cpu"
            err = _rel(a[k], b[k])
            print(f"{dtype} {k}: GPU vs CPU rel err {err:.2e}")
            assert err < tol, f"{k}: GPU vs CPU rel err {err:.2e}"
    assert not torch.equal(gpu[0]["w"], init["w"])


def test_a_cuda_step_is_reproducible_to_the_bit():
    """The same step twice on the GPU, for seeds stacked on a shared G (their gradients with respect
    to I are summed over the rows of each seed)."""
    cfg = config.resolve("smoke", ["perc=0.3"])
    wts = [model.init_weights(cfg.model, s) for s in (1, 2, 3)]
    args = (wts[0]["G"].to(CUDA), torch.stack([w["I"] for w in wts]).to(CUDA),
            torch.stack([w["w"] for w in wts]).to(CUDA), torch.stack([w["h0"] for w in wts]).to(CUDA),
            [task.draw_trials(cfg, 32, generator(s)) for s in (1, 2, 3)], cfg.alpha, cfg.model.g_G)
    a, b = engine.adjoint_step(*args), engine.adjoint_step(*args)
    for name in ("loss", "dI", "dw"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_training_on_cuda_is_reproducible_to_the_bit():
    cfg = config.resolve("smoke", [f"epochs={EPOCHS}"], seed=1)
    a = training.train_seeds(cfg, [1, 2], progress=False, device="cuda")
    b = training.train_seeds(cfg, [1, 2], progress=False, device="cuda")
    for s in (1, 2):
        for k in ("I", "w"):
            assert torch.equal(a[s][k], b[s][k]), f"seed {s} {k}"


def test_sysa_train_on_cuda_writes_a_checkpoint_the_cpu_loads(tmp_path):
    """The command a user runs: its checkpoint holds CPU tensors in the original's format, and its
    metadata says where it was trained."""
    proc = run_cli("train", "--profile", "smoke", "--seeds", "1", "--device", "cuda", "--out", tmp_path, "--quiet",
                   "--set", f"epochs={EPOCHS}")
    assert proc.returncode == 0, proc.stderr
    folder = tmp_path / "seed_1"
    ck = torch.load(folder / "sys_A1_state.pth", weights_only=True)
    tensors = [*ck["state_dict"].values(), *(v for st in ck["optimizer"]["state"].values() for v in st.values())]
    assert tensors and all(t.device.type == "cpu" for t in tensors)
    sd = torch.load(folder / "sys_A1.pth", weights_only=True)
    assert all(torch.equal(sd[k], ck["state_dict"][k]) for k in ("G", "I", "w", "h0"))
    meta = json.loads((folder / "sys_A1_train.json").read_text())
    assert "cuda" in meta["device"], meta["device"]
    cpu = training.train(config.resolve("smoke", [f"epochs={EPOCHS}"], seed=1), progress=False, device="cpu")
    for k in ("I", "w"):
        assert _rel(sd[k].reshape(cpu[k].shape), cpu[k]) < 1e-4


def test_sysa_run_on_a_gpu_machine_trains_there_and_reports_what_a_cpu_run_reports(tmp_path):
    """The smoke run where `--device auto` picks the GPU: training runs there, G's analysis, the
    notebooks and the reports on the CPU. `sysa check` verifies the folder, and each model's numbers
    are those of the same run with `--device cpu` up to the training's rounding."""
    runs = {}
    for device in ("auto", "cpu"):
        out = runs[device] = tmp_path / device
        proc = run_cli(*SMOKE_RUN, "--device", device, "--out", out)
        assert proc.returncode == 0, proc.stderr
    check = run_cli("check", runs["auto"])
    assert check.returncode == 0, check.stdout + check.stderr
    for folder in ("seed_1", "seed_2", "control/seed_1", "control/seed_2"):
        s = folder[-1]
        for device, expected in (("auto", "cuda"), ("cpu", "cpu")):
            meta = json.loads((runs[device] / folder / f"sys_A{s}_train.json").read_text())
            assert expected in meta["device"], (device, folder, meta["device"])
        gpu, cpu = (json.loads((runs[d] / folder / "metrics.json").read_text()) for d in ("auto", "cpu"))
        for k in ("precision", "precision_trained_range", "weight_correlation", "dim_memory"):  # not decided by rounding
            assert gpu[k] == pytest.approx(cpu[k], rel=1e-3), (folder, k)
    assert (runs["auto"] / "index.html").is_file() and (runs["auto"] / "population.html").is_file()
