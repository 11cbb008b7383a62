"""Shared fixtures: the reference checkpoints, running the real CLI, smoke training runs.

The published checkpoints of the original study live in ../shared/reference (beside the
repository, never copied into it); tests that need them skip when the folder is absent.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from filelock import FileLock

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "reference"

#: published values of ../shared/reference/README.md (seed: (precision, weight correlation))
PUBLISHED = {1: (0.01618705317378044, 0.8806139230728149), 2: (0.03527102246880531, 0.8195869326591492)}


def _start_group(item) -> int:
    """0: the tests that need the session's smoke run; 1: the other long ones (real runs, the
    original's checkpoints, trained smoke seeds); 2: the rest."""
    fixtures = set(getattr(item, "fixturenames", ()))
    if "smoke_run" in fixtures:
        return 0
    if "pipeline" in item.path.parts or fixtures & {"reference_full", "paper_evaluations", "smoke_train", "smoke_train_again"}:
        return 1
    return 2


def pytest_collection_modifyitems(items):
    """Order the tests by _start_group. pytest-xdist's worksteal hands the first half of the list to
    one worker and the second half to the other: the first builds the smoke run while the second
    starts on tests that do not wait for it, and an idle worker steals from the end of a queue."""
    items.sort(key=_start_group)


REFERENCE_FILES = ("sys_A1_state.pth", "sys_A2_state.pth")


