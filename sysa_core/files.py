"""Files: every name in a run folder, atomic writes, safe checkpoint loading and provenance.

A run folder holds one folder per seed (`seed_<s>/`), each with the original's checkpoint
names (`sys_A<s>_state.pth`, `sys_A<s>.pth`) beside sysa's own files. Every name is built
here. Every file is written to a temporary file in the same folder and renamed into place,
so a crash leaves the old file or the new one, never a truncated one. Checkpoints are loaded
with `torch.load(weights_only=True)`: no arbitrary object is unpickled.
"""
from __future__ import annotations

import errno
import fcntl
import functools
import hashlib
import io
import json
import os
import pickle
import platform
import re
import shutil
import subprocess
import tempfile
import warnings
import zipfile
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from . import __version__, config
from .errors import UserError

KEYS = ("G", "I", "w", "h0")


# -- names ---------------------------------------------------------------------------------

def project_root() -> Path:
    """The repository when the package runs from a checkout, else the current folder."""
    here = Path(__file__).resolve().parent.parent
    if (here / "notebooks").is_dir() and (here / "sysa_core").is_dir():
        return here
    return Path.cwd()


def notebooks_dir() -> Path:
    return project_root() / "notebooks"


def default_run_dir(profile: str) -> Path:
    """Where `sysa run` and the notebooks put a profile's run by default: data/runs/<profile>."""
    return project_root() / "data" / "runs" / profile


def default_analysis_dir(checkpoint: Path, digest: str) -> Path:
    """The folder of its own where the notebooks put the analysis of a checkpoint given by path:
    data/analyses/<file stem>-<first 8 hex digits of its sha256>."""
    return project_root() / "data" / "analyses" / f"{Path(checkpoint).stem}-{digest[:8]}"


def seed_dir(run_dir: Path, seed: int) -> Path:
    return Path(run_dir) / f"seed_{seed}"


def checkpoint_path(folder: Path, seed: int) -> Path:
    """The original's checkpoint with epoch, optimizer and sysa's resume data."""
    return Path(folder) / f"sys_A{seed}_state.pth"


def bare_path(folder: Path, seed: int) -> Path:
    """The original's bare state dict {G, I, w, h0}, written when training is complete."""
    return Path(folder) / f"sys_A{seed}.pth"


def meta_path(folder: Path, seed: int) -> Path:
    """sysa's training metadata: configuration, code version, status, histories."""
    return Path(folder) / f"sys_A{seed}_train.json"


def loss_plot_path(folder: Path, seed: int) -> Path:
    return Path(folder) / f"sys_A{seed}_err.png"


def grad_plot_path(folder: Path, seed: int) -> Path:
    return Path(folder) / f"sys_A{seed}_param.png"


def metrics_path(folder: Path) -> Path:
    """The per-model numbers (analysis.metrics), the same object `sysa evaluate --json` prints."""
    return Path(folder) / "metrics.json"


def arrays_path(folder: Path) -> Path:
    """The arrays the notebooks plot, computed with the metrics (analysis.metrics)."""
    return Path(folder) / "analysis.npz"


def record_path(folder: Path) -> Path:
    """The pipeline's record of a seed's chain (status, steps, timings) or of a run's population."""
    return Path(folder) / "pipeline.json"


#: the manifest that marks a folder as sysa's (a `sysa run` or `sysa train` folder): its kind, the
#: configuration, the code version and the state of each seed
RUN_MARKER = "sysa-run.json"
#: the lock every writer of a run folder holds (flock)
LOCK_NAME = ".sysa.lock"
#: set by a process that holds a folder's lock, for the processes it starts (kernels, workers)
LOCK_ENV = "SYSA_LOCKED"
#: the start of the name of the file a run writes into its folder, before taking its lock, to check
#: that a Dask cluster's workers see the folder (each run its own name; removed once read)
PROBE_PREFIX = ".sysa-probe-"


def shared_dir(folder: Path) -> Path:
    """Where what a run's models share (the network G's analysis) is kept for a model in `folder`:
    the run's folder when `folder` is a seed folder of a run (of its control ensemble too), else
    `folder` itself."""
    folder = Path(folder)
    for cand in (folder.parent, folder.parent.parent):
        if (cand / RUN_MARKER).is_file():
            return cand
    return folder


