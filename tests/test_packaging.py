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
