"""Typed configuration with documented defaults, named profiles and validation.

One `Config` travels from the CLI or a notebook's papermill parameters into every
checkpoint, metadata file and report. All times are in milliseconds; they are turned into
simulation steps with `ModelConfig.dt_ms` (see `Config.steps`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from .errors import UserError


@dataclass(frozen=True)
class ModelConfig:
    """The network ("Net1", README, Definitions 1)."""

    hidden_size: int = 500  # number of rate units N
    input_size: int = 1  # input channels
    output_size: int = 1  # readout channels
    tau_ms: float = 100.0  # membrane time constant
    dt_ms: float = 1.0  # Euler step; alpha = dt / tau
    g_G: float = 1.5  # gain on the recurrent term (chaotic for g > 1)
    h0_zero: bool = True  # initial state 0; if False h0 ~ N(0, 1) from the seed
    init: str = "seed_compatible"  # "seed_compatible" (the original's coupled draw) or "independent"
    G_per_seed: bool = False  # with init="independent": draw G from the seed too
    dtype: str = "float32"  # "float32" (the original) or "float64"


@dataclass(frozen=True)
class TaskConfig:
    """Trials of the pulse-duration task ("data1", README, Definitions 2)."""

    Nt_ms: int = 7000  # trial length
    perc: float = 0.1  # probability of a catch trial (no input, target 0)
    O_on_ms: int = 3000  # mean pulse onset
    SO_on_ms: int = 1000  # onset jitter: uniform in [-SO_on, SO_on)
    O_off_ms: int = 150  # mean pulse duration
    SO_off_ms: int = 100  # duration jitter: uniform in [-SO_off, SO_off)
    sig: float = 2.0  # input amplitude during the pulse
    cost_onset_ms: int = 4500  # the plateau target is evaluated from here on
    thresh: float = 0.007  # plateau target = thresh * duration_ms
    pulse_includes_end: bool = True  # the original's rule: a D ms pulse lasts D + dt (both ends); False: exactly D


@dataclass(frozen=True)
class TrainConfig:
    """Adam on I and w (README, Definitions 4)."""

    n_trials: int = 500  # training trials generated once per model
    batch_size: int = 32  # distinct trials per step
    epochs: int = 50  # each epoch has n_trials // batch_size steps
    lr: float = 1e-3  # Adam learning rate (the initial one with a schedule)
    lr_schedule: str = "constant"  # "constant" (the original) or "cosine": lr * (1 + cos(pi t / steps)) / 2 at step t
    engine: str = "adjoint"  # "adjoint" (exact hand-written BPTT) or "autograd" (reference)

    @property
    def steps_per_epoch(self) -> int:
        return self.n_trials // self.batch_size

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch


@dataclass(frozen=True)
class AnalysisConfig:
    """Per-model analyses (README, Definitions 5)."""

    durations_ms: tuple = (50, 150, 300)  # test pulse durations (300 is outside training)
    eval_onset_ms: int = 3000  # onset of evaluation / precision trials
    eval_extra_ms: int = 3000  # evaluate() runs Nt + this, beyond the trained window
    spont_h0: float = 0.1  # initial state of every unit for the spontaneous PCA
    spont_T_ms: int = 10000  # length of the spontaneous run
    spont_start_ms: int = 5000  # covariance window [spont_start, spont_T)
    mem_onset_ms: int = 10  # pulse onset for the memory-period PCA
    mem_T_ms: int = 4010  # length of the memory-period runs
    mem_start_ms: int = 1510  # covariance window [mem_start, mem_T)
    lyap_transient_ms: int = 20000  # the spontaneous exponent's tangent vectors align over this, not counted
    lyap_window_ms: int = 20000  # then the exponent (and the regime) is measured over this
    lyap_vectors: int = 4  # random starting tangent vectors (their spread enters the interval)
    census_starts: int = 512  # starting states of G's fixed-point census


@dataclass(frozen=True)
class Config:
    """Everything that determines a run. `seed` selects the model within an ensemble."""

    model: ModelConfig = field(default_factory=ModelConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    seed: int = 1
    profile: str = "paper"

    # -- derived -----------------------------------------------------------------------
    @property
    def alpha(self) -> float:
        return self.model.dt_ms / self.model.tau_ms

    def steps(self, ms: float) -> int:
        """Convert a time in ms to simulation steps (validated to be a multiple of dt)."""
        return int(round(ms / self.model.dt_ms))

    def pulse_steps(self, duration_ms: float) -> int:
        """How many input steps a pulse labelled duration_ms lasts: D / dt, plus one under the
        original's rule (task.pulse_includes_end: both ends included)."""
        return self.steps(duration_ms) + (1 if self.task.pulse_includes_end else 0)

    @property
    def pulse_rule_text(self) -> str:
        """One line on how long a labelled pulse lasts, for every report that labels durations."""
        if self.task.pulse_includes_end:
            return (f"a pulse labelled D ms lasts D + {self.model.dt_ms:g} ms: the original's rule, both ends included, "
                    "kept so that the published numbers are reproduced")
        return "a pulse labelled D ms lasts exactly D ms"

    @property
    def trained_range_ms(self) -> tuple[float, float]:
        """The pulse durations training draws, as [low, high) in ms: O_off - SO_off up to O_off + SO_off
        (the high end excluded; the single duration O_off when SO_off = 0)."""
        t = self.task
        if t.SO_off_ms == 0:
            return float(t.O_off_ms), float(t.O_off_ms + self.model.dt_ms)
        return float(t.O_off_ms - t.SO_off_ms), float(t.O_off_ms + t.SO_off_ms)

    def in_trained_range(self, duration_ms: float) -> bool:
        """Whether training could draw this pulse duration."""
        lo, hi = self.trained_range_ms
        return lo <= duration_ms < hi

    @property
    def trained_span_ms(self) -> tuple[float, float]:
        """The shortest and the longest pulse duration training draws (ms): what figures shade."""
        lo, hi = self.trained_range_ms
        return lo, hi - self.model.dt_ms

    @property
    def trained_range_text(self) -> str:
        """The trained range as the reports write it, its ends the shortest and longest durations
        training draws: "550–650 ms"."""
        lo, hi = self.trained_span_ms
        return f"{lo:g}–{hi:g} ms"

    @property
    def in_range_indices(self) -> list[int]:
        """The positions in analysis.durations_ms of the test durations inside the trained range."""
        return [i for i, d in enumerate(self.analysis.durations_ms) if self.in_trained_range(d)]

    @property
    def trained_window_ms(self):
        """The window over which the loss asks the plateau to hold: from the cost onset to the end
        of the trial (Nt_ms - cost_onset_ms), in ms."""
        return self.task.Nt_ms - self.task.cost_onset_ms

    @property
    def memory_window_ms(self) -> float:
        """The memory window of the analysis's memory trials (mem_T_ms - mem_start_ms), in ms: what the
        memory exponents, their blocks and the state's travel are measured over."""
        return self.analysis.mem_T_ms - self.analysis.mem_start_ms

    def miniature_text(self) -> str | None:
        """For a configuration that is not the paper's: one line saying so, how it differs from the
        paper's networks and task, and where numbers comparable with the original's are (the
        shipped paper study). None for the paper's own settings (its control ensemble's
        initialisation included: the control is part of the study)."""
        paper = Config()
        mine = [
            ("units", lambda c: c.model.hidden_size, "{:g}"),
            ("dt", lambda c: c.model.dt_ms, "{:g} ms"),
            ("trials of", lambda c: c.task.Nt_ms / 1000, "{:g} s"),
            ("a scored plateau of", lambda c: c.trained_window_ms / 1000, "{:g} s"),
            ("pulse onsets in", lambda c: ((c.task.O_on_ms - c.task.SO_on_ms) / 1000,
                                           (c.task.O_on_ms + c.task.SO_on_ms) / 1000), "[{:g}, {:g}) s"),
            ("training trials", lambda c: c.train.n_trials, "{:g}"),
            ("epochs", lambda c: c.train.epochs, "{:g}"),
            ("learning rate", lambda c: (c.train.lr, c.train.lr_schedule), "{:g} ({})"),
            ("G", lambda c: "one per seed" if c.model.G_per_seed else "one for every seed", "{}"),
            ("dtype", lambda c: c.model.dtype, "{}"),
        ]

        def fmt(form, v):
            return form.format(*v) if isinstance(v, tuple) else form.format(v)

        diffs = [f"{name} {fmt(form, get(self))} (the paper's: {fmt(form, get(paper))})"
                 for name, get, form in mine if get(self) != get(paper)]
        if not diffs:
            return None
        label = f"the {self.profile} miniature" if self.profile in ("quick", "smoke") else "not the paper's configuration"
        return (f"This is {label}, not the study: " + "; ".join(diffs) + ". Its numbers are not comparable with "
                "the original's; the shipped paper study (data/paper, `make paper-report`) holds those.")

    # -- serialisation -----------------------------------------------------------------
    def with_dtype(self, dtype: str) -> "Config":
        """The same configuration simulated in another dtype ("float32", "float64")."""
        return replace(self, model=replace(self.model, dtype=dtype))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["analysis"]["durations_ms"] = list(self.analysis.durations_ms)
        return d

    @classmethod
    def from_manifest(cls, manifest: dict, source: str = "configuration", default_profile: str = "paper") -> "Config":
        """The configuration a run folder's manifest (files.RUN_MARKER: its "config" without the seed,
        and its "profile") records; KeyError without a "config"."""
        return cls.from_dict({**manifest["config"], "profile": manifest.get("profile", default_profile)}, source=source)

    @classmethod
    def from_dict(cls, d: dict, source: str = "configuration") -> "Config":
        if not isinstance(d, dict):
            raise UserError(f"{source}: expected a JSON object with a configuration")
        kwargs: dict[str, Any] = {}
        unknown_top = set(d) - {f.name for f in fields(cls)}
        if unknown_top:
            raise UserError(f"{source}: unknown key {sorted(map(str, unknown_top))[0]}")
        for f in fields(cls):
            if f.name not in d:
                continue
            sub = _SECTIONS.get(f.name)
            if sub is None:
                kwargs[f.name] = d[f.name]
                continue
            if not isinstance(d[f.name], dict):
                raise UserError(f"{source}: {f.name}: expected an object of {f.name} settings, got {d[f.name]!r}")
            known = {g.name for g in fields(sub)}
            unknown = set(d[f.name]) - known
            if unknown:
                raise UserError(f"{source}: unknown key {f.name}.{sorted(unknown)[0]}")
            vals = dict(d[f.name])
            if "durations_ms" in vals:
                if not isinstance(vals["durations_ms"], (list, tuple)):
                    raise UserError(f"{source}: analysis.durations_ms: expected a list of integers, "
                                    f"got {vals['durations_ms']!r}")
                vals["durations_ms"] = tuple(vals["durations_ms"])
            kwargs[f.name] = sub(**vals)
        try:
            return validate(cls(**kwargs))
        except UserError as exc:  # name the file the bad value came from
            raise UserError(f"{source}: {exc}") from None

    def training_id(self) -> str:
        """Hash of everything that changes the trained weights: the model, the task, the training
        settings and the seed (not the analysis settings, not the profile label). It guards
        resuming: a checkpoint is continued or reused only under the same training_id."""
        d = self.to_dict()
        for k in ("profile", "analysis"):
            d.pop(k)
        for (section, key), value in UNHASHED_AT.items():  # a later setting at the value all earlier ones had
            if d[section].get(key) == value:
                d[section].pop(key)
        return _digest(d)

    def analysis_id(self) -> str:
        """Hash of the analysis settings (with the training_id they apply to): metrics computed
        under another analysis_id are recomputed from the same checkpoint."""
        return _digest({"training": self.training_id(), "analysis": self.to_dict()["analysis"]})


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


