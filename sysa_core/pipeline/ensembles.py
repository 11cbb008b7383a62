"""The ensembles of a run: main, in the run folder, and its control (I and w drawn independently),
in control/; which notebooks make a seed's chain."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import files
from ..config import Config, apply_overrides, validate

SEED_NOTEBOOKS = ("train", "inspect", "pca")


#: overrides that turn an ensemble into its control: I and w drawn independently (README, Definitions 6)
CONTROL_OVERRIDES = ["model.init=independent"]


@dataclass
class Ensemble:
    """A set of seeds trained with one configuration, in its own folder of the run."""

    label: str  # "main" or "control"
    folder: Path
    cfg: Config
    overrides: list

    def seed_dir(self, seed: int) -> Path:
        return files.seed_dir(self.folder, seed)

    def rel(self, seed: int, name: str) -> str:
        """Path of a seed's file relative to the run folder (for links in the index)."""
        prefix = "" if self.label == "main" else f"{self.label}/"
        return f"{prefix}seed_{seed}/{name}"


def ensembles(cfg: Config, out: Path, overrides, control: bool) -> list[Ensemble]:
    """The ensembles of a run: main in `out`, and its control in out/control when asked for."""
    ens = [Ensemble("main", Path(out), cfg, list(overrides))]
    if control:
        ens.append(Ensemble("control", Path(out) / "control", validate(apply_overrides(cfg, CONTROL_OVERRIDES)),
                            list(overrides) + CONTROL_OVERRIDES))
    return ens


def ensembles_of(run_dir: Path, manifest: dict) -> list[Ensemble]:
    """The ensembles a run folder's manifest describes."""
    cfg = Config.from_manifest(manifest, source=str(Path(run_dir) / files.RUN_MARKER))
    return ensembles(cfg, run_dir, manifest.get("overrides", []), bool(manifest.get("control")))
