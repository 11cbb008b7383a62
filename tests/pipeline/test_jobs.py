"""sysa_core.pipeline.jobs: the parameters a seed's chain passes to each notebook are the ones the
notebook declares, and the imports that warm a kernel are the package's."""
from __future__ import annotations

import errno
import importlib

import nbformat
import papermill
import pytest

from sysa_core import config, files
from sysa_core.pipeline import jobs
from sysa_core.pipeline.ensembles import SEED_NOTEBOOKS, ensembles
from sysa_core.pipeline.notebook import PARAMETERS


def test_each_notebook_gets_exactly_the_parameters_it_declares(tmp_path):
    for ens in ensembles(config.resolve("smoke"), tmp_path, ["lr=0.5"], True):
        for name in SEED_NOTEBOOKS:
            p = jobs.notebook_params(ens, 3, name)
            declared = papermill.inspect_notebook(str(files.notebooks_dir() / f"{name}.ipynb"))
            assert set(p) <= set(declared) and set(p) <= set(PARAMETERS[name]), name
            assert p["seed"] == 3 and p["overrides"] == ens.overrides
            # paths relative to the seed's folder, where the notebook runs: the train notebook trains
            # there, the analyses read the checkpoint beside them and write beside it
            assert p["run_dir"] == ("." if name == "train" else "")
            assert name == "train" or p["checkpoint"] == "sys_A3_state.pth"


def test_the_warm_imports_name_modules_of_the_package():
    for name in jobs.WARM_IMPORTS.removeprefix("import ").split(", "):
        assert importlib.import_module(name).__name__ == name


def test_a_notebook_error_outside_the_kernel_stops_nothing_else(tmp_path, monkeypatch):
    """An OSError while the report is written (a full disk, say) is that notebook's failure: it is
    raised, and the process's other notebooks still run (only a signal or Ctrl-C stops them)."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    src = tmp_path / "tiny.ipynb"
    nbformat.write(nb, str(src))

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(jobs.report, "notebook_to_html", full_disk)
    with pytest.raises(OSError):
        jobs.execute(src, tmp_path / "out.ipynb", {}, tmp_path)
    assert not jobs.STOP.is_set()
    monkeypatch.undo()
    seconds, error = jobs.execute(src, tmp_path / "again.ipynb", {}, tmp_path)
    assert error is None and (tmp_path / "again.html").exists()