#: training settings added after checkpoints existed, at the value every earlier training had: left
#: out of training_id at that value, so that those checkpoints keep their identity
UNHASHED_AT = {("task", "pulse_includes_end"): True}

_SECTIONS = {"model": ModelConfig, "task": TaskConfig, "train": TrainConfig, "analysis": AnalysisConfig}


# -- profiles ----------------------------------------------------------------------------

def _smoke() -> Config:
    return Config(
        model=ModelConfig(hidden_size=48),
        task=TaskConfig(Nt_ms=600, O_on_ms=150, SO_on_ms=50, O_off_ms=60, SO_off_ms=40,
                        cost_onset_ms=350, thresh=0.01, pulse_includes_end=False),
        train=TrainConfig(n_trials=64, batch_size=16, epochs=10, lr=2e-2),
        analysis=AnalysisConfig(durations_ms=(30, 60, 100), eval_onset_ms=150, eval_extra_ms=400,
                                spont_T_ms=800, spont_start_ms=400, mem_onset_ms=10,
                                mem_T_ms=460, mem_start_ms=210, lyap_transient_ms=1000, lyap_window_ms=1000,
                                census_starts=32),
        profile="smoke",
    )


def _quick() -> Config:
    # The study's timeline, shrunk only where time is at stake: 200 units at dt = 10 ms (alpha = 0.1);
    # a 3.2 s trial with the pulse (50-240 ms) starting at 300-690 ms, a delay of at least 270 ms,
    # and the plateau scored from 1.2 s to the trial's end: a 2 s window (the paper's: 2.5 s).
    # 380 epochs under a cosine-decaying learning rate: the fewest of the sweep (README, Profiles)
    # after which every network converges and holds its in-range plateaus through the whole window.
    # The analysis's memory window is the scored window relative to the mean onset (0.7-2.7 s after
    # it), as the paper's is.
    return Config(
        model=ModelConfig(hidden_size=200, dt_ms=10.0),
        task=TaskConfig(Nt_ms=3200, O_on_ms=500, SO_on_ms=200, cost_onset_ms=1200, pulse_includes_end=False),
        train=TrainConfig(n_trials=256, batch_size=32, epochs=380, lr=0.03, lr_schedule="cosine"),
        analysis=AnalysisConfig(eval_onset_ms=500, eval_extra_ms=2500, mem_start_ms=710, mem_T_ms=2710),
        profile="quick",
    )


