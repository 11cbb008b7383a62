"""The original study's published facts, carried as data with their source (`source.json`): its
20-row result table and where its trained files are published (repository, pinned commit, paths,
sha256). The trained files themselves are not in sysa: `sysa reproduce` fetches them."""
from __future__ import annotations

import csv
import json
from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
TABLE = HERE / "published_seeds_1-20.csv"
#: the published table's columns, in its order
COLUMNS = ("precision", "weight_correlation", "I_participation_ratio", "w_participation_ratio")


@lru_cache(maxsize=1)
def source() -> dict:
    """Where the original's table and files are published (source.json)."""
    return json.loads((HERE / "source.json").read_text())


@lru_cache(maxsize=1)
def published_table() -> dict[int, dict[str, float]]:
    """{seed: {column: value}} of the original's published result table (seeds 1-20)."""
    with open(TABLE, newline="") as fh:
        return {int(r["seed"]): {c: float(r[c]) for c in COLUMNS} for r in csv.DictReader(fh)}
