"""`sysa reproduce`: fetch the original's published checkpoints from their pinned commit (pooch:
sha256 checked, cached), evaluate them with sysa, and print sysa's numbers beside the published
ones."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from .. import config, files, original
from ..analysis import metrics
from ..errors import UserError


@dataclass
class Row:
    name: str
    seed: int
    published: dict
    sysa: dict

    def relative_error(self, key: str) -> float:
        return abs(self.sysa[key] - self.published[key]) / abs(self.published[key])


#: the published table's columns that sysa's evaluation reproduces, and sysa's name for each
REPRODUCED = {"precision": "precision", "weight_correlation": "weight_correlation"}


def default_cache() -> Path:
    """Where fetched files are kept between runs: $SYSA_CACHE, else pooch's cache folder for sysa."""
    import os

    import pooch

    return Path(os.environ.get("SYSA_CACHE") or pooch.os_cache("sysa")) / "original"


def fetch(names: list[str], base_url: str | None = None, cache: Path | None = None, progress: bool = True) -> dict:
    """{name: local path} of the original's published files `names` (source.json), downloaded from
    base_url + their path in the repository (default: the pinned commit's raw files) into `cache`
    unless a file with the right sha256 is there already. A file whose sha256 differs is refused."""
    import pooch

    src = original.source()
    unknown = [n for n in names if n not in src["files"]]
    if unknown:
        raise UserError(f"--files: unknown {', '.join(unknown)} (known: {', '.join(src['files'])})")
    base = (base_url or src["raw_base_url"]).rstrip("/") + "/"
    cache = Path(cache or default_cache())
    pooch.get_logger().setLevel("INFO" if progress else "WARNING")
    out = {}
    for n in names:
        f = src["files"][n]
        try:
            out[n] = Path(pooch.retrieve(base + f["path"], known_hash=f"sha256:{f['sha256']}", fname=n,
                                         path=cache, progressbar=progress))
        except ValueError:  # pooch: the hash does not match (it deletes the download)
            raise UserError(f"{base + f['path']}: its sha256 hash is not the published file's ({f['sha256'][:12]}...); "
                            f"nothing was kept") from None
        except Exception as exc:  # noqa: BLE001 - any network failure is one line
            raise UserError(f"{base + f['path']}: could not be fetched ({exc.__class__.__name__}: "
                            f"{str(exc).splitlines()[0][:120] if str(exc) else ''}); check the connection, or "
                            f"pass --base-url") from None
    return out


def evaluate(paths: dict) -> list[Row]:
    """sysa's core evaluation (the original's metrics, paper configuration) of each fetched file."""
    table, src = original.published_table(), original.source()
    rows = []
    for name, path in paths.items():
        seed = src["files"][name]["seed"]
        cfg = config.resolve("paper", seed=seed)
        ck = files.load_checkpoint(path, hidden_size=cfg.model.hidden_size)
        m = metrics.analyse(cfg, ck["state_dict"], core_only=True, checkpoint_sha256=files.sha256(path),
                            epoch=ck["epoch"], training=ck["extra"]).metrics
        rows.append(Row(name, seed, table[seed], {k: m[v] for k, v in REPRODUCED.items()}))
    return rows


def table_text(rows: list[Row]) -> str:
    """The published and sysa's values side by side, with the relative difference."""
    lines = [f"{'file':18s} {'seed':>4s}  {'measure':18s} {'published':>14s} {'sysa':>14s} {'rel. diff':>9s}"]
    for r in rows:
        for k in REPRODUCED:
            lines.append(f"{r.name:18s} {r.seed:4d}  {k:18s} {r.published[k]:14.9g} {r.sysa[k]:14.9g} "
                         f"{r.relative_error(k):9.1e}")
    return "\n".join(lines)


def run(names: list[str], base_url: str | None, cache: Path | None, progress: bool) -> list[Row]:
    paths = fetch(names, base_url, cache, progress)
    rows = evaluate(paths)
    src = original.source()
    print(f"The original's published files ({src['repository']} at {src['commit'][:12]}), sha256 checked, "
          f"evaluated by sysa (paper configuration):", file=sys.stderr)
    print(table_text(rows))
    return rows