PROFILES = {"paper": Config, "quick": _quick, "smoke": _smoke}
#: seeds each profile runs by default
PROFILE_SEEDS = {"paper": list(range(1, 21)), "quick": [1, 2, 3, 4], "smoke": [1, 2]}
#: whether `sysa run` also runs the control ensemble (independent initialisation) by default
PROFILE_CONTROL = {"paper": True, "quick": True, "smoke": False}


def profile(name: str) -> Config:
    """The named profile: `paper` (the original's parameters), `quick` (default), `smoke`."""
    if name not in PROFILES:
        raise UserError(f"profile: unknown profile {name!r} (choose from {', '.join(PROFILES)})")
    return replace(PROFILES[name](), profile=name)


# -- overrides ---------------------------------------------------------------------------

def _field_index() -> dict[str, tuple[str, dataclasses.Field]]:
    idx: dict[str, tuple[str, dataclasses.Field]] = {}
    for section, cls in _SECTIONS.items():
        for f in fields(cls):
            idx[f"{section}.{f.name}"] = (section, f)
    return idx


def known_keys() -> list[str]:
    return sorted(_field_index())


def _parse_value(key: str, f: dataclasses.Field, raw: Any) -> Any:
    typ = f.type if isinstance(f.type, str) else f.type.__name__
    if not isinstance(raw, str):
        return raw
    s = raw.strip()
    try:
        if typ == "bool":
            if s.lower() in ("1", "true", "yes", "on"):
                return True
            if s.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if typ == "int":
            return int(s)
        if typ == "float":
            return float(s)
        if typ == "tuple":
            return tuple(int(v) for v in s.strip("()[]").split(",") if v.strip())
        return s
    except ValueError:
        raise UserError(f"--set {key}: cannot read {raw!r} as {typ}") from None


