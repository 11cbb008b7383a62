"""environment.yml installs the same packages as the package metadata."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

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
