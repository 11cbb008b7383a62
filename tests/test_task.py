"""sysa_core.task: trial semantics (README, Definitions 2), seeding, and the two losses (section 3)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from sysa_core import config, task, training
from sysa_core.model import generator

pytestmark = pytest.mark.usefixtures("single_threaded_torch")


def _expected(cfg, onset_step, dur_step, T, cost_step):
    """README, Definitions 2 written out in numpy, independently of task.build_trials."""
    t = cfg.task
    steps = np.arange(T)[None, :]
    on = onset_step[:, None]
    catch = onset_step < 0
    end = on + dur_step[:, None] + (1 if t.pulse_includes_end else 0)  # the original's rule: both ends
    x = np.where((steps >= on) & (steps < end), t.sig, 0.0)
    level = t.thresh * dur_step * cfg.model.dt_ms
    target = np.where(steps < on, 0.0, np.where(steps < cost_step, -1.0, level[:, None]))
    x[catch] = 0.0
    target[catch] = 0.0
    return x, target


def _draw_many(cfg, n, seed, chunk=2000, check=1):
    """n trials from one generator in chunks (long trials are large); checks the inputs and targets
    of the first `check` chunks against the numpy construction; returns onsets, durations, catch."""
    gen = generator(seed)
    T, cost = cfg.steps(cfg.task.Nt_ms), cfg.steps(cfg.task.cost_onset_ms)
    onsets, durs = [], []
    for i, lo in enumerate(range(0, n, chunk)):
        tr = task.draw_trials(cfg, min(chunk, n - lo), gen)
        on = tr.onset_step.numpy()
        d_ms = tr.duration_ms.double().numpy()
        if i < check:
            d_step = np.round(d_ms / cfg.model.dt_ms).astype(int)
            x, target = _expected(cfg, on, d_step, T, cost)
            np.testing.assert_array_equal(tr.x[:, :, 0].numpy(), x.astype(np.float32))
            np.testing.assert_array_equal(tr.target[:, :, 0].numpy(), target.astype(np.float32))
        onsets.append(on)
        durs.append(d_ms)
    on, d = np.concatenate(onsets), np.concatenate(durs)
    return on, d, on < 0


def test_paper_trials_match_the_spec_construction():
    cfg = config.resolve("paper")
    on, d, catch = _draw_many(cfg, 600, seed=7, chunk=600)
    assert catch.any() and (~catch).any()


@pytest.fixture(scope="module")
def paper_draw():
    """20000 trials of the paper's distribution. The trial is cut to 4250 ms (cost onset 4249, just
    after the latest pulse end 4248) to save memory; the onset, duration and catch draws do not
    depend on the trial length."""
    cfg = config.resolve("paper", ["Nt_ms=4250", "cost_onset_ms=4249"])
    return cfg, _draw_many(cfg, 20000, seed=123)


def test_catch_fraction_and_catch_trials(paper_draw):
    cfg, (on, d, catch) = paper_draw
    n = len(on)
    sd = np.sqrt(0.1 * 0.9 / n)
    assert abs(catch.mean() - cfg.task.perc) < 5 * sd
    assert (d[catch] == 0).all() and (on[catch] == -1).all()


def test_onset_and_duration_ranges_exclude_the_high_end(paper_draw):
    """onset in [2000, 3999], D in [50, 249] (uniform integers in [-SO, SO)); 20000 trials see
    every end of the ranges with overwhelming probability, so min and max are exact."""
    _, (on, d, catch) = paper_draw
    on, d = on[~catch], d[~catch]
    assert on.min() == 2000 and on.max() == 3999
    assert d.min() == 50 and d.max() == 249
    assert len(np.unique(on)) == 2000 and len(np.unique(d)) == 200
    assert on.mean() == pytest.approx(2999.5, abs=25)  # uniform: sd of the mean ~ 4.3
    assert d.mean() == pytest.approx(149.5, abs=3)


def test_input_window_is_inclusive_and_targets_pinned():
    """Explicit trial under the original's rule: onset 10, D 5 -> input at steps 10..15 (6 steps),
    marker on [10, cost), target thresh * D from cost onset; before onset 0 (evaluated)."""
    cfg = config.resolve("smoke", ["task.pulse_includes_end=true"])
    tr = task.build_trials(cfg, torch.tensor([10, -1]), torch.tensor([5, 5]), T_steps=40, cost_onset_step=30)
    x, tgt = tr.x[0, :, 0], tr.target[0, :, 0]
    assert torch.nonzero(x).flatten().tolist() == list(range(10, 16))
    assert (x[10:16] == cfg.task.sig).all()
    assert (tgt[:10] == 0).all() and (tgt[10:30] == task.MARKER).all()
    assert (tgt[30:] == torch.tensor(cfg.task.thresh * 5, dtype=torch.float32)).all()
    assert (tr.x[1] == 0).all() and (tr.target[1] == 0).all() and bool(tr.catch[1]) and not bool(tr.catch[0])


def test_dt_converts_ms_to_steps():
    """dt = 2 ms: ranges in ms are the same, the window is D/dt + 1 steps, the target uses ms."""
    cfg = config.resolve("smoke", ["dt_ms=2", "task.pulse_includes_end=true"])  # the original's rule
    on, d, catch = _draw_many(cfg, 3000, seed=5)
    on_ms = on[~catch] * 2
    assert on_ms.min() == 100 and on_ms.max() == 198  # O_on 150 +- 50, step 2 ms, high end excluded
    assert d[~catch].min() == 20 and d[~catch].max() == 98  # O_off 60 +- 40
    tr = task.draw_trials(cfg, 50, generator(1))
    for i in np.flatnonzero(~tr.catch.numpy()):
        n_in = int((tr.x[i, :, 0] != 0).sum())
        assert n_in == int(tr.duration_ms[i]) // 2 + 1
        assert cfg.pulse_steps(int(tr.duration_ms[i])) == n_in
        assert float(tr.target[i, -1, 0]) == pytest.approx(cfg.task.thresh * float(tr.duration_ms[i]), rel=1e-6)


def test_no_input_at_or_after_cost_onset_on_the_boundary():
    cfg = config.resolve("smoke", ["cost_onset_ms=299", "task.pulse_includes_end=true"])  # the latest pulse ends at step 298
    tr = task.draw_trials(cfg, 4000, generator(9))
    assert (tr.x[:, 299:] == 0).all()
    assert 290 <= int(torch.nonzero(tr.x[:, :, 0])[:, 1].max()) <= 298
    # the extreme pulse itself: onset 199 ms, 99 ms long -> last input step 298
    ext = task.build_trials(cfg, torch.tensor([199]), torch.tensor([99]), T_steps=600)
    assert int(torch.nonzero(ext.x[0, :, 0]).max()) == 298
    # a pulse of exactly D: the same pulse's last input step is 297, so cost onset may be 298
    exact = config.resolve("smoke", ["cost_onset_ms=298"])
    assert not exact.task.pulse_includes_end
    assert int(torch.nonzero(task.build_trials(exact, torch.tensor([199]), torch.tensor([99]), T_steps=600).x[0, :, 0]).max()) == 297
    assert (task.draw_trials(exact, 4000, generator(9)).x[:, 298:] == 0).all()


def test_fixed_trials():
    cfg = config.resolve("paper")
    tr = task.fixed_trials(cfg)
    assert len(tr) == 3 and not tr.catch.any()
    assert tr.onset_step.tolist() == [3000] * 3 and tr.duration_ms.tolist() == [50, 150, 300]
    assert [int((tr.x[i] != 0).sum()) for i in range(3)] == [51, 151, 301]
    assert tr.x.shape == (3, 7000, 1)


# -- seeding -----------------------------------------------------------------------------

def _same(a, b):
    return torch.equal(a.x, b.x) and torch.equal(a.target, b.target) and torch.equal(a.onset_step, b.onset_step)


def test_same_seed_same_trials_other_seed_different():
    cfg = config.resolve("smoke")
    a, b, c = (task.draw_trials(cfg, 64, generator(s)) for s in (3, 3, 4))
    assert _same(a, b) and not _same(a, c)


def test_training_draws_trials_and_batches_from_the_seed():
    """The generators training uses are derived from the model's seed, never the global one."""
    cfg = config.resolve("smoke")
    torch.manual_seed(0)
    s1 = training._new_state(replace(cfg, seed=1), None)
    torch.manual_seed(12345)  # the global generator must not matter
    s1b = training._new_state(replace(cfg, seed=1), None)
    s2 = training._new_state(replace(cfg, seed=2), None)
    assert _same(s1.trials, s1b.trials) and not _same(s1.trials, s2.trials)
    n, bs = cfg.train.n_trials, cfg.train.batch_size
    b1 = [training.batch_indices(s1.batch_gen, n, bs) for _ in range(6)]
    b1b = [training.batch_indices(s1b.batch_gen, n, bs) for _ in range(6)]
    b2 = [training.batch_indices(s2.batch_gen, n, bs) for _ in range(6)]
    assert all(torch.equal(x, y) for x, y in zip(b1, b1b))
    assert not all(torch.equal(x, y) for x, y in zip(b1, b2))
    for b in b1:  # distinct indices, in range, a fresh draw per step
        assert len(b) == bs and len(set(b.tolist())) == bs and 0 <= int(b.min()) and int(b.max()) < n
    assert not torch.equal(b1[0], b1[1])