def apply_overrides(cfg: Config, overrides) -> Config:
    """Apply `key=value` strings (or a {key: value} dict). Keys are `section.name` or a bare
    `name` when unique (e.g. `hidden_size=100`, `train.epochs=3`)."""
    if overrides is None:
        return cfg
    if isinstance(overrides, dict):
        items = list(overrides.items())
    else:
        items = []
        for item in overrides:
            if not isinstance(item, str) or "=" not in item:
                raise UserError(f"--set: expected key=value, got {item!r}")
            k, v = item.split("=", 1)
            items.append((k.strip(), v))
    idx = _field_index()
    bare: dict[str, list[str]] = {}
    for full in idx:
        bare.setdefault(full.split(".", 1)[1], []).append(full)
    for key, raw in items:
        if key == "seed":
            cfg = replace(cfg, seed=_parse_int("seed", raw))
            continue
        full = key
        if key not in idx:
            cands = bare.get(key, [])
            if len(cands) != 1:
                raise UserError(f"--set: unknown key {key!r} (known: seed, {', '.join(known_keys())})")
            full = cands[0]
        section, f = idx[full]
        value = _parse_value(full, f, raw)
        sub = replace(getattr(cfg, section), **{f.name: value})
        cfg = replace(cfg, **{section: sub})
    return cfg