def run_root(folder: Path) -> Path:
    """The folder whose lock covers writing into `folder`: its run's folder (shared_dir), or
    `folder` itself."""
    return shared_dir(folder)


def check_owned(out: Path, option: str = "--out") -> None:
    """Refuse a folder another sysa process is writing (its lock held), and an existing, non-empty
    folder that is not sysa's (no RUN_MARKER): nothing of it is touched. UserError naming the folder."""
    out = Path(out)
    check_not_busy(out)
    if out.is_dir() and any(not _bookkeeping(p.name) for p in out.iterdir()) and not (out / RUN_MARKER).is_file() \
            and not _only_seed_folders(out):
        check_not_busy(out)  # a run that took the lock since is writing its first files, not someone else's
        raise UserError(f"{option} {out}: the folder holds files and is not a sysa run (no {RUN_MARKER}); "
                        f"choose a new or empty folder")


def check_not_busy(folder: Path) -> None:
    """Refuse a folder whose lock another sysa process holds. UserError naming the folder."""
    if _lock_held_elsewhere(Path(folder) / LOCK_NAME):
        raise UserError(f"{folder}: another sysa process is writing to this folder")


def check_own_folder(path: Path, what: str) -> None:
    """Refuse a folder sysa would write into that is a symbolic link (sysa writes only into its own
    folders, never through a link into another) or a file. UserError naming it."""
    path = Path(path)
    if path.is_symlink():
        raise UserError(f"{what} {path}: a symbolic link (to {os.readlink(path)}); sysa writes only into its "
                        f"own folders, not through links: replace it with a folder, or move it away")
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} {path}: a file stands where this folder goes; move it away")


def check_model_folder(folder: Path, what: str) -> None:
    """Refuse a folder a model's files would be written into that is a symbolic link, or that holds
    files and none of sysa's for a model (training metadata, checkpoints, metrics, a pipeline record,
    a network's analysis, or a run's manifest). UserError naming the folder; nothing of it is touched."""
    folder = Path(folder)
    check_own_folder(folder, what)
    if not folder.is_dir():
        return
    names = [p.name for p in folder.iterdir() if p.name != LOCK_NAME]
    model_files = any(re.fullmatch(r"sys_A\d+(_state|_train)?\.(pth|json)", n) for n in names)
    network_files = any(re.fullmatch(r"network-[0-9a-f]{16}\.(json|npz)", n) for n in names)
    run_files = any(n in (RUN_MARKER, metrics_path(folder).name, record_path(folder).name) for n in names)
    if names and not (model_files or network_files or run_files):
        raise UserError(f"{what} {folder}: the folder holds files and none of sysa's; choose a new or empty folder")


def _lock_held_elsewhere(lock: Path) -> bool:
    """Whether a sysa process other than this one and its parents holds `lock` (the file is only
    opened for reading: a folder that is not sysa's stays untouched)."""
    if not lock.is_file() or os.environ.get(LOCK_ENV) == str(lock.resolve()):
        return False
    try:
        with open(lock) as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(fh, fcntl.LOCK_UN)
    except OSError:
        return False
    return False


def _bookkeeping(name: str) -> bool:
    """Whether a file is sysa's own bookkeeping of who writes a folder (its lock, a run's probe for
    its workers), which a run that has not yet written its manifest may already have left there."""
    return name == LOCK_NAME or name.startswith(PROBE_PREFIX)


def _only_seed_folders(out: Path) -> bool:
    """Whether a folder holds nothing but sysa seed folders (seed_<s> with their training metadata)."""
    for p in out.iterdir():
        m = re.fullmatch(r"seed_(\d+)", p.name)
        if _bookkeeping(p.name):
            continue
        if not (m and p.is_dir() and meta_path(p, int(m.group(1))).is_file()):
            return False
    return True