# -- losses ------------------------------------------------------------------------------

def _np_loss(y, target, kind):
    y, target = np.asarray(y, np.float64), np.asarray(target, np.float64)
    mask = (target != -1) if kind == "train" else (target > 0)
    per = (mask * (y - target) ** 2).sum(axis=(1, 2)) / mask.sum(axis=(1, 2))
    return per.mean(), per


@pytest.mark.parametrize("dtype, rtol", [("float32", 2e-6), ("float64", 1e-13)])
def test_losses_match_float64_numpy(dtype, rtol):
    cfg = config.resolve("paper", [f"dtype={dtype}", "perc=0.3"])
    tr = task.draw_trials(cfg, 24, generator(2))
    assert tr.catch.any() and (~tr.catch).any() and len(set(tr.onset_step.tolist())) > 10
    y = 0.3 * torch.randn(tr.target.shape, generator=generator(3), dtype=tr.x.dtype)
    ref, _ = _np_loss(y.numpy(), tr.target.numpy(), "train")
    got = task.training_loss(y, tr.target)
    assert got.dtype == y.dtype
    assert float(got) == pytest.approx(ref, rel=rtol)
    keep = ~tr.catch  # the precision loss is defined on trials with a plateau
    ref_p, ref_per = _np_loss(y[keep].numpy(), tr.target[keep].numpy(), "precision")
    assert float(task.precision_loss(y[keep], tr.target[keep])) == pytest.approx(ref_p, rel=rtol)
    np.testing.assert_allclose(task.precision_loss(y[keep], tr.target[keep], reduce=False).numpy(), ref_per,
                               rtol=rtol)


