"""The notebooks in git: no outputs, one tagged parameters cell of annotated literals with help,
and an unknown papermill parameter stops before any work with a one-line reason."""
from __future__ import annotations

from pathlib import Path

import nbformat
import papermill
import pytest
from papermill.exceptions import PapermillExecutionError

from sysa_core.notebook import PARAMETERS

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
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