class FolderLock:
    """The exclusive lock of a run folder (flock on its LOCK_NAME, released when the process ends,
    even on a kill). A process started by the holder (LOCK_ENV names the lock) writes under it.
    It covers the folders inside: it is refused while another process holds a folder around it."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.fh = None
        self.env_before = None

    def _inherited(self) -> bool:
        return os.environ.get(LOCK_ENV) == str(self.path.resolve())

    def __enter__(self):
        if self._inherited():
            return self
        for folder in self.folder.resolve().parents:  # a run's lock covers the folders inside it
            if _lock_held_elsewhere(folder / LOCK_NAME):
                raise UserError(f"{self.folder}: another sysa process is writing to {folder}, which holds this folder")
        self.fh = open(self.path, "a+")
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.fh.close()
            self.fh = None
            raise UserError(f"{self.folder}: another sysa process is writing to this folder") from None
        self.env_before = os.environ.get(LOCK_ENV)
        os.environ[LOCK_ENV] = str(self.path.resolve())
        return self

    def __exit__(self, *exc):
        if self.fh is None:
            return
        if self.env_before is None:
            os.environ.pop(LOCK_ENV, None)
        else:
            os.environ[LOCK_ENV] = self.env_before
        fcntl.flock(self.fh, fcntl.LOCK_UN)
        self.fh.close()
        self.fh = None


def check_free_disk(folder: Path, need_bytes: int, what: str) -> None:
    """Refuse when the filesystem of `folder` (or of its nearest existing parent) has less free space
    than need_bytes, naming both."""
    p = Path(folder).resolve()
    while not p.exists() and p != p.parent:
        p = p.parent
    free = shutil.disk_usage(p).free
    if free < need_bytes:
        raise UserError(f"{folder}: not enough free disk for {what}: about {need_bytes / 2**20:.0f} MB needed, "
                        f"{free / 2**20:.0f} MB free")


def seed_from_name(path) -> int | None:
    """The seed in a `sys_A{seed}...` file name, or None."""
    m = re.match(r"sys_A(\d+)(?:_state)?\.pth$", Path(path).name)
    return int(m.group(1)) if m else None


# -- atomic writes -------------------------------------------------------------------------

def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def _atomic_write(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are shared like any file
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def is_temporary(name: str) -> bool:
    """Whether a file name is one of sysa's temporaries (remove_temporaries)."""
    return name.startswith(".") and ".tmp" in name


def remove_temporaries(folder: Path) -> list[Path]:
    """Remove what a write killed midway left in `folder` (hidden .<name>...tmp... files: an atomic
    write's .<name>.<random>.tmp, a running notebook's .<name>.tmp.ipynb);
    call it only while holding the folder's lock, when no write of sysa's can be in flight there.
    Returns what was removed."""
    if not Path(folder).is_dir():
        return []
    gone = [p for p in Path(folder).iterdir() if is_temporary(p.name) and p.is_file() and not p.is_symlink()]
    for p in gone:
        p.unlink()
    return gone


#: what numpy.load raises for an .npz that is missing, truncated or corrupt (its zip structure, a
#: member's compressed data or its header), or lacks an array asked for
NPZ_ERRORS = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error)


def write_bytes(path, data: bytes) -> None:
    _atomic_write(Path(path), lambda fh: fh.write(data))


def write_text(path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path, obj: Any, if_changed: bool = False) -> None:
    """Write obj as JSON; with if_changed, leave an identical existing file untouched."""
    text = json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n"
    if if_changed and Path(path).exists() and Path(path).read_text() == text:
        return
    write_text(path, text)


def _json_default(o):
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def save_torch(path, obj: Any) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    write_bytes(path, buf.getvalue())


def read_json(path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc.__class__.__name__})") from None
    except RecursionError:
        raise UserError(f"{path}: not a file sysa wrote (JSON nested too deeply to read)") from None
    except IsADirectoryError:
        raise UserError(f"{path}: a folder, not a JSON file") from None


def read_manifest(path) -> dict:
    """A run folder's manifest (RUN_MARKER), checked for the shape sysa writes: an object with a
    kind ("run" or "train"), a "config" object, "seeds" a list of seed integers and "state" an
    object. UserError in one line naming the file and the first thing that is wrong."""
    path = Path(path)
    man = read_json(path)
    if not isinstance(man, dict):
        raise UserError(f"{path}: not a sysa manifest (expected a JSON object)")
    checks = (("kind", lambda v: v in ("run", "train"), '"run" or "train"'),
              ("config", lambda v: isinstance(v, dict), "an object with the configuration"),
              ("seeds", lambda v: isinstance(v, list) and all(type(s) is int and 0 <= s < 2**31 for s in v),
               "a list of seeds (integers in [0, 2^31))"),
              ("state", lambda v: isinstance(v, dict) and all(isinstance(x, dict) for x in v.values()),
               "an object of each ensemble's seed states"),
              ("control", lambda v: isinstance(v, bool), "true or false"),
              ("overrides", lambda v: isinstance(v, list) and all(isinstance(o, str) for o in v), "a list of texts"))
    for key, ok, what in checks:
        if key not in man and key in ("state", "control", "overrides"):
            continue  # older manifests: an empty state, no control, no overrides
        if key not in man:
            raise UserError(f"{path}: not a sysa manifest (no {key!r})")
        if not ok(man[key]):
            raise UserError(f"{path}: {key!r} must be {what}, not {json.dumps(man[key])[:60]}")
    return man


