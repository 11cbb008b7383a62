"""Helpers the notebooks call, so the notebooks stay a parameters cell plus a few calls.

`setup` checks the parameters (unknown names injected by papermill, wrong types) and resolves
the one `Config` and the folders."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from . import config as _config
from . import io, paths
from .errors import UserError

_SEED_PARAMS = {"profile": str, "seed": int, "overrides": list, "run_dir": str}
PARAMETERS = {
    "train": _SEED_PARAMS,
    "inspect": _SEED_PARAMS,
    "pca": _SEED_PARAMS,
    "population": {"profile": str, "run_dir": str, "control_dir": str},
}
_KERNEL_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}


@dataclass
class Context:
    """What a notebook works on: the configuration and its folders."""

    name: str
    cfg: _config.Config
    run_dir: Path  # the seed's folder (per-seed notebooks) or the run's folder (population)
    params: dict

    @property
    def seed(self) -> int:
        return self.cfg.seed


def check_parameters(name: str, namespace: dict) -> dict:
    """The notebook's parameters from its namespace; UserError for unknown or mistyped ones."""
    spec = PARAMETERS[name]
    # parameters are literals; papermill injects any name it is given, so a literal the
    # notebook does not declare is a misspelt or foreign parameter
    literal = (str, int, float, bool, list, dict, tuple, type(None))
    unknown = sorted(k for k, v in namespace.items()
                     if not k.startswith("_") and k not in _KERNEL_NAMES and k not in spec
                     and isinstance(v, literal))
    if unknown:
        raise UserError(f"{name}.ipynb: unknown parameter {unknown[0]!r} (known: {', '.join(spec)})")
    params = {}
    for k, typ in spec.items():
        if k not in namespace:
            raise UserError(f"{name}.ipynb: parameter {k!r} is missing from the parameters cell")
        v = namespace[k]
        if typ is int and isinstance(v, str) and v.strip().lstrip("-").isdigit():
            v = int(v)  # papermill -p from the shell may pass numbers as text
        if not isinstance(v, typ) or (typ is int and isinstance(v, bool)):
            raise UserError(f"{name}.ipynb: parameter {k!r} must be {typ.__name__}, got {v!r}")
        params[k] = v
    return params


def setup(name: str, namespace: dict) -> Context:
    """Validate the parameters of notebook `name` and resolve its configuration and folder."""
    p = check_parameters(name, namespace)
    if name == "population":
        cfg = _config.resolve(p["profile"])
        run_dir = Path(p["run_dir"]) if p["run_dir"] else paths.default_run_dir(p["profile"])
        p["control_dir"] = Path(p["control_dir"]) if p["control_dir"] else None
        return Context(name, cfg, run_dir, p)
    cfg = _config.resolve(p["profile"], p["overrides"], seed=p["seed"])
    run_dir = Path(p["run_dir"]) if p["run_dir"] else paths.seed_dir(paths.default_run_dir(p["profile"]), p["seed"])
    return Context(name, cfg, run_dir, p)


def model(ctx: Context, progress: bool = True) -> dict:
    """The trained model of this seed: loaded from its folder, trained there first if needed
    (an interrupted training resumes; a finished one is only loaded)."""
    from . import training

    return training.train(ctx.cfg, ctx.run_dir, progress=progress)


def history(ctx: Context) -> dict:
    return io.read_json(ctx.run_dir / f"sys_A{ctx.seed}_train.json")


def write_metrics(ctx: Context, sd: dict, evaluation=None, **computed) -> dict:
    """All per-model metrics (and the untrained network's precision) to metrics.json.
    computed: objects the notebook has already computed (memory_dynamics, generalisation), reused."""
    from . import analysis
    from .model import init_weights

    m = analysis.metrics(ctx.cfg, sd, evaluation, **computed)
    untrained = analysis.evaluate(ctx.cfg, init_weights(ctx.cfg.model, ctx.seed))
    m["precision_untrained"] = untrained.precision
    m["precision_untrained_by_duration"] = {str(k): v for k, v in untrained.precision_by_duration.items()}
    out = {"seed": ctx.seed, "config_id": ctx.cfg.identity(), **m}
    io.write_json(ctx.run_dir / "metrics.json", out)
    return out


def show_json(obj) -> None:
    print(json.dumps(obj, indent=2))
