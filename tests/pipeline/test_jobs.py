"""sysa_core.pipeline.jobs: the parameters a seed's chain passes to each notebook are the ones the
notebook declares, the imports that warm a kernel are the package's, and a wait on a kernel ends when
the kernel is killed."""
from __future__ import annotations

import errno
import importlib
import os
import signal
import threading
import time

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


def test_a_new_kernel_freezes_its_imports_and_a_reset_still_frees_what_a_notebook_left_in_cycles(tmp_path):
    """A new kernel imports what the notebooks import and exempts it from the garbage collector
    (gc.freeze), which makes the namespace reset between notebooks cheap; what a notebook leaves,
    even in a reference cycle, is still freed by the reset."""
    runner = jobs.NotebookRunner()
    try:
        runner._kernel()
        runner.run_code("import gc, sys, weakref\n"
                        "sys._sysa_frozen = gc.get_freeze_count()\n"
                        "class Node: pass\n"
                        "node = Node(); node.me = node\n"
                        "sys._sysa_probe = weakref.ref(node)", timeout=60)
        runner._reset(tmp_path)
        runner.run_code("import sys\n"
                        "assert 'sysa_core.pipeline.population_plots' in sys.modules\n"
                        "assert sys._sysa_frozen > 10_000, sys._sysa_frozen\n"
                        "assert 'node' not in globals() and sys._sysa_probe() is None", timeout=60)
    finally:
        runner.close()


def test_a_kernel_still_importing_at_the_warm_timeout_is_shut_down_and_named(monkeypatch):
    """A new kernel whose imports outlast WARM_TIMEOUT_S is not handed to a notebook (whose reset
    would wait behind the imports): it is shut down, with a one-line reason, and the runner starts a
    new one when used again."""
    monkeypatch.setattr(jobs, "WARM_TIMEOUT_S", 0.05)
    runner = jobs.NotebookRunner()
    try:
        with pytest.raises(TimeoutError, match="the kernel's imports took over 0.05 s"):
            runner._kernel()
        assert runner.km is None and runner.kc is None
    finally:
        runner.close()


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


def test_notebooks_run_in_their_folder_without_moving_the_process(tmp_path, monkeypatch):
    """Each notebook's code runs in its own folder, while this process's working folder, which the
    notebooks run at once in other threads share, never moves (a chdir there, undone by each thread
    in its own order, would leave the process in one of the folders)."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import os; open('here.txt', 'w').write(os.getcwd())")])
    src = tmp_path / "where.ipynb"
    nbformat.write(nb, str(src))
    moves = []
    real_chdir = os.chdir

    def chdir(path):  # papermill looks it up on os: its file handler "moves" to the folder it started in
        moves.append(str(path))
        real_chdir(path)
    monkeypatch.setattr(os, "chdir", chdir)
    before = os.getcwd()
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        seconds, error = jobs.execute(src, tmp_path / name / "where.ipynb", {}, tmp_path / name)
        assert error is None, error
        assert (tmp_path / name / "here.txt").read_text() == str(tmp_path / name)
    assert set(moves) <= {before} and os.getcwd() == before


def _in_thread(fn):
    """Run fn in a thread; returns (thread, box), box["error"] what fn raised."""
    box = {}

    def target():
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - recorded for the test
            box["error"] = exc
    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t, box


@pytest.mark.parametrize("stopped", [True, False])
def test_a_killed_kernel_ends_the_wait_for_its_answer_at_once(tmp_path, monkeypatch, stopped):
    """A kernel killed while a notebook's runner waits for it to reset its namespace (a SIGTERM's
    `stop` kills every kernel; or the kernel dies by itself) ends that wait at once, with the reason,
    instead of after the reset's timeout: a stopped run exits promptly."""
    runner = jobs.NotebookRunner()
    monkeypatch.setattr(jobs, "_runners", [runner])  # stop() kills this test's kernel alone
    try:
        runner._kernel()
        pid = runner.km.provisioner.pid
        # the kernel is busy when the reset is sent, and is killed while the reset waits for it
        runner.kc.execute("import time; time.sleep(30)")
        t, box = _in_thread(lambda: runner._reset(tmp_path))
        time.sleep(1.0)
        assert t.is_alive()  # waiting for the busy kernel
        if stopped:
            jobs.stop()
        else:
            os.kill(pid, signal.SIGKILL)
        t.join(jobs.RESET_TIMEOUT_S / 3)  # a third of the timeout the wait would otherwise run to
        assert not t.is_alive(), "still waiting for a killed kernel"
        assert isinstance(box.get("error"), RuntimeError)
        assert str(box["error"]) == (jobs.STOPPED if stopped else "the kernel died")
    finally:
        jobs.STOP.clear()
        runner.close()


def test_a_kernel_that_dies_while_starting_is_not_waited_for(monkeypatch):
    """A kernel that dies before it first answers ends the runner's wait for it with the heartbeat's
    error, not after the start-up timeout."""
    class DyingKernel(jobs.AsyncKernelManager):
        async def start_kernel(self, **kw):
            await super().start_kernel(**kw)
            os.kill(self.provisioner.pid, signal.SIGKILL)

    monkeypatch.setattr(jobs, "AsyncKernelManager", DyingKernel)
    runner = jobs.NotebookRunner()
    try:
        t, box = _in_thread(runner._kernel)
        t.join(jobs.KERNEL_START_S / 3)
        assert not t.is_alive(), "still waiting for a dead kernel"
        assert isinstance(box.get("error"), RuntimeError)
    finally:
        runner.close()


def test_code_that_fails_in_the_kernel_is_named(tmp_path):
    runner = jobs.NotebookRunner()
    try:
        runner._kernel()
        with pytest.raises(RuntimeError, match="ZeroDivisionError"):
            runner.run_code("1 / 0", timeout=60)
        runner._reset(tmp_path)  # the kernel answers the next request as before
        runner.run_code("import os; assert os.getcwd() == " + repr(str(tmp_path)), timeout=60)
    finally:
        runner.close()