def _parse_int(name: str, raw: Any) -> int:
    try:
        if isinstance(raw, bool):
            raise ValueError
        v = int(raw)
        if isinstance(raw, float) and v != raw:
            raise ValueError
        return v
    except (TypeError, ValueError):
        raise UserError(f"{name}: expected an integer, got {raw!r}") from None


def resolve(profile_name: str = "quick", overrides=None, seed: int | None = None) -> Config:
    """The one entry point: profile + overrides (+ seed), validated."""
    cfg = apply_overrides(profile(profile_name), overrides)
    if seed is not None:
        cfg = replace(cfg, seed=_parse_int("seed", seed))
    return validate(cfg)


# -- validation --------------------------------------------------------------------------

def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise UserError(msg)


def _types(obj, section: str) -> None:
    for f in fields(obj):
        v = getattr(obj, f.name)
        typ = f.type if isinstance(f.type, str) else f.type.__name__
        name = f"{section}.{f.name}"
        if typ == "int":
            _check(isinstance(v, int) and not isinstance(v, bool), f"{name}: expected an integer, got {v!r}")
        elif typ == "float":
            _check(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
                   f"{name}: expected a finite number, got {v!r}")
        elif typ == "bool":
            _check(isinstance(v, bool), f"{name}: expected true or false, got {v!r}")
        elif typ == "str":
            _check(isinstance(v, str), f"{name}: expected a string, got {v!r}")
        elif typ == "tuple":
            _check(isinstance(v, tuple) and len(v) > 0 and all(isinstance(e, int) and not isinstance(e, bool) for e in v),
                   f"{name}: expected a non-empty list of integers, got {v!r}")


