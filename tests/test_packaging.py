"""environment.yml installs the same packages as the package metadata; the Makefile installs them."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[; ]", req.strip(), maxsplit=1)[0].lower()


def test_environment_yml_matches_pyproject_dependencies():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = next(i for i, l in enumerate(lines) if l.strip() == "- pip:")
    env = [l.strip()[2:] for l in lines[start + 1:] if l.strip().startswith("- ")]
    assert sorted(env) == sorted(deps)  # same names and the same pins
    assert {_name(d) for d in deps} >= {"torch", "numpy", "matplotlib", "jupyterlab", "papermill", "nbconvert",
                                         "seaborn"}


def test_the_declared_python_is_the_one_the_code_and_tests_need():
    """tomllib (this file) and the typing syntax of the package need Python 3.11; the conda
    environment pins the same."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert declared == ">=3.11"
    assert "  - python=3.11" in (ROOT / "environment.yml").read_text().splitlines()


def test_every_subpackage_is_packaged():
    from setuptools import find_packages

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    found = set(find_packages(str(ROOT), include=cfg["include"]))
    on_disk = {str(p.parent.relative_to(ROOT)).replace("/", ".") for p in (ROOT / "sysa_core").rglob("__init__.py")}
    assert found == on_disk and {"sysa_core.analysis", "sysa_core.pipeline"} <= found


FAKE_COMMAND = """#!/bin/sh
# records its arguments, does nothing else
echo "$*" >> "$MAKE_LOG"
"""


def _installs(tmp_path, *targets, stamps=()) -> list[str]:
    """The pip installs of sysa that a real `make TARGETS` runs for a venv at tmp_path/venv holding the
    given stamp files (made now, so newer than pyproject.toml), with python3, the venv's python and
    its sysa (and chromium, so that nothing is fetched) replaced by a script that only records its
    arguments."""
    venv, bin_ = tmp_path / "venv", tmp_path / "bin"
    log = tmp_path / "make.log"
    for d in (venv / "bin", bin_):
        d.mkdir(parents=True, exist_ok=True)
    fakes = [bin_ / "python3", bin_ / "chromium", bin_ / "chromedriver", venv / "bin" / "python", venv / "bin" / "sysa"]
    for exe in fakes:
        exe.write_text(FAKE_COMMAND)
        exe.chmod(0o755)
    for s in stamps:
        (venv / s).touch()
    log.write_text("")
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}  # not the outer make's
    env.update(PATH=f"{bin_}{os.pathsep}{os.environ['PATH']}", MAKE_LOG=str(log))
    subprocess.run(["make", "-s", "-C", str(ROOT), f"VENV={venv}", *targets], env=env, check=True,
                   capture_output=True, text=True)
    return re.findall(r"pip install -q --no-compile -e (\S+)", log.read_text())


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_installs_the_test_dependencies_only_for_the_tests_and_once(tmp_path):
    assert _installs(tmp_path / "a", "quick") == ["."]
    assert _installs(tmp_path / "b", "test") == [".[test]"]
    # a target that needs both: one install, the tests', whatever -j says
    for jobs in ("-j1", "-j2"):
        assert _installs(tmp_path / jobs, jobs, "explore-figure") == [".[test]"]
    # after `make quick`, `make test` adds the test dependencies; after `make test`, quick's installs nothing
    assert _installs(tmp_path / "c", "test", stamps=[".installed"]) == [".[test]"]
    assert _installs(tmp_path / "d", "setup", stamps=[".installed", ".installed-test"]) == []
