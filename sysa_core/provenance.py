"""What produced a result: package version, git commit, library versions."""
from __future__ import annotations

import functools
import platform
import subprocess
from pathlib import Path

import torch

from . import __version__


@functools.lru_cache(maxsize=1)
def code_version() -> dict:
    root = Path(__file__).resolve().parent.parent
    commit, dirty = None, None
    if (root / ".git").exists():
        try:
            commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                    text=True, timeout=10).stdout.strip() or None
            status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                    capture_output=True, text=True, timeout=10).stdout
            dirty = bool(status.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    return {"sysa": __version__, "git_commit": commit, "git_dirty": dirty, "torch": torch.__version__,
            "python": platform.python_version()}
