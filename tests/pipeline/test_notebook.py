"""The notebooks and sysa_core.pipeline.notebook: committed without outputs, one tagged parameters
cell of annotated literals with help, an unknown or mistyped papermill parameter stops before any
work with a one-line reason, and any checkpoint file can be analysed (the original's published
ones included)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest
from conftest import cli_env, copy_run
from papermill.exceptions import PapermillExecutionError

from sysa_core import files
from sysa_core.pipeline.notebook import PARAMETERS

NB_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NAMES = ("train", "inspect", "pca", "population")


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_has_no_outputs(name):
    nb = nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: cell has outputs"


@pytest.mark.parametrize("name", NAMES)
def test_parameters_cell_declares_annotated_literals_with_help(name):
    nb = nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    params = papermill.inspect_notebook(str(NB_DIR / f"{name}.ipynb"))
    assert set(params) == set(PARAMETERS[name])
    for p in params.values():
        assert p["inferred_type_name"] != "None" and p["help"].startswith("help:"), p


def test_unknown_papermill_parameter_is_refused_before_any_work(tmp_path):
    with pytest.raises(PapermillExecutionError) as info:
        papermill.execute_notebook(str(NB_DIR / "train.ipynb"), str(tmp_path / "out.ipynb"),
                                   parameters={"profile": "smoke", "sed": 3, "run_dir": str(tmp_path / "s")},
                                   progress_bar=False, kernel_name="python3")
    assert info.value.ename == "UserError"
    assert "unknown parameter 'sed'" in info.value.evalue
    assert not (tmp_path / "s").exists()  # nothing trained or written


def test_wrongly_typed_papermill_parameter_is_refused(tmp_path):
    with pytest.raises(PapermillExecutionError) as info:
        papermill.execute_notebook(str(NB_DIR / "inspect.ipynb"), str(tmp_path / "out.ipynb"),
                                   parameters={"profile": "smoke", "overrides": "epochs=3",
                                               "run_dir": str(tmp_path / "s")},
                                   progress_bar=False, kernel_name="python3")
    assert info.value.ename == "UserError" and "'overrides' must be list" in info.value.evalue


def _cell_text(nb_path: Path) -> str:
    nb = nbformat.read(nb_path, as_version=4)
    out = []
    for c in nb.cells:
        for o in c.get("outputs", []):
            out.append(o.get("text", "") + json.dumps(o.get("data", {})))
    return "\n".join(out)


def test_the_original_checkpoint_in_the_inspect_and_pca_notebooks(reference_dir, reference_full, tmp_path):
    """`papermill notebooks/inspect.ipynb out.ipynb -p checkpoint ../shared/reference/sys_A1_state.pth`
    (no sysa metadata: the paper profile) and the same for pca run without error, write their
    analysis to a folder of their own, and show the precision `sysa evaluate` gives for the file."""
    ck = reference_dir / "sys_A1_state.pth"
    out = tmp_path / "analysis"
    for name in ("inspect", "pca"):
        papermill.execute_notebook(str(NB_DIR / f"{name}.ipynb"), str(tmp_path / f"{name}.ipynb"),
                                   parameters={"checkpoint": str(ck), "run_dir": str(out)},
                                   progress_bar=False, kernel_name="python3", cwd=str(tmp_path))
    m = json.loads(files.metrics_path(out).read_text())
    assert m == reference_full  # the same numbers as `sysa evaluate` (same bytes, configuration and code)
    assert m["profile"] == "paper" and m["checkpoint_sha256"] == files.sha256(ck)
    shown = _cell_text(tmp_path / "inspect.ipynb")
    assert f"{reference_full['precision']:.4g}" in shown
    assert "sys_A1_state.pth" in _cell_text(tmp_path / "pca.ipynb")
    assert not list(reference_dir.glob("*.json")) and not list(reference_dir.glob("*.npz"))  # nothing written there


def test_default_folder_for_a_checkpoint_is_its_own(tmp_path):
    from sysa_core.pipeline import notebook as nb

    ck = tmp_path / "sys_A3.pth"
    import torch

    from sysa_core import config, model
    torch.save(model.init_weights(config.resolve("smoke").model, 3), ck)
    ctx = nb.setup("inspect", {"profile": "smoke", "seed": 1, "overrides": [], "run_dir": "", "checkpoint": str(ck)})
    assert ctx.seed == 3 and ctx.checkpoint == ck
    assert ctx.run_dir == files.default_analysis_dir(ck, files.sha256(ck))
    assert ctx.run_dir.parent.name == "analyses" and ctx.run_dir.name.startswith("sys_A3-")


def test_papermills_report_of_a_bad_parameter_ends_with_one_line_and_no_sysa_frames(tmp_path):
    """`papermill train.ipynb out.ipynb -p sed 3`: papermill's own traceback, then the one line."""
    res = subprocess.run([sys.executable, "-m", "papermill", str(NB_DIR / "train.ipynb"), str(tmp_path / "out.ipynb"),
                          "-p", "sed", "3", "-p", "profile", "smoke", "-p", "run_dir", str(tmp_path / "s")],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path, env=cli_env())
    assert res.returncode == 1
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert lines[-1] == "UserError: train.ipynb: unknown parameter 'sed' (known: profile, seed, overrides, run_dir)"
    assert "sysa_core" not in res.stderr and res.stderr.count("Traceback") <= 1, res.stderr
    assert not (tmp_path / "s").exists()