def load_checkpoint(path, hidden_size: int | None = None) -> dict:
    """Load either of the original's formats and check it.

    Returns {'state_dict': {G, I, w, h0}, 'epoch': int | None, 'optimizer': dict | None,
    'extra': dict (the project's own resume data, may be empty)}. Raises UserError naming the
    file and the problem for a missing, empty, truncated, corrupt, foreign or mismatched file.
    """
    path = Path(path)
    if not path.exists():
        if path.is_symlink():
            try:
                path.resolve(strict=True)
            except RuntimeError:
                raise UserError(f"{path}: a symbolic link that points to itself (a loop)") from None
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise UserError(f"{path}: a symbolic link that points to itself (a loop)") from None
            raise UserError(f"{path}: a symbolic link to a file that does not exist") from None
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path}: is a folder, expected a checkpoint file")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: empty file, not a checkpoint")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of foreign files
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        glob = next((ln for ln in lines if "GLOBAL" in ln or "global" in ln), None)
        if glob:
            reason = f"it asks to import Python objects ({glob[:100]})"
        else:
            op = next((ln for ln in lines if "Unsupported" in ln), "unreadable")
            reason = f"its content is not tensor data ({op.split('error:')[-1].strip()[:100]})"
        raise UserError(f"{path}: refused by the safe loader, {reason}; nothing in it was executed") from None
    except Exception as exc:  # any parse failure of a foreign or damaged file (IndexError, EOFError, ...)
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise UserError(f"{path}: corrupt or truncated checkpoint ({msg[:120]})") from None
    if isinstance(obj, dict) and "state_dict" in obj:
        sd, epoch, opt, extra = obj["state_dict"], obj.get("epoch"), obj.get("optimizer"), obj.get("sysa", {})
    else:
        sd, epoch, opt, extra = obj, None, None, {}
    if not isinstance(sd, dict) or set(sd) != set(KEYS):
        got = sorted(sd)[:6] if isinstance(sd, dict) else type(sd).__name__
        raise UserError(f"{path}: not a System A checkpoint (expected tensors G, I, w, h0; found {got})")
    for k in KEYS:
        if not isinstance(sd[k], torch.Tensor) or not sd[k].is_floating_point():
            raise UserError(f"{path}: {k} is not a floating-point tensor")
    n = sd["G"].shape[0]
    shapes = {"G": (n, n), "I": (n, 1), "w": (n, 1), "h0": (n,)}
    for k, shp in shapes.items():
        if tuple(sd[k].shape) != shp:
            raise UserError(f"{path}: {k} has shape {tuple(sd[k].shape)}, expected {shp}")
    if hidden_size is not None and n != hidden_size:
        raise UserError(f"{path}: hidden size {n} does not match the configuration's hidden_size={hidden_size}")
    for k in KEYS:
        if not torch.isfinite(sd[k]).all():
            raise UserError(f"{path}: {k} holds non-finite values")
    if epoch is not None and not isinstance(epoch, int):
        raise UserError(f"{path}: 'epoch' is not an integer")
    extra = extra if isinstance(extra, dict) else {}
    if "training_id" in extra:
        _check_resume_data(path, extra, opt, epoch, n)
    return {"state_dict": sd, "epoch": epoch, "optimizer": opt, "extra": extra}


#: sysa's resume data in a checkpoint ("sysa"): each entry and the tensor dtype it has
RESUME_DATA = {"batch_rng": torch.uint8, "loss": torch.float64, "grad_I": torch.float64, "grad_w": torch.float64,
               "monitor_step": torch.int64, "monitor_loss": torch.float64}


