"""Where outputs go by default: `data/runs/<profile>` under the repository (or the current
folder when the package is installed elsewhere)."""
from __future__ import annotations

from pathlib import Path


def project_root() -> Path:
    here = Path(__file__).resolve().parent.parent
    if (here / "notebooks").is_dir() and (here / "sysa_core").is_dir():
        return here
    return Path.cwd()


def notebooks_dir() -> Path:
    return project_root() / "notebooks"


def default_run_dir(profile: str) -> Path:
    return project_root() / "data" / "runs" / profile


def seed_dir(run_dir: Path, seed: int) -> Path:
    return Path(run_dir) / f"seed_{seed}"
