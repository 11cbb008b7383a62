"""`sysa run` end to end on the smoke profile: real papermill executions of the real notebooks,
HTML reports, index, skipping of finished seeds, bad input before any work."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import nbformat
import pytest

SEEDS = (1, 2)
NOTEBOOKS = ("train", "inspect", "pca")


def sysa(*args, cwd=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "sysa_core", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke_run")
    res = sysa("run", "--profile", "smoke", "--seeds", "1-2", "--out", str(out), "--quiet")
    assert res.returncode == 0, res.stderr
    return out


def test_every_seed_has_executed_notebooks_without_errors_and_their_html(smoke_run):
    for s in SEEDS:
        d = smoke_run / f"seed_{s}"
        for name in NOTEBOOKS:
            nb = nbformat.read(d / f"{name}.ipynb", as_version=4)
            errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                      if o.output_type == "error"]
            assert not errors, f"{d / name}.ipynb has error outputs"
            assert any(c.cell_type == "code" and c.get("execution_count") for c in nb.cells)
            assert (d / f"{name}.html").stat().st_size > 10_000
        for f in (f"sys_A{s}_state.pth", f"sys_A{s}.pth", f"sys_A{s}_train.json", "metrics.json",
                  f"sys_A{s}_err.png", f"sys_A{s}_param.png"):
            assert (d / f).exists(), f
    for f in ("population.ipynb", "population.html", "population.csv", "index.html", "config.json"):
        assert (smoke_run / f).exists(), f


def test_written_files_get_the_usual_permissions_not_mkstemps_0600(smoke_run):
    import os

    umask = os.umask(0)
    os.umask(umask)
    for f in (smoke_run / "index.html", smoke_run / "seed_1" / "sys_A1_state.pth", smoke_run / "seed_1" / "metrics.json"):
        assert f.stat().st_mode & 0o777 == 0o666 & ~umask, f


def test_metrics_json_and_csv_agree_and_training_helped(smoke_run):
    import pandas as pd

    df = pd.read_csv(smoke_run / "population.csv")
    assert sorted(df["seed"]) == list(SEEDS)
    for s in SEEDS:
        m = json.loads((smoke_run / f"seed_{s}" / "metrics.json").read_text())
        row = df[df.seed == s].iloc[0]
        assert row["precision"] == pytest.approx(m["precision"], rel=1e-12)
        assert m["precision_untrained"] / m["precision"] >= 10
        assert set(m["precision_by_duration"]) == {"30", "60", "100"}


def test_every_figure_in_every_html_is_an_embedded_data_uri(smoke_run):
    pages = list(smoke_run.rglob("*.html"))
    assert len(pages) == 3 * len(SEEDS) + 2
    for page in pages:
        text = page.read_text()
        srcs = re.findall(r"<img[^>]*\ssrc=\"([^\"]+)\"", text)
        assert srcs, f"{page} has no figure"
        bad = [s[:60] for s in srcs if not s.startswith("data:image/")]
        assert not bad, f"{page}: figures not embedded: {bad}"


def test_index_links_every_report_and_shows_untrained_precision(smoke_run):
    html = (smoke_run / "index.html").read_text()
    for s in SEEDS:
        for name in NOTEBOOKS:
            assert f'href="seed_{s}/{name}.html"' in html
    assert 'href="population.html"' in html and "untrained" in html


def test_rerun_does_no_training_and_rewrites_only_the_index(smoke_run):
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in smoke_run.rglob("*") if p.is_file()}
    res = sysa("run", "--profile", "smoke", "--seeds", "1-2", "--out", str(smoke_run))
    assert res.returncode == 0, res.stderr
    assert "train seed" not in res.stderr  # no training progress bar: nothing trained
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in smoke_run.rglob("*") if p.is_file()}
    assert set(after) == set(before)
    changed = sorted(p.name for p in after if after[p] != before[p])
    assert changed == ["index.html"]


@pytest.mark.parametrize("args, needle", [
    (["--profile", "fast"], "unknown profile 'fast'"),
    (["--set", "hidden=3"], "unknown key 'hidden'"),
    (["--seeds", "5-2"], "--seeds"),
    (["--seeds", "one"], "--seeds"),
    (["--set", "train.epochs=zero"], "train.epochs"),
    (["--set", "task.cost_onset_ms=100"], "cost_onset_ms"),
    (["--set", "dt_ms=200"], "dt_ms"),
])
def test_bad_run_arguments_fail_in_one_line_before_any_work(tmp_path, args, needle):
    out = tmp_path / "out"
    res = sysa("run", "--profile", "smoke", "--out", str(out), *args) if args[0] != "--profile" else \
        sysa("run", "--out", str(out), *args)
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert needle in lines[0]
    assert not out.exists()  # nothing was started


def test_output_folder_that_cannot_be_created_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = sysa("run", "--profile", "smoke", "--seeds", "1", "--out", str(blocker / "sub"))
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1
    assert str(blocker / "sub") in res.stderr