def validate(cfg: Config) -> Config:
    """Check every value and every cross-constraint; raise UserError naming the parameter."""
    m, t, tr, a = cfg.model, cfg.task, cfg.train, cfg.analysis
    for obj, sec in ((m, "model"), (t, "task"), (tr, "train"), (a, "analysis")):
        _types(obj, sec)
    _check(isinstance(cfg.seed, int) and not isinstance(cfg.seed, bool) and 0 <= cfg.seed < 2**31,
           f"seed: expected an integer in [0, 2^31), got {cfg.seed!r}")
    _check(m.hidden_size >= 2, f"model.hidden_size: must be at least 2, got {m.hidden_size}")
    _check(m.input_size == 1, f"model.input_size: the task has one input channel, got {m.input_size}")
    _check(m.output_size == 1, f"model.output_size: the task has one output channel, got {m.output_size}")
    _check(m.tau_ms > 0, f"model.tau_ms: must be positive, got {m.tau_ms}")
    _check(m.dt_ms > 0, f"model.dt_ms: must be positive, got {m.dt_ms}")
    _check(m.dt_ms <= m.tau_ms, f"model.dt_ms: must not exceed tau_ms ({m.tau_ms}), got {m.dt_ms}")
    _check(m.g_G >= 0, f"model.g_G: must be non-negative, got {m.g_G}")
    _check(m.init in ("seed_compatible", "independent"),
           f"model.init: expected 'seed_compatible' or 'independent', got {m.init!r}")
    _check(not (m.G_per_seed and m.init != "independent"),
           "model.G_per_seed: only with model.init=independent (the seed-compatible G is drawn from seed 1)")
    _check(m.dtype in ("float32", "float64"), f"model.dtype: expected 'float32' or 'float64', got {m.dtype!r}")
    _check(0 <= t.perc < 1, f"task.perc: must be in [0, 1), got {t.perc}")
    # the plateau target thresh * D must be > 0: precision is evaluated where target > 0, and a
    # negative level could equal the -1 marker of the unevaluated steps
    _check(t.thresh > 0, f"task.thresh: must be positive, got {t.thresh}")
    _check(tr.n_trials >= 1, f"train.n_trials: must be at least 1, got {tr.n_trials}")
    _check(1 <= tr.batch_size <= tr.n_trials,
           f"train.batch_size: must be in [1, n_trials={tr.n_trials}], got {tr.batch_size}")
    _check(tr.epochs >= 1, f"train.epochs: must be at least 1, got {tr.epochs}")
    _check(tr.lr > 0, f"train.lr: must be positive, got {tr.lr}")
    _check(tr.engine in ("adjoint", "autograd"), f"train.engine: expected 'adjoint' or 'autograd', got {tr.engine!r}")
    _check(tr.lr_schedule in ("constant", "cosine"),
           f"train.lr_schedule: expected 'constant' or 'cosine', got {tr.lr_schedule!r}")
    # times must be whole numbers of steps
    for sec, obj in (("task", t), ("analysis", a)):
        for f in fields(obj):
            if f.name.endswith("_ms"):
                vals = getattr(obj, f.name)
                for v in (vals if isinstance(vals, tuple) else (vals,)):
                    q = v / m.dt_ms
                    _check(abs(q - round(q)) < 1e-9,
                           f"{sec}.{f.name}: {v} ms is not a whole number of steps of dt_ms={m.dt_ms}")
    _check(t.Nt_ms > 0, f"task.Nt_ms: must be positive, got {t.Nt_ms}")
    for name in ("SO_on_ms", "SO_off_ms"):
        _check(getattr(t, name) >= 0, f"task.{name}: must be non-negative, got {getattr(t, name)}")
    first_onset = t.O_on_ms - t.SO_on_ms
    last_onset = t.O_on_ms + t.SO_on_ms - (m.dt_ms if t.SO_on_ms else 0)
    shortest = t.O_off_ms - t.SO_off_ms
    longest = t.O_off_ms + t.SO_off_ms - (m.dt_ms if t.SO_off_ms else 0)
    _check(first_onset >= 0, f"task.O_on_ms: the earliest onset {first_onset} ms falls before the trial starts")
    _check(shortest >= 0, f"task.O_off_ms: the shortest pulse {shortest} ms is negative")
    last_input = last_onset + longest - (0 if t.pulse_includes_end else m.dt_ms)  # the last step with input
    _check(last_input < t.cost_onset_ms,
           f"task.cost_onset_ms: a pulse can last until {last_input} ms, at or after cost_onset_ms={t.cost_onset_ms}")
    _check(t.cost_onset_ms < t.Nt_ms, f"task.cost_onset_ms: must lie inside the trial (Nt_ms={t.Nt_ms}), got {t.cost_onset_ms}")
    _check(all(d > 0 for d in a.durations_ms), f"analysis.durations_ms: durations must be positive, got {a.durations_ms}")
    _check(a.eval_onset_ms >= 0, f"analysis.eval_onset_ms: must be non-negative, got {a.eval_onset_ms}")
    _check(a.eval_onset_ms + max(a.durations_ms) < t.cost_onset_ms,
           f"analysis.eval_onset_ms: a {max(a.durations_ms)} ms test pulse at {a.eval_onset_ms} ms ends at or after "
           f"cost_onset_ms={t.cost_onset_ms}")
    _check(a.eval_extra_ms >= 0, f"analysis.eval_extra_ms: must be non-negative, got {a.eval_extra_ms}")
    _check(0 <= a.spont_start_ms < a.spont_T_ms - m.dt_ms,
           f"analysis.spont_start_ms: the window [{a.spont_start_ms}, {a.spont_T_ms}) needs at least two steps")
    _check(a.mem_onset_ms >= 0 and a.mem_onset_ms + max(a.durations_ms) < a.mem_start_ms,
           f"analysis.mem_start_ms: the memory window must start after the longest pulse ends "
           f"({a.mem_onset_ms + max(a.durations_ms)} ms), got {a.mem_start_ms}")
    _check(a.mem_start_ms < a.mem_T_ms, f"analysis.mem_T_ms: must exceed mem_start_ms={a.mem_start_ms}, got {a.mem_T_ms}")
    _check(a.lyap_transient_ms >= 0, f"analysis.lyap_transient_ms: must be non-negative, got {a.lyap_transient_ms}")
    _check(a.lyap_window_ms >= 10 * m.dt_ms,
           f"analysis.lyap_window_ms: needs at least 10 steps of dt={m.dt_ms:g} ms, got {a.lyap_window_ms}")
    _check(a.lyap_vectors >= 2, f"analysis.lyap_vectors: needs at least 2 starting vectors (their spread is part of "
                                f"the interval), got {a.lyap_vectors}")
    _check(a.census_starts >= 8, f"analysis.census_starts: needs at least 8 starting states, got {a.census_starts}")
    _check(cfg.profile in PROFILES, f"profile: unknown profile {cfg.profile!r}")
    return cfg
