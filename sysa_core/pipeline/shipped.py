"""The shipped paper study (`data/paper/`): the trained models of a paper run, kept compactly in the
repository, and turned back into a run folder whose checkpoints are the training's own bytes.

Layout of the shipped folder:

    study.json                      the run's manifest: configuration, overrides, code version, and the
                                    CPU vendor its metrics were made on (analysed_on)
    network.npz                     G, once: every model of the study shares it
    <ensemble>/seed_<s>/
        checkpoint.json             the structure of the training's last checkpoint, G by reference
        checkpoint.npz              its arrays (I, w, h0, Adam's moments, the batch generator, histories)
        train.json                  the training's metadata (configuration, histories, time, machine, sha256)
        metrics.json                every per-model number, once the run has analysed the model
    report/                         the last analysed run's index and population reports (self-contained
                                    HTML), its population table (CSV), answer and overview figure;
                                    the per-seed reports the index links to are re-made by `sysa study report`
    SHA256SUMS                      the sha256 of every shipped file (`sha256sum -c` reads it)

A checkpoint is rebuilt by walking the structure and saving it with torch.save, which writes the
same bytes for the same tensors: `unpack` checks each rebuilt checkpoint against the sha256 its
training recorded, so a shipped model is the trained one, bit for bit, or it is refused."""
from __future__ import annotations

import hashlib
import io
import json
import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from .. import files, runtime
from ..analysis.metrics import rounding_fixed
from ..config import Config
from ..errors import UserError
from . import plots, verify
from .ensembles import Ensemble, ensembles
from .folder import LAST_RUN, RunFolder

NETWORK = "network.npz"
#: the folder of the shipped run-level reports, and the files of a run that go there
REPORT = "report"
REPORT_FILES = ("index.html", "population.html", "population.csv", "answer.json", "population.png")
STUDY = "study.json"
SUMS = "SHA256SUMS"
#: where a tensor equal to the study's G stands in a checkpoint's structure
G_REF = "network:G"


def default_dir() -> Path:
    """The shipped study in a checkout: data/paper."""
    return files.project_root() / "data" / "paper"


def seed_folder(shipped: Path, label: str, seed: int) -> Path:
    return Path(shipped) / label / f"seed_{seed}"


# -- the structure of a checkpoint ------------------------------------------------------------

def encode(obj, arrays: dict, G: torch.Tensor, path: str = "") -> dict:
    """A JSON-able description of `obj` (dicts with int or str keys, lists, tuples, scalars,
    tensors); tensors go into `arrays` under their path, a tensor equal to G by reference."""
    if isinstance(obj, torch.Tensor):
        if obj.shape == G.shape and obj.dtype == G.dtype and torch.equal(obj, G):
            return {"tensor": G_REF}
        arrays[path] = obj.detach().cpu().numpy()
        return {"tensor": path}
    if isinstance(obj, dict):
        return {"dict": [[encode(k, arrays, G, f"{path}/{k}"), encode(v, arrays, G, f"{path}/{k}")]
                         for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        return {type(obj).__name__: [encode(v, arrays, G, f"{path}/{i}") for i, v in enumerate(obj)]}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return {"value": obj}
    raise TypeError(f"cannot ship a {type(obj).__name__} at {path or '/'}")


def decode(node: dict, arrays, G: torch.Tensor):
    """The object `encode` described."""
    (kind, val), = node.items()
    if kind == "tensor":
        return G if val == G_REF else torch.from_numpy(np.array(arrays[val]))
    if kind == "dict":  # pickle shares an object met twice: the checkpoint's keys are literals, interned
        return {_key(decode(k, arrays, G)): decode(v, arrays, G) for k, v in val}
    if kind in ("list", "tuple"):
        items = [decode(v, arrays, G) for v in val]
        return items if kind == "list" else tuple(items)
    if kind == "value":
        return val
    raise UserError(f"unknown node {kind!r} in a shipped checkpoint's structure")


def _key(k):
    return sys.intern(k) if isinstance(k, str) else k


def _torch_bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _npz_bytes(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


# -- pack -----------------------------------------------------------------------------------------

def pack(run_dir: Path, shipped: Path | None = None) -> list[str]:
    """Copy every finished model of the paper run `run_dir` into the shipped folder; returns the
    models added or replaced ("main seed 3"). A model counts as finished when its metadata says
    complete and its checkpoint has the sha256 recorded then. Models already shipped with the same
    checkpoint are left as they are. When the run's population report verifies, its run-level
    reports replace the shipped ones (REPORT). Once it holds metrics, the study records the
    numerics of the machine that packed them (ANALYSED_ON: runtime.numerics; pack on the machine
    that analysed the run), and refuses a machine with other ones, whose metrics would not compare
    to the bit with the shipped ones."""
    run_dir, shipped = Path(run_dir), Path(shipped or default_dir())
    try:
        man = files.read_manifest(run_dir / files.RUN_MARKER)
    except UserError as exc:
        raise UserError(f"{run_dir}: not a sysa run folder ({exc})") from None
    cfg = config_of(man, run_dir / files.RUN_MARKER)
    here = runtime.numerics()
    if (shipped / STUDY).is_file():
        study = files.read_manifest(shipped / STUDY)
        have = config_of(study, shipped / STUDY)
        if replace(have, seed=0).training_id() != replace(cfg, seed=0).training_id():
            raise UserError(f"{run_dir}: trained with another configuration than the shipped study in {shipped}")
        made_on = _made_on(study, shipped / STUDY)
        if made_on is not None and _other_numerics(made_on, here):
            raise UserError(f"{shipped / STUDY}: its metrics were made with other matrix-library code paths "
                            f"({_numerics_text(made_on)}) than this machine's ({_numerics_text(here)}); "
                            f"pack on a machine like the one that made them")
    else:
        shipped.mkdir(parents=True, exist_ok=True)
        study = {k: v for k, v in man.items() if k not in ("state", LAST_RUN)}
        files.write_json(shipped / STUDY, study)
    added = []
    G = None
    for ens in ensembles(cfg, run_dir, man.get("overrides", []), bool(man.get("control"))):
        for s in man.get("seeds", []):
            sdir = ens.seed_dir(s)
            try:
                meta = files.read_json(files.meta_path(sdir, s))
            except UserError:
                continue
            ck_path = files.checkpoint_path(sdir, s)
            if meta.get("status") != "complete" or not ck_path.is_file():
                continue
            sha = files.sha256(ck_path)
            if sha != meta.get("checkpoint_sha256"):
                raise UserError(f"{ck_path}: does not match the sha256 its training recorded; not shipped")
            out = seed_folder(shipped, ens.label, s)
            analysed = verify.check_seed(sdir, replace(ens.cfg, seed=s)).action == "none"
            try:
                same = files.read_json(out / "train.json").get("checkpoint_sha256") == sha
            except UserError:
                same = False
            if same:
                if analysed:
                    files.write_json(out / "metrics.json", files.read_json(files.metrics_path(sdir)), if_changed=True)
                continue
            ck = files.load_checkpoint(ck_path)
            if G is None:
                G = _ship_network(shipped, ck["state_dict"]["G"])
            elif not torch.equal(G, ck["state_dict"]["G"]):
                raise UserError(f"{ck_path}: its G differs from the study's G ({shipped / NETWORK})")
            obj = torch.load(ck_path, map_location="cpu", weights_only=True)
            arrays: dict = {}
            structure = encode(obj, arrays, G)
            out.mkdir(parents=True, exist_ok=True)
            files.write_bytes(out / "checkpoint.npz", _npz_bytes(arrays))
            files.write_json(out / "checkpoint.json", structure)
            files.write_json(out / "train.json", meta)
            if analysed:
                files.write_json(out / "metrics.json", files.read_json(files.metrics_path(sdir)))
            else:
                (out / "metrics.json").unlink(missing_ok=True)
            added.append(f"{ens.label} seed {s}")
    if _made_on(study, shipped / STUDY) is None and any(seed_folder(shipped, label, s).joinpath("metrics.json").is_file()
                                                        for label, seeds in shipped_seeds(shipped).items() for s in seeds):
        files.write_json(shipped / STUDY, {**study, ANALYSED_ON: here})
    _ship_reports(run_dir, shipped)
    write_sums(shipped)
    return added


def _ship_reports(run_dir: Path, shipped: Path) -> bool:
    """Copy the run's index, population report, table, answer and overview figure into the shipped
    REPORT folder when its population report verifies (a training folder has none: the shipped
    reports stay). Whether they were copied."""
    if not (run_dir / "population.json").is_file() or verify.check_population(run_dir).action != "none" \
            or not all((run_dir / name).is_file() for name in REPORT_FILES):
        return False
    dest = shipped / REPORT
    dest.mkdir(exist_ok=True)
    for name in REPORT_FILES:
        data = (run_dir / name).read_bytes()
        if name == "index.html":
            data = unlinked_unshipped(data.decode()).encode()
        files.write_bytes(dest / name, data)
    return True


#: a link of the index to a file of the run folder (a relative path: no scheme, no fragment)
_LOCAL_LINK = re.compile(r'<a href="([\w./-]+)">([^<]*)</a>')
NOT_SHIPPED = ("The per-seed reports and the executed notebooks are not shipped, so their names are not links: "
               "<code>make paper-report</code> re-makes them, with this index, in <code>data/runs/paper-study</code>.")


def unlinked_unshipped(html: str) -> str:
    """The index as it is shipped: each link to a file that is not shipped (the per-seed reports, the
    executed population notebook; anything outside REPORT_FILES) becomes its plain name (its title
    says why), and a line under the heading says where to get them."""
    def unlink(m: re.Match) -> str:
        if m.group(1) in REPORT_FILES:
            return m.group(0)
        return f'<span title="not shipped: make paper-report re-makes {m.group(1)}">{m.group(2)}</span>'

    return _LOCAL_LINK.sub(unlink, html).replace("</h1>", f"</h1>\n<p class=\"note\">{NOT_SHIPPED}</p>", 1)


def config_of(man: dict, source: Path) -> Config:
    """The configuration a run manifest (or the shipped study.json) records."""
    return Config.from_manifest(man, source=str(source))


def _ship_network(shipped: Path, G: torch.Tensor) -> torch.Tensor:
    """The study's G: the shipped one (which `G` must equal), or `G`, shipped now."""
    path = Path(shipped) / NETWORK
    if path.is_file():
        have = load_network(shipped)
        if not torch.equal(have, G):
            raise UserError(f"{path}: the shipped G differs from this run's G")
        return have
    shipped.mkdir(parents=True, exist_ok=True)
    files.write_bytes(path, _npz_bytes({"G": G.numpy()}))
    return G


def load_network(shipped: Path) -> torch.Tensor:
    path = Path(shipped) / NETWORK
    try:
        with np.load(path, allow_pickle=False) as z:
            return torch.from_numpy(np.array(z["G"]))
    except files.NPZ_ERRORS as exc:
        raise UserError(f"{path}: cannot read the study's G ({exc.__class__.__name__})") from None


# -- what is shipped, and its integrity --------------------------------------------------------------

def shipped_seeds(shipped: Path | None = None) -> dict[str, list[int]]:
    """{ensemble label: sorted seeds} of the models in the shipped folder."""
    shipped = Path(shipped or default_dir())
    out: dict[str, list[int]] = {}
    for label in ("main", "control"):
        d = shipped / label
        seeds = sorted(int(p.name.split("_", 1)[1]) for p in d.glob("seed_*") if (p / "train.json").is_file()) \
            if d.is_dir() else []
        out[label] = seeds
    return out


def write_sums(shipped: Path) -> None:
    """SHA256SUMS over every file of the shipped folder but itself (sorted, `sha256sum -c` format)."""
    shipped = Path(shipped)
    lines = [f"{files.sha256(p)}  {p.relative_to(shipped).as_posix()}"
             for p in sorted(shipped.rglob("*")) if p.is_file() and p.name != SUMS]
    files.write_text(shipped / SUMS, "\n".join(lines) + "\n")


def check_sums(shipped: Path | None = None) -> list[str]:
    """The problems of the shipped folder against its SHA256SUMS, one line each (empty: all hold)."""
    shipped = Path(shipped or default_dir())
    sums = shipped / SUMS
    if not sums.is_file():
        return [f"{sums}: missing"]
    problems, listed = [], set()
    for line in sums.read_text().splitlines():
        digest, _, name = line.partition("  ")
        listed.add(name)
        p = shipped / name
        if not p.is_file():
            problems.append(f"{name}: listed in {SUMS} but missing")
        elif files.sha256(p) != digest:
            problems.append(f"{name}: its sha256 differs from {SUMS}")
    for p in sorted(shipped.rglob("*")):
        if p.is_file() and p.name != SUMS and p.relative_to(shipped).as_posix() not in listed:
            problems.append(f"{p.relative_to(shipped).as_posix()}: not listed in {SUMS}")
    return problems


# -- unpack and export --------------------------------------------------------------------------

def checkpoint_bytes(shipped: Path, label: str, seed: int, G: torch.Tensor | None = None) -> tuple[bytes, dict, dict]:
    """The rebuilt checkpoint of a shipped model (the training's own bytes, checked against its
    sha256), its loaded object and its training metadata."""
    folder = seed_folder(shipped, label, seed)
    if not (folder / "train.json").is_file():
        have = shipped_seeds(shipped)[label] if label in ("main", "control") else []
        raise UserError(f"{folder}: no shipped {label} seed {seed} (shipped: {_seed_text(have)})")
    G = load_network(shipped) if G is None else G
    meta = files.read_json(folder / "train.json")
    structure = files.read_json(folder / "checkpoint.json")
    try:
        with np.load(folder / "checkpoint.npz", allow_pickle=False) as z:
            obj = decode(structure, {k: z[k] for k in z.files}, G)
    except files.NPZ_ERRORS as exc:
        raise UserError(f"{folder / 'checkpoint.npz'}: cannot read ({exc.__class__.__name__})") from None
    data = _torch_bytes(obj)
    if hashlib.sha256(data).hexdigest() != meta.get("checkpoint_sha256"):
        raise UserError(f"{folder}: the rebuilt checkpoint does not match the sha256 its training recorded")
    return data, obj, meta


def _seed_text(seeds: list[int]) -> str:
    return ", ".join(map(str, seeds)) if seeds else "none"


def export(shipped: Path | None, label: str, seeds: list[int], out: Path) -> list[Path]:
    """Write the original's two files (sys_A<s>_state.pth with sysa's resume data, and the bare
    sys_A<s>.pth) of shipped models into `out`, with sysa's metadata beside them
    (sys_A<s>_train.json); returns the paths written."""
    shipped = Path(shipped or default_dir())
    G = load_network(shipped)
    jobs = [(s, *checkpoint_bytes(shipped, label, s, G)) for s in seeds]  # every model checked first
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for s, data, obj, meta in jobs:
        files.write_bytes(files.checkpoint_path(out, s), data)
        files.save_torch(files.bare_path(out, s), obj["state_dict"])
        files.write_json(files.meta_path(out, s), meta)  # its configuration, for `sysa evaluate` and the notebooks
        written += [files.checkpoint_path(out, s), files.bare_path(out, s), files.meta_path(out, s)]
    return written


def study_config(shipped: Path | None = None) -> Config:
    """The configuration the shipped study was trained with (its study.json)."""
    shipped = Path(shipped or default_dir())
    return config_of(files.read_manifest(shipped / STUDY), shipped / STUDY)


#: what unpacking repairs in a seed folder (verify.prepare): a model whose training files do not verify is
#: written again from the shipped one; what a run repairs (its notebooks) is left to the run, which says so
UNPACK_REPAIRS = {"retrain": "unpacking the shipped model again", "finish": "unpacking the shipped model again"}


def unpack(out: Path, shipped: Path | None = None) -> dict[str, list[int]]:
    """Make `out` a run folder holding every shipped model as its training left it (checkpoints,
    metadata, plots), ready for `sysa run` to analyse without training. Models already in `out`
    that verify are kept; a folder holding another training of a shipped model is refused.
    Returns the seeds per ensemble."""
    shipped = Path(shipped or default_dir())
    cfg = study_config(shipped)
    have = shipped_seeds(shipped)
    if not have["main"]:
        raise UserError(f"{shipped}: no shipped model (nothing under main/)")
    problems = check_sums(shipped)
    if problems:
        raise UserError(f"{shipped}: {problems[0]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
    ens = ensembles(cfg, out, [], bool(have["control"]))
    G = load_network(shipped)
    seeds = have["main"]
    for e in ens:
        if have[e.label] != seeds:
            raise UserError(f"{shipped}: the control seeds ({_seed_text(have[e.label])}) are not the main seeds "
                            f"({_seed_text(seeds)})")
    folder = RunFolder(out, cfg, ens, seeds, overrides=files.read_json(shipped / STUDY).get("overrides", []),
                       control=len(ens) > 1, prog="sysa study", repairs=UNPACK_REPAIRS)
    folder.check()
    for e in ens:  # before the folder's repair could remove anything
        for s in seeds:
            _refuse_another_training(shipped, e, s)
    with folder.open():
        for e in ens:
            for s in seeds:
                _unpack_seed(shipped, e, s, G)
    return {e.label: seeds for e in ens}


def _refuse_another_training(shipped: Path, e: Ensemble, s: int) -> None:
    """UserError when e's seed-s folder holds a checkpoint or training metadata that is not the shipped
    model's."""
    meta = files.read_json(seed_folder(shipped, e.label, s) / "train.json")
    if meta.get("training_id") != replace(e.cfg, seed=s).training_id():
        raise UserError(f"{seed_folder(shipped, e.label, s)}: trained with another configuration than this "
                        f"code's paper profile")
    sdir = e.seed_dir(s)
    ck, meta_file = files.checkpoint_path(sdir, s), files.meta_path(sdir, s)
    if not any(p.is_file() for p in (ck, meta_file)):
        return
    sha = meta["checkpoint_sha256"]
    try:
        same = files.sha256(ck) == sha and files.read_json(meta_file).get("checkpoint_sha256") == sha
    except (OSError, UserError, AttributeError):
        same = False
    if not same:
        raise UserError(f"{sdir}: holds another training of {e.label} seed {s}; unpack into another folder")


def _unpack_seed(shipped: Path, e: Ensemble, s: int, G: torch.Tensor) -> None:
    """Write the shipped model's checkpoint, bare state dict, plots and metadata into its seed folder
    (what is already there and verifies is kept)."""
    sdir = e.seed_dir(s)
    ck, meta_file = files.checkpoint_path(sdir, s), files.meta_path(sdir, s)
    if all(p.is_file() for p in (ck, meta_file, files.bare_path(sdir, s), files.loss_plot_path(sdir, s),
                                 files.grad_plot_path(sdir, s))):
        return
    data, obj, meta = checkpoint_bytes(shipped, e.label, s, G)
    sdir.mkdir(parents=True, exist_ok=True)
    files.write_bytes(ck, data)
    files.save_torch(files.bare_path(sdir, s), obj["state_dict"])
    plots.training_figures(sdir, s, meta["history"], e.cfg)
    files.write_json(meta_file, meta)  # last: until it is there, the seed is not complete


# -- the reports, re-made from the shipped models ---------------------------------------------------

#: the relative tolerance within which a re-made metric must equal the shipped one
METRICS_RTOL = 1e-6
#: on a machine whose matrix libraries take other code paths than those of the machine the shipped
#: metrics were made on (study.json's ANALYSED_ON), and so round differently: the tolerance of the
#: metrics that rounding does not decide (the rest, analysis.metrics.rounding_fixed, are not compared)
ACROSS_CPUS_RTOL = 1e-3
#: across numerics, absolute floors (in the metric's unit) for numbers that can lie near 0, where a
#: relative tolerance would ask for the last bits: the plateau's drift (output units per s; 1e-5
#: moves an output by 2.5e-5 over the paper's 2.5 s window, under 0.1 % of its narrowest 10 % band)
ACROSS_CPUS_ATOL = {"plateau_drift_per_s": 1e-5, "plateau_drift_per_s_by_duration": 1e-5}
#: across numerics, times at which an output first crosses a threshold (ms): other rounding can move
#: a crossing by one step of the model, so they take one step (dt) as their absolute floor
CROSSING_MS_KEYS = ("plateau_hold_ms_by_duration", "plateau_sign_kept_ms_by_duration",
                    "plateau_sign_kept_ms_in_range_min", "sweep_hold_ms_min", "sweep_hold_ms_median",
                    "sweep_hold_ms_in_range_min")
#: study.json's record of the numerics (runtime.numerics) of the machine its metrics were made on
ANALYSED_ON = "analysed_on"
#: metrics that name what they were computed from and by which code, rather than measure the model
PROVENANCE_KEYS = ("checkpoint_sha256", "analysis_id", "training_id", "network_key", "profile", "seed", "epoch")


@dataclass(frozen=True)
class Comparison:
    """How this machine's re-made metrics are compared with the shipped ones: to METRICS_RTOL when
    the shipped ones were made with this machine's numerics (every one the study records, or the
    study does not say), else to ACROSS_CPUS_RTOL without the metrics rounding decides."""

    across_cpus: bool
    rtol: float
    text: str  # what was compared, for a message: "within 1e-06 relative"
    floors: dict = field(default_factory=dict)  # across numerics: absolute floors by metric


#: the rule on the numerics that made the shipped metrics: every number to METRICS_RTOL
SAME_NUMERICS = Comparison(False, METRICS_RTOL, f"within {METRICS_RTOL:g} relative")


def metric_differences(shipped_m: dict, remade: dict, rule: Comparison = SAME_NUMERICS, prefix: str = "",
                       atol: float = 1e-12) -> list[str]:
    """The metrics that differ between a shipped metrics.json and a re-made one by `rule`: numbers
    beyond rule.rtol relative (absolute below atol, or below the rule's floor for a metric it names),
    anything else when not equal; one line each. Across numerics (rule.across_cpus) the values of
    the metrics rounding decides (analysis.metrics.rounding_fixed, top-level keys) are not compared,
    only that both hold them."""
    out = []
    for k in sorted(set(shipped_m) | set(remade)):
        name = f"{prefix}{k}"
        if k not in remade or k not in shipped_m:
            out.append(f"{name}: {'missing in the re-made' if k not in remade else 'not in the shipped'} metrics")
            continue
        if rule.across_cpus and rounding_fixed(k):
            continue
        floor = atol if prefix else rule.floors.get(k, atol)
        a, b = shipped_m[k], remade[k]
        if isinstance(a, dict) and isinstance(b, dict):
            out += metric_differences(a, b, rule, f"{name}.", floor)
        elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            out += metric_differences(dict(enumerate(a)), dict(enumerate(b)), rule, f"{name}.", floor)
        elif isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
            if not abs(a - b) <= max(rule.rtol * max(abs(a), abs(b)), floor):
                out.append(f"{name}: shipped {a!r}, re-made {b!r} (relative {abs(a - b) / max(abs(a), abs(b)):.1e})")
        elif a != b:
            out.append(f"{name}: shipped {a!r}, re-made {b!r}")
    return out


def model_differences(shipped_m: dict, remade: dict, rule: Comparison = SAME_NUMERICS) -> list[str]:
    """metric_differences of one model's metrics, without the PROVENANCE_KEYS."""
    return metric_differences({k: v for k, v in shipped_m.items() if k not in PROVENANCE_KEYS},
                              {k: v for k, v in remade.items() if k not in PROVENANCE_KEYS}, rule)


def _made_on(study: dict, path: Path) -> dict | None:
    """The numerics the study's metrics were made with (ANALYSED_ON), None where it does not say."""
    made = study.get(ANALYSED_ON)
    if made is None:
        return None
    if not (isinstance(made, dict) and isinstance(made.get("cpu_vendor"), str) and made["cpu_vendor"]
            and all(v is None or isinstance(v, str) for v in made.values())):
        raise UserError(f"{path}: {ANALYSED_ON!r} must be an object naming at least the CPU vendor "
                        f"(\"cpu_vendor\"), not {json.dumps(made)[:60]}")
    return made


def _other_numerics(made_on: dict, here: dict) -> bool:
    """Whether this machine's numerics (`here`) differ from any that the study records."""
    return any(here.get(k) != v for k, v in made_on.items())


def _numerics_text(n: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in n.items())


def comparison(shipped: Path | None = None) -> Comparison:
    """The rule for comparing metrics re-made on this machine with the shipped study's."""
    shipped = Path(shipped or default_dir())
    made_on = _made_on(files.read_manifest(shipped / STUDY), shipped / STUDY)
    here = runtime.numerics()
    if made_on is None or not _other_numerics(made_on, here):
        return SAME_NUMERICS
    dt_ms = study_config(shipped).model.dt_ms
    return Comparison(True, ACROSS_CPUS_RTOL,
                      f"within {ACROSS_CPUS_RTOL:g} relative (threshold crossings within one {dt_ms:g} ms step, "
                      f"plateau drifts within {ACROSS_CPUS_ATOL['plateau_drift_per_s']:g} a.u. per s), leaving out the "
                      f"values rounding decides (participation "
                      f"ratios over all N eigenvectors, float32-vs-float64 spreads, slow- and fixed-point searches): "
                      f"they were made with other matrix-library code paths ({_numerics_text(made_on)}) than this "
                      f"machine's ({_numerics_text({k: here[k] for k in made_on})}), which round differently",
                      {**ACROSS_CPUS_ATOL, **dict.fromkeys(CROSSING_MS_KEYS, float(dt_ms))})


def compare_metrics(run_dir: Path, shipped: Path | None = None, rule: Comparison | None = None) -> dict[str, list[str]]:
    """{"main seed 3": differences} for every shipped model with shipped metrics, against the
    metrics.json of the same model in run folder `run_dir`, by `rule` (this machine's `comparison`)."""
    shipped = Path(shipped or default_dir())
    rule = rule or comparison(shipped)
    out = {}
    for label, seeds in shipped_seeds(shipped).items():
        for s in seeds:
            ship = seed_folder(shipped, label, s) / "metrics.json"
            if not ship.is_file():
                continue
            sdir = files.seed_dir(Path(run_dir) / ("" if label == "main" else label), s)
            try:
                remade = files.read_json(files.metrics_path(sdir))
            except UserError as exc:
                out[f"{label} seed {s}"] = [str(exc)]
                continue
            out[f"{label} seed {s}"] = model_differences(files.read_json(ship), remade, rule)
    return out