def _check_resume_data(path: Path, extra: dict, opt, epoch, n: int) -> None:
    """UserError naming what is missing when a checkpoint that carries sysa's training id lacks the
    rest of what resuming its training reads (the batch generator, the histories, Adam's moments)."""
    if not isinstance(extra["training_id"], str) or epoch is None:
        raise UserError(f"{path}: sysa's resume data is damaged (training_id or epoch)")
    for key, dtype in RESUME_DATA.items():
        v = extra.get(key)
        if not isinstance(v, torch.Tensor) or v.dtype != dtype or v.dim() != 1:
            raise UserError(f"{path}: sysa's resume data is incomplete ({key!r} is missing or damaged)")
    try:
        state = opt["state"]
        for group in (1, 2):
            g = state[group]
            if not all(isinstance(g[k], torch.Tensor) and tuple(g[k].shape) == (n, 1)
                       for k in ("exp_avg", "exp_avg_sq")) or not isinstance(g["step"], torch.Tensor):
                raise TypeError
    except (TypeError, KeyError, IndexError):
        raise UserError(f"{path}: sysa's resume data is incomplete (the optimizer's state)") from None


def sha256(path) -> str:
    """The hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# -- provenance ----------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def code_version() -> dict:
    """What produced a result: sysa's version, the git commit (and whether the tree had local
    changes) when running from a checkout, torch and Python versions."""
    root = Path(__file__).resolve().parent.parent
    commit, dirty = None, None
    if (root / ".git").exists():
        try:
            commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                    text=True, timeout=10).stdout.strip() or None
            # --no-optional-locks: a status never takes the index lock, so a process killed here
            # cannot leave .git/index.lock behind in the user's checkout
            status = subprocess.run(["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"],
                                    cwd=root, capture_output=True, text=True, timeout=10).stdout
            dirty = bool(status.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    return {"sysa": __version__, "git_commit": commit, "git_dirty": dirty, "torch": torch.__version__,
            "python": platform.python_version()}


def for_checkpoint(path, profile_name: str | None = None, overrides=None, seed: int | None = None,
                   who: str = "sysa evaluate") -> config.Config:
    """The configuration a checkpoint is analysed with. With sysa's training metadata beside it
    (sys_A<seed>_train.json), the recorded configuration, with `overrides` that may change only the
    analysis settings; else the named profile (default `paper`, the original's parameters) with the
    overrides. The seed comes from `seed`, else from the file name. UserError in one line, naming
    `who` and both values, when the profile or an override contradicts the recorded configuration."""
    path = Path(path)
    seed = seed if seed is not None else seed_from_name(path)
    if seed is None:
        raise UserError(f"{path}: cannot tell the seed from the file name (expected sys_A<seed>...); pass --seed")
    meta = meta_path(path.parent, seed)
    if not meta.is_file():
        return config.resolve(profile_name or "paper", overrides, seed=seed)
    record = read_json(meta)
    if not isinstance(record, dict) or "config" not in record:
        raise UserError(f"{meta}: not a training metadata file (no 'config'); move it away or name a profile")
    recorded = replace(config.Config.from_dict(record["config"], source=str(meta)), seed=seed)
    where = f"the configuration recorded beside {path.name} ({meta.name})"
    if profile_name and profile_name != recorded.profile:
        raise UserError(f"{who}: profile={profile_name!r} contradicts {where}, profile {recorded.profile!r}; "
                        "leave the profile out: a checkpoint is analysed with the configuration it was trained with")
    cfg = config.validate(config.apply_overrides(recorded, overrides or ()))
    for key, was, now in _training_differences(recorded, cfg):
        raise UserError(f"{who}: overrides set {key}={now!r}, which contradicts {where}, {key}={was!r}; "
                        "only analysis.* settings can be changed for a trained checkpoint")
    return cfg


def _training_differences(a: config.Config, b: config.Config):
    """(key, value in a, value in b) for every training setting (model, task, train, seed) that differs."""
    if a.seed != b.seed:
        yield "seed", a.seed, b.seed
    da, db = a.to_dict(), b.to_dict()
    for section in ("model", "task", "train"):
        for k, v in da[section].items():
            if db[section][k] != v:
                yield f"{section}.{k}", v, db[section][k]