"""Population of seeds: the table of per-seed metrics read from a run folder (never retrains)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from .. import files
from ..errors import UserError
from .metrics import IDENTITY_KEYS

COLUMNS = ["seed", "precision", "precision_untrained", "weight_correlation", "pr_input_l1", "pr_input_l2",
           "pr_output_l1", "pr_output_l2", "dim_spontaneous", "dim_memory"]

#: the measures the population report sets against precision, with their labels
MEASURES = {
    "weight_correlation": "I–w cosine",
    "output_drift_cosine": "cos(w, w_init)",
    "pr_input_l1": "PR of I (l1)",
    "pr_output_l1": "PR of w (l1)",
    "input_topk90_fraction": "|I|² share in top PCs (90 %)",
    "output_topk90_fraction": "|w|² share in top PCs (90 %)",
    "input_var_alignment": "I variance alignment",
    "output_var_alignment": "w variance alignment",
    "dim_spontaneous": "spontaneous dimensionality",
    "dim_memory": "memory dimensionality",
    "lyapunov_max_per_s": "largest Lyapunov exponent (1/s)",
    "plateau_drift_per_s": "plateau drift (1/s)",
}


def measures_in(df: pd.DataFrame) -> dict:
    """The MEASURES present in df with at least two distinct values."""
    return {k: v for k, v in MEASURES.items() if k in df and df[k].nunique(dropna=True) > 1}


def metrics_files(run_dir: Path) -> list[Path]:
    return sorted(Path(run_dir).glob("seed_*/metrics.json"), key=lambda p: int(p.parent.name.split("_")[1]))


def table(run_dir: Path, seeds=None) -> pd.DataFrame:
    """One row per seed with a metrics.json in run_dir/seed_<s>/ (optionally only `seeds`)."""
    rows = []
    for f in metrics_files(run_dir):
        rec = files.record_path(f.parent)  # in a pipeline run, only seeds whose chain completed
        if rec.exists() and files.read_json(rec).get("status") != "complete":
            continue
        m = files.read_json(f)
        if seeds is not None and m.get("seed") not in seeds:
            continue
        row = {k: m.get(k) for k in COLUMNS}
        for d, v in (m.get("precision_by_duration") or {}).items():
            row[f"precision_{d}ms"] = v
        # every other scalar metric (alignment, confound, dynamics, ...) after the main columns
        row.update({k: v for k, v in m.items() if k not in row and k not in IDENTITY_KEYS
                    and (isinstance(v, (int, float)) or v is None) and not isinstance(v, bool)})
        rows.append(row)
    if not rows:
        raise UserError(f"{run_dir}: no seed_*/metrics.json found; run the per-seed notebooks "
                        f"(or `sysa run`) first")
    return pd.DataFrame(rows).sort_values("seed").reset_index(drop=True)


def combine(tables: dict) -> pd.DataFrame:
    """Stack the tables of several ensembles with an `ensemble` column."""
    return pd.concat([t.assign(ensemble=name) for name, t in tables.items()], ignore_index=True)


def write_csv(df: pd.DataFrame, path: Path) -> None:
    files.write_text(path, df.to_csv(index=False))


def inputs_digest(run_dir: Path, seeds) -> str:
    """A fingerprint of the metrics a population report was made from."""
    h = hashlib.sha256()
    for s in sorted(seeds):
        f = files.metrics_path(files.seed_dir(run_dir, s))
        h.update(str(s).encode())
        h.update(f.read_bytes() if f.exists() else b"-")
    return h.hexdigest()[:16]
