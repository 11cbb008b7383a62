"""sysa_core.pipeline.explore: a checkpoint probed with single pulses, with the configuration recorded beside it,
fast enough to follow a slider on the CPU."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from sysa_core import config, model
from sysa_core.pipeline import explore


@pytest.fixture(scope="module")
def quick_checkpoint(tmp_path_factory):
    """A 200-unit network of the quick profile, untrained, in the original's format without metadata (so
    its profile is named)."""
    folder = tmp_path_factory.mktemp("explore")
    torch.save(model.init_weights(config.resolve("quick").model, 3), folder / "sys_A3.pth")
    return folder / "sys_A3.pth"


def test_a_pulse_is_followed_beyond_the_scored_window_and_projected(smoke_train):
    probe = explore.Probe(smoke_train / "sys_A1_state.pth")
    assert probe.cfg.profile == "smoke"  # the configuration recorded beside the checkpoint
    short, long = probe.trial(30), probe.trial(90)
    c = probe.cfg
    assert short.t_ms[-1] >= c.task.Nt_ms + probe.extra_ms - c.model.dt_ms  # beyond the trained window
    assert np.isnan(short.target[c.steps(c.task.cost_onset_ms) - 1]) and short.target[-1] == pytest.approx(short.target_level)
    assert set(short.projections) == {"readout w", "duration", "PC1", "PC2"}
    assert long.plateau != short.plateau and long.target_level == pytest.approx(3 * short.target_level)
    assert "duration 90 ms" in explore.status(long)
    noisy = probe.trial(90, noise_std=0.1)
    assert not np.allclose(noisy.y, long.y) and np.array_equal(noisy.y, probe.trial(90, noise_std=0.1).y)


def test_an_update_of_a_200_unit_network_draws_its_figure(tmp_path, quick_checkpoint):
    import matplotlib

    matplotlib.use("Agg")
    probe = explore.Probe(quick_checkpoint, profile="quick")
    assert probe.cfg.model.hidden_size == 200
    tr = probe.trial(250, onset_ms=200, noise_std=0.05)  # one trial, no refit: what a slider's move costs
    assert len(tr.y) == probe.cfg.steps(probe.cfg.task.Nt_ms + probe.extra_ms)
    probe.figure(tr).savefig(tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 0


# -- the explorer in a real JupyterLab, driven by headless Chromium

import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import secrets  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import urllib.request  # noqa: E402
from pathlib import Path  # noqa: E402

from conftest import headless_chrome, wait_for  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
#: where the test leaves its screenshot of the explorer (the README's figures/explore.png: `make explore-figure`)
SCREENSHOT_ENV = "SYSA_EXPLORE_SCREENSHOT"
STATUS = re.compile(r"duration (\d+) ms, onset \d+ ms: plateau (-?[\d.]+)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path, smoke_train):
    """JupyterLab on loopback (a free port, a token), its root a temporary folder holding explore.ipynb
    and a trained smoke model (with its metadata) in seed_1/, the notebook's `checkpoint` parameter set
    to it as a user would edit it (SYSA_EXPLORE_CHECKPOINT names another model's checkpoint)."""
    nb = json.loads((REPO / "notebooks" / "explore.ipynb").read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    ck = Path(os.environ.get("SYSA_EXPLORE_CHECKPOINT") or smoke_train / "sys_A1_state.pth")
    root = tmp_path / "root"
    (root / "seed").mkdir(parents=True)
    for f in ck.parent.glob(ck.name.replace("_state.pth", "") + "_*"):  # the checkpoint and its metadata
        shutil.copy(f, root / "seed" / f.name)
    rel = f"seed/{ck.name}"
    cell["source"] = ["".join(cell["source"]).replace('checkpoint: str = ""', f"checkpoint: str = {rel!r}")]
    (root / "explore.ipynb").write_text(json.dumps(nb))
    # no announcements pop-up over the notebook (a fresh JupyterLab asks whether to fetch news)
    (tmp_path / "config" / "labconfig").mkdir(parents=True)
    (tmp_path / "config" / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / "config"), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               MPLBACKEND="module://matplotlib_inline.backend_inline")
    proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
                             f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
                             f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
                             f"--LabApp.user_settings_dir={tmp_path / 'settings'}",
                             f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}", "--LabApp.expose_app_in_browser=True",
                             "--LabApp.news_url=None",
                             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                             "--LabApp.extension_manager=readonly"] + (["--allow-root"] if os.geteuid() == 0 else []),
                            cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "lab.log", "w"))
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.poll() is None, (tmp_path / "lab.log").read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    try:
        wait_for(up, timeout=120, what="JupyterLab to answer")
        yield url, token, root
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_the_explorer_runs_in_jupyterlab_and_follows_its_duration_slider(lab, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    url, token, root = lab
    drv = headless_chrome("--window-size=1280,1500")
    try:
        wait = WebDriverWait(drv, 180)
        drv.get(f"{url}/lab/tree/explore.ipynb?token={token}")
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, ".jp-NotebookPanel .jp-Notebook")))
        idle = ("const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
                "const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;"
                "return !!k && k.status === 'idle';")
        wait.until(lambda d: d.execute_script(idle))
        drv.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells');")

        def status(d):
            els = d.find_elements(By.CSS_SELECTOR, ".sysa-explore-status")
            m = STATUS.search(els[0].text) if els else None
            return m and (int(m.group(1)), float(m.group(2)))

        first = wait.until(status)
        assert first[0] == 150
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, ".jp-OutputArea-output img")))
        handle = wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, ".widget-slider .noUi-handle")))
        ActionChains(drv).drag_and_drop_by_offset(handle, 30, 0).perform()
        moved = wait.until(lambda d: (s := status(d)) and s[0] != first[0] and s)
        assert moved[0] > first[0] and moved[1] != first[1]  # a longer pulse, another plateau
        shot = os.environ.get(SCREENSHOT_ENV)
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, ".jp-OutputArea-output img")))
        panel = drv.find_element(By.CSS_SELECTOR, ".jp-NotebookPanel")
        panel.screenshot(str(Path(shot) if shot else tmp_path / "explore.png"))
    finally:
        drv.quit()