def test_the_population_report_of_one_seed_says_what_it_cannot_test(smoke_run, tmp_path):
    """With one seed in each ensemble there is nothing to correlate or compare: the population
    notebook runs to its end and says so instead of drawing empty panels."""
    run = tmp_path / "run"
    shutil.copytree(smoke_run, run, ignore=shutil.ignore_patterns("seed_2", ".sysa.lock"))
    out = tmp_path / "population.ipynb"
    papermill.execute_notebook(str(NB_DIR / "population.ipynb"), str(out), progress_bar=False, kernel_name="python3",
                               parameters={"profile": "smoke", "run_dir": str(run), "control_dir": str(run / "control")})
    text = "\n".join("".join(o.get("data", {}).get("text/markdown", "")) for c in nbformat.read(out, as_version=4).cells
                     if c.cell_type == "code" for o in c.outputs)
    assert "1 seed of the seed-compatible ensemble" in text
    assert "No test compares the ensembles at 1 and 1 seeds" in text
    assert text.count("the main ensemble has 1 seed, and a rank correlation needs at least 3") == 3
    assert "claimed" not in text and "p = nan" not in text


def test_the_ensembles_can_be_pooled_with_the_ensemble_as_a_covariate(smoke_run, tmp_path):
    run = copy_run(smoke_run, tmp_path / "run")  # the notebook writes population.csv into its run folder
    params = {"profile": "smoke", "run_dir": str(run), "control_dir": str(run / "control"), "pool_ensembles": True}
    out = tmp_path / "population.ipynb"
    papermill.execute_notebook(str(NB_DIR / "population.ipynb"), str(out), parameters=params, progress_bar=False,
                               kernel_name="python3", cwd=str(tmp_path))
    cell = next(c for c in nbformat.read(out, as_version=4).cells if "nb.statistics_section" in c.source)
    html = "".join(o.get("data", {}).get("text/html", "") for o in cell.outputs)
    assert "Main ensemble, n = 2" in html and "Both ensembles pooled, n = 4" in html and "partial Spearman" in html
    with pytest.raises(PapermillExecutionError) as info:
        papermill.execute_notebook(str(NB_DIR / "population.ipynb"), str(tmp_path / "no.ipynb"), progress_bar=False,
                                   parameters={**params, "control_dir": ""}, kernel_name="python3", cwd=str(tmp_path))
    assert info.value.ename == "UserError" and "pool_ensembles needs control_dir" in info.value.evalue