def _reference_location() -> tuple[Path | None, Path]:
    """(the folder holding the original's published checkpoints of seeds 1 and 2, or None; the
    cache `make reproduce` fetches them into)."""
    from sysa_core.pipeline import reproduce

    cache = reproduce.default_cache()
    for folder in (REFERENCE, cache):
        if all((folder / n).is_file() for n in REFERENCE_FILES):
            return folder, cache
    return None, cache


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The original's published checkpoints of seeds 1 and 2: ../shared/reference, else the ones
    `make reproduce` fetched (sha256 checked) into its cache."""
    folder, cache = _reference_location()
    if folder is None:
        pytest.skip(f"the original's published checkpoints are not here: ../shared/reference is absent and "
                    f"`make reproduce` has not fetched them into {cache}")
    return folder


#: torch threads of the CLI subprocesses, fixed when the session starts (a test that changes
#: os.environ later must not change it between two runs that are compared bit for bit)
CLI_THREADS = os.environ.get("OMP_NUM_THREADS", "1")
# The CPU is the tested path (and the only one bit-reproducible): on a machine with a GPU, training
# (in process, in the CLI subprocesses and in papermill's kernels, which inherit this) stays on it.
os.environ["SYSA_DEVICE"] = "cpu"


def cli_env() -> dict:
    """The environment of the CLI subprocesses: single-threaded torch unless OMP_NUM_THREADS is set
    (run `OMP_NUM_THREADS=2 pytest` to exercise the multi-threaded path). On a shared 2-core
    machine torch's default thread pool makes these small-matrix runs 3-8x slower; results
    are compared between runs made with the same setting."""
    return dict(os.environ, OMP_NUM_THREADS=CLI_THREADS)


@pytest.fixture(scope="module")
def single_threaded_torch():
    """In-process tests on small matrices: the intra-op thread pool only adds latency (and makes
    the suite's speed hostage to other load on a 2-core machine). Restored after the module."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def run_cli(*args, timeout: float = 600, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`python -m sysa_core ARGS` in a fresh interpreter, as a user would run it."""
    return subprocess.run([sys.executable, "-m", "sysa_core", *map(str, args)], cwd=cwd or REPO,
                          capture_output=True, text=True, timeout=timeout, env=cli_env())


def popen_cli(*args) -> subprocess.Popen:
    """`python -m sysa_core ARGS` started in the background (run_cli's environment)."""
    return subprocess.Popen([sys.executable, "-m", "sysa_core", *map(str, args)], cwd=REPO, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(cond, timeout: float = 120, what: str = "", every_s: float = 0.02) -> None:
    """Wait until cond() holds (checked every every_s seconds); fail after timeout seconds."""
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(every_s)


def _children_of() -> dict[int, list[int]]:
    """{parent pid: its children's pids} of every live process (from /proc's parent links)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(d.name))
    return children


def children(pid: int) -> set[int]:
    """The live processes whose parent is pid."""
    return set(_children_of().get(pid, []))


def descendants(pid: int) -> set[int]:
    """Every live process below pid (from /proc's parent links)."""
    children = _children_of()
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.add(c)
            todo.append(c)
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def alive(pid: int) -> bool:
    """Whether a process runs (exists and is not a zombie)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def record_calls(monkeypatch, module, name: str, log: Path) -> None:
    """Append "name pid torch-threads" to the file `log` at each call of module.name (a file, so
    that a call in a forked child is recorded too)."""
    import torch

    real = getattr(module, name)

    def spied(*args, **kwargs):
        with open(log, "a") as fh:
            fh.write(f"{name} {os.getpid()} {torch.get_num_threads()}\n")
        return real(*args, **kwargs)
    monkeypatch.setattr(module, name, spied)


def recorded_calls(log: Path) -> list[tuple[str, int, int]]:
    """(name, pid, torch threads) of each call record_calls wrote to `log`, in order."""
    return [(n, int(p), int(t)) for n, p, t in (ln.split() for ln in log.read_text().splitlines())]


def assert_same_arrays(a: dict, b: dict) -> None:
    """The same names, and each array the same dtype, shape and bytes."""
    assert set(a) == set(b), sorted(set(a) ^ set(b))
    for k, x in a.items():
        y = b[k]
        assert (x.dtype, x.shape, x.tobytes()) == (y.dtype, y.shape, y.tobytes()), k


def locked(folder: Path) -> bool:
    """Whether a process holds the run folder's lock."""
    lock = folder / ".sysa.lock"
    if not lock.exists():
        return False
    with open(lock, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
    return False


def assert_user_error(stderr: str, rc: int, *needles: str) -> str:
    """A user error: exit status 2, exactly one line on stderr naming what is wrong, no traceback."""
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert rc == 2, f"exit status {rc}, stderr:\n{stderr}"
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    line = lines[0]
    assert line.startswith("sysa: error: "), line
    for n in needles:
        assert n in line, f"{n!r} not in {line!r}"
    return line


def parse_json_lines(stdout: str) -> list[dict]:
    return [json.loads(ln) for ln in stdout.splitlines() if ln.strip()]


def moved_weights(model_cfg, seed: int, noise_seed: int, dI: float = 0.0, dw: float = 0.0) -> dict:
    """The initial weights of `seed` with I and w moved away from the coupled initialisation
    (I is then not sqrt(N) w), like a trained model: I += dI * noise, then w += dw * noise,
    the noise drawn in that order from the generator of noise_seed."""
    from sysa_core.model import generator, init_weights

    wts = init_weights(model_cfg, seed)
    g = generator(noise_seed)
    for name, scale in (("I", dI), ("w", dw)):
        if scale:
            wts[name] = wts[name] + scale * torch.randn(wts[name].shape, generator=g)
    return wts


class Net1(torch.nn.Module):
    """The original's network as a torch module (README, Definitions 1), the reference the tests
    check the package's simulation, engine and training against: parameters G, I, w, h0 in the
    original's order; only I and w require gradients."""

    def __init__(self, cfg, weights: dict | None = None):
        from sysa_core.model import DTYPES, init_weights

        super().__init__()
        self.cfg = cfg
        dtype = DTYPES[cfg.model.dtype]
        wts = weights if weights is not None else init_weights(cfg.model, cfg.seed)
        self.G = torch.nn.Parameter(wts["G"].detach().clone().to(dtype), requires_grad=False)
        self.I = torch.nn.Parameter(wts["I"].detach().clone().to(dtype))
        self.w = torch.nn.Parameter(wts["w"].detach().clone().to(dtype))
        self.h0 = torch.nn.Parameter(wts["h0"].detach().clone().to(dtype), requires_grad=False)

    def forward(self, x_btd: torch.Tensor, h0: torch.Tensor | None = None,
                return_h: bool = False, return_r: bool = False):
        """The plain loop of README, Definitions 1, differentiable by autograd: `reference_forward` on this module's tensors."""
        from sysa_core.model import reference_forward

        h0 = self.h0 if h0 is None else h0
        return reference_forward(self.G, self.I, self.w, h0, x_btd, self.cfg.alpha, self.cfg.model.g_G,
                                 return_h=return_h, return_r=return_r)


def population_table(n: int, cos_init: float, cos: float, mech: str = "transient", key: str = "k") -> pd.DataFrame:
    """A made-up population table of n seeds (the columns the answer reads)."""
    rng = np.random.default_rng(int(100 * cos) + n)
    return pd.DataFrame({
        "seed": np.arange(1, n + 1), "precision": rng.uniform(0.01, 0.04, n),
        "precision_trained_range": rng.uniform(1e-3, 3e-3, n),
        "weight_correlation_init": np.full(n, cos_init), "weight_correlation": cos + 0.01 * rng.standard_normal(n),
        "pr_input_l1": rng.uniform(300, 340, n), "memory_mechanism": [mech] * n,
        "plateau_state_speed_per_s": rng.uniform(1, 2, n), "readout_pcs_needed": rng.integers(15, 25, n),
        "network_dim_spontaneous": np.full(n, 3.9) if key == "k" else rng.uniform(3, 4, n),
        "network_key": [key] * n if key == "k" else [f"k{i}" for i in range(n)],
        "network_G": [key] * n if key == "k" else [f"G{i}" for i in range(n)]})


@pytest.fixture(scope="module")
def small_cfg():
    """The smoke configuration at 40 units, for analyses checked on a small model."""
    from sysa_core import config
    return config.resolve("smoke", ["hidden_size=40"])


@pytest.fixture(scope="module")
def moved_sd(small_cfg):
    """A small_cfg model with I and w moved away from their coupled initialisation (as training moves them)."""
    return moved_weights(small_cfg.model, 3, noise_seed=11, dI=0.5, dw=0.2)


@pytest.fixture(scope="session")
def smoke_cfg():
    from sysa_core import config
    return config.resolve("smoke", seed=1)


def once_dir(tmp_path_factory, name: str) -> Path:
    """Where `once` keeps the folder of `name` (shared by the pytest-xdist workers)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    return root / "once" / name


def once(tmp_path_factory, name: str, produce) -> Path:
    """A folder made by `produce(folder)` once per test session, shared by the pytest-xdist workers
    (the first to get here makes it while the others wait on a file lock)."""
    folder = once_dir(tmp_path_factory, name)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        done = folder / ".done"
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            produce(folder)
            done.write_text("")
    return folder


def first_analysed_shipped() -> tuple[str, int] | None:
    """(ensemble, seed) of the first model of the shipped study (data/paper) with shipped metrics."""
    from sysa_core.pipeline import shipped

    src = shipped.default_dir()
    if not src.is_dir():
        return None
    for label, seeds in shipped.shipped_seeds(src).items():
        for s in seeds:
            if (shipped.seed_folder(src, label, s) / "metrics.json").is_file():
                return label, s
    return None


@pytest.fixture(scope="session")
def paper_evaluations(tmp_path_factory) -> dict:
    """`sysa evaluate --json` of the original's seed 1 (`reference`, when its checkpoint is here) and
    of the first shipped model with shipped metrics (`shipped`: its ensemble, seed and metrics), in
    one real process: they share the paper's G, whose analysis it computes once and keeps in
    paper_network_dir. None for one absent."""
    from sysa_core import files
    from sysa_core.pipeline import shipped

    def produce(folder):
        names, paths = [], []
        ref, _ = _reference_location()
        if ref is not None:
            names.append("reference")
            paths.append(ref / "sys_A1_state.pth")
        first = first_analysed_shipped()
        if first is not None:
            shipped.export(shipped.default_dir(), first[0], [first[1]], folder)
            names.append("shipped")
            paths.append(files.checkpoint_path(folder, first[1]))
        got = {}
        if paths:
            proc = run_cli("evaluate", *paths, "--json", "--network-dir", folder / "network")
            assert proc.returncode == 0, proc.stderr
            got = dict(zip(names, parse_json_lines(proc.stdout)))
        (folder / "metrics.json").write_text(json.dumps(
            {"reference": got.get("reference"), "shipped": got.get("shipped") and [*first, got["shipped"]]}))

    return json.loads((once(tmp_path_factory, "paper_evaluations", produce) / "metrics.json").read_text())


@pytest.fixture(scope="session")
def paper_network_dir(tmp_path_factory, paper_evaluations) -> Path:
    """The folder where paper_evaluations' `sysa evaluate --network-dir` keeps the analysis of the
    paper's G (network-<key>.json/.npz)."""
    return once_dir(tmp_path_factory, "paper_evaluations") / "network"


@pytest.fixture(scope="session")
def reference_full(reference_dir, paper_evaluations) -> dict:
    """`sysa evaluate ../shared/reference/sys_A1_state.pth --json`: every metric of the original's
    seed 1 under the paper profile, from a real process (paper_evaluations)."""
    return paper_evaluations["reference"]


#: the session's smoke run: two seeds and their control ensemble, one torch thread, trained one at a
#: time like the Dask and pool workers train them (so their results compare bit for bit)
SMOKE_RUN = ["run", "--profile", "smoke", "--seeds", "1-2", "--control", "--threads", "1", "--no-batch-seeds",
             "--quiet"]


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """The folder of one complete `sysa run` of the smoke profile (SMOKE_RUN), shared by the pipeline,
    report and browser tests. Tests that change a run work on a copy (copy_run)."""
    def produce(folder):
        proc = run_cli(*SMOKE_RUN, "--out", folder / "run")
        assert proc.returncode == 0, proc.stderr

    return once(tmp_path_factory, "smoke_run", produce) / "run"


def copy_run(run: Path, dest: Path) -> Path:
    """A copy of a run folder (without its lock file) that a test may change."""
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns(".sysa.lock"))
    return dest


def _train_smoke(folder: Path) -> Path:
    proc = run_cli("train", "--profile", "smoke", "--seeds", "1", "--out", folder, "--quiet")
    assert proc.returncode == 0, proc.stderr
    return folder / "seed_1"


@pytest.fixture(scope="session")
def smoke_train(tmp_path_factory) -> Path:
    """Folder of a complete, uninterrupted `sysa train --profile smoke --seeds 1` run."""
    return once(tmp_path_factory, "smoke_a", _train_smoke) / "seed_1"


@pytest.fixture(scope="session")
def smoke_train_again(tmp_path_factory) -> Path:
    """A second, independent run of the same command (reproducibility)."""
    return once(tmp_path_factory, "smoke_b", _train_smoke) / "seed_1"


def headless_chrome(*extra_args: str, capabilities: dict | None = None):
    """Debian's Chromium, headless, under its chromedriver (`make browser` installs both); a test
    that needs it fails, never skips, when they are absent. extra_args: more Chromium switches."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    driver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not (Path(chromium).exists() and Path(driver).exists()):
        pytest.fail("Debian's chromium and chromium-driver are required (make browser installs them)")
    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage",
              "--disable-background-networking", "--disable-component-update", "--disable-sync", *extra_args):
        opts.add_argument(a)
    opts.binary_location = chromium
    for key, value in (capabilities or {}).items():
        opts.set_capability(key, value)
    return webdriver.Chrome(service=Service(driver), options=opts)