def test_pre_onset_steps_count_in_the_training_denominator():
    """README, Definitions 3: a late onset adds evaluated (zero-target) steps, so the trial weighs less."""
    cfg = config.resolve("smoke")
    tr = task.build_trials(cfg, torch.tensor([100, 200]), torch.tensor([50, 50]), T_steps=600)
    y = torch.where(tr.target > 0, tr.target + 0.1, torch.zeros_like(tr.target))  # error 0.1 on the plateau
    per = task.per_trial_loss(y, tr.target, tr.target != task.MARKER)
    plateau = 600 - 350
    expected = [0.01 * plateau / (100 + plateau), 0.01 * plateau / (200 + plateau)]
    np.testing.assert_allclose(per.numpy(), expected, rtol=1e-5)


def test_a_pulse_lasts_its_label_or_the_originals_d_plus_dt():
    """At dt 10 ms (quick) a 50 ms pulse is 5 input steps; the paper profile keeps the original's
    rule, both ends included: 50 ms is 51 steps of 1 ms, and says so."""
    quick = config.resolve("quick")
    assert not quick.task.pulse_includes_end
    x = task.fixed_trials(quick, (50, 150), 300, 1300).x[:, :, 0]
    assert (x > 0).sum(dim=1).tolist() == [5, 15] == [quick.pulse_steps(50), quick.pulse_steps(150)]
    assert "exactly D ms" in quick.pulse_rule_text
    paper = config.resolve("paper")
    assert paper.task.pulse_includes_end
    x = task.fixed_trials(paper, (50, 150), 3000, 7000).x[:, :, 0]
    assert (x > 0).sum(dim=1).tolist() == [51, 151] == [paper.pulse_steps(50), paper.pulse_steps(150)]
    assert "D + 1 ms" in paper.pulse_rule_text
    exact = config.resolve("paper", ["task.pulse_includes_end=false"])
    assert (task.fixed_trials(exact, (50,), 3000, 7000).x[:, :, 0] > 0).sum().item() == 50
