"""What the pipeline keeps in a run's folders, and reads back: a model's analysis (metrics.json and
analysis.npz, recomputed only when the checkpoint, the configuration or the code changed, so a
second notebook reads what the first computed), the analysis of each network G (network-<key>.json
and .npz, once per G in the run folder), and the population's table of the seeds' metrics. The
analysis computes; this module alone writes and reads its results."""
from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .. import files
from ..analysis import census, dynamics, pca, regime
from ..analysis.metrics import IDENTITY_KEYS, ModelAnalysis, analyse
from ..analysis.network import NetworkAnalysis, analyse_network, network_key
from ..analysis.population import COLUMNS
from ..config import Config
from ..errors import UserError


# -- a model's analysis, in its folder ------------------------------------------------------------------

def cache_key(cfg: Config, checkpoint_sha256: str) -> str:
    """What the cached numbers depend on: the checkpoint's bytes, the whole configuration and the code."""
    blob = json.dumps({"checkpoint": checkpoint_sha256, "config": cfg.to_dict(), "code": files.code_version()},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_model(folder: Path, key: str) -> ModelAnalysis | None:
    """The analysis cached in `folder` under `key`, or None (absent, stale or unreadable)."""
    mpath, apath = files.metrics_path(folder), files.arrays_path(folder)
    if not (mpath.exists() and apath.exists()):
        return None
    try:
        with np.load(apath, allow_pickle=False) as z:
            if str(z["cache_key"]) != key:
                return None
            arrays = {k: z[k] for k in z.files if k != "cache_key"}
        metrics = json.loads(mpath.read_text())
    except (*files.NPZ_ERRORS, RecursionError):
        return None
    return ModelAnalysis(metrics, arrays)


def save_model(result: ModelAnalysis, folder: Path, key: str) -> None:
    """Write the arrays (analysis.npz, with the key) and then the metrics (metrics.json)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, cache_key=np.array(key), **result.arrays)
    files.write_bytes(files.arrays_path(folder), buf.getvalue())
    files.write_json(files.metrics_path(folder), result.metrics)


def load_or_analyse_model(cfg: Config, sd: dict, folder: Path, checkpoint_sha256: str, epoch: int | None = None,
                    training: dict | None = None, network_folder: Path | None = None) -> tuple[ModelAnalysis, bool]:
    """The analysis of the model in `folder`: read from its cache when the checkpoint, configuration
    and code are those it was computed from, else computed (analyse) and cached; the network's
    analysis is read from (or cached in) network_folder (load_or_analyse_network; default
    `folder`). Returns (analysis, computed: whether it was computed now)."""
    key = cache_key(cfg, checkpoint_sha256)
    got = load_model(folder, key)
    if got is not None:
        return got, False
    net = load_or_analyse_network(cfg, sd["G"], network_folder or folder)
    result = analyse(cfg, sd, checkpoint_sha256=checkpoint_sha256, epoch=epoch, training=training, network=net)
    save_model(result, folder, key)
    return result, True


# -- a network's analysis, in the run folder ----------------------------------------------------------------------

def _paths(folder: Path, key: str) -> tuple[Path, Path]:
    return Path(folder) / f"network-{key}.json", Path(folder) / f"network-{key}.npz"


def save_network(net: NetworkAnalysis, folder: Path) -> None:
    """network-<key>.npz (the PCs, the census, the Lyapunov exponent and the regime) and
    network-<key>.json (metrics)."""
    jpath, zpath = _paths(folder, net.key)
    ly, rg = net.lyapunov, net.regime
    buf = io.BytesIO()
    np.savez_compressed(
        buf, key=np.array(net.key), G_digest=np.array(net.G_digest),
        lyap_per_vector=ly.per_vector, lyap_blocks=ly.blocks,
        lyap_ms=np.array([ly.transient_ms, ly.window_ms, ly.decorrelation_ms]),
        regime_text=np.array([rg.kind, rg.why]),
        regime_numbers=np.array([np.nan if v is None else v for v in (rg.period_ms, rg.return_error, rg.lyapunov_per_s,
                                                                       rg.lyapunov_halfwidth_per_s)], dtype=float),
        spont_eigvals=net.spontaneous.eigvals, spont_eigvecs=net.spontaneous.eigvecs,
        spont64_eigvals=net.spontaneous_f64.eigvals, spont64_eigvecs=net.spontaneous_f64.eigvecs,
        **net.census.to_arrays())
    files.write_bytes(zpath, buf.getvalue())
    files.write_json(jpath, net.metrics())


def load_network(folder: Path, key: str) -> NetworkAnalysis | None:
    """The network analysis cached in `folder` under `key`, or None (absent or unreadable)."""
    _, zpath = _paths(folder, key)
    try:
        with np.load(zpath, allow_pickle=False) as z:
            if str(z["key"]) != key:
                return None
            pts = census.Census.from_arrays(z)
            sp = pca.PCA(z["spont_eigvals"], z["spont_eigvecs"])
            sp64 = pca.PCA(z["spont64_eigvals"], z["spont64_eigvecs"])
            ly = dynamics.Lyapunov(z["lyap_per_vector"], z["lyap_blocks"], *map(float, z["lyap_ms"]))
            kind, why = map(str, z["regime_text"])
            num = [None if not np.isfinite(v) else float(v) for v in z["regime_numbers"]]
            rg = regime.Regime(kind, num[0], float("nan") if num[1] is None else num[1], num[2], num[3], why)
            return NetworkAnalysis(sp, sp64, pts, ly, rg, key, str(z["G_digest"]))
    except files.NPZ_ERRORS:
        return None


def load_or_analyse_network(cfg: Config, G: torch.Tensor, folder: Path | None,
                            on_write_error: Callable[[OSError], None] | None = None) -> NetworkAnalysis:
    """The network analysis of G: from the cache in `folder` when there, else computed (and cached
    there unless folder is None). on_write_error: called with the error when the cache cannot be
    written (the analysis is returned all the same); None: the error is raised."""
    key = network_key(cfg, G)
    if folder is not None:
        got = load_network(folder, key)
        if got is not None:
            return got
    net = analyse_network(cfg, G)
    if folder is not None:
        try:
            save_network(net, folder)
        except OSError as exc:
            if on_write_error is None:
                raise
            on_write_error(exc)
    return net


# -- the population's answer -------------------------------------------------------------------

ANSWER = "answer.json"


def write_answer(run_dir: Path, n_main: int, n_control: int, lines: list[str]) -> None:
    """The population's answer (prose.answer's lines) and the ensembles' sizes, for the run's index."""
    files.write_json(Path(run_dir) / ANSWER, {"n_main": n_main, "n_control": n_control, "lines": list(lines)})


def read_answer(run_dir: Path) -> dict | None:
    """The answer write_answer left in run_dir, or None (absent or unreadable)."""
    try:
        got = files.read_json(Path(run_dir) / ANSWER)
    except (UserError, OSError):
        return None
    return got if isinstance(got, dict) and isinstance(got.get("lines"), list) else None


# -- the population's inputs -----------------------------------------------------------------------

def metrics_files(run_dir: Path) -> list[Path]:
    return sorted(Path(run_dir).glob("seed_*/metrics.json"), key=lambda p: int(p.parent.name.split("_")[1]))


def table(run_dir: Path, seeds=None) -> pd.DataFrame:
    """One row per seed with a metrics.json in run_dir/seed_<s>/ (optionally only `seeds`): the
    scalar metrics, precision_<d>ms, plateau_hold_<d>ms and the memory exponent lyapunov_<d>ms with
    lyapunov_se_<d>ms, lyapunov_spread_<d>ms and lyapunov_lag_<d>ms (the lag in ms after which its log
    growth decorrelates) per test duration (and fine_step_hold_<d>ms for a step coarser than the
    paper's), and the network key."""
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
        for d, v in (m.get("plateau_hold_ms_by_duration") or {}).items():
            row[f"plateau_hold_{d}ms"] = v
        for d, v in (m.get("fine_step_hold_ms_by_duration") or {}).items():
            row[f"fine_step_hold_{d}ms"] = v
        for key, name in (("lyapunov_per_s_by_duration", "lyapunov"), ("lyapunov_se_per_s_by_duration", "lyapunov_se"),
                          ("lyapunov_start_spread_per_s_by_duration", "lyapunov_spread"),
                          ("lyapunov_decorrelation_ms_by_duration", "lyapunov_lag")):
            for d, v in (m.get(key) or {}).items():
                row[f"{name}_{d}ms"] = v
        row["network_key"] = m.get("network_key")
        row["network_G"] = m.get("network_G")
        # every other scalar metric (alignment, confound, dynamics, ...) after the main columns
        row.update({k: v for k, v in m.items() if k not in row and k not in IDENTITY_KEYS
                    and (isinstance(v, (int, float, str)) or v is None)})
        rows.append(row)
    if not rows:
        raise UserError(f"{run_dir}: no seed_*/metrics.json found; run the per-seed notebooks "
                        f"(or `sysa run`) first")
    return pd.DataFrame(rows).sort_values("seed").reset_index(drop=True)


def write_csv(df: pd.DataFrame, path: Path) -> None:
    files.write_text(path, df.to_csv(index=False))


def networks(run_dir: Path, df: pd.DataFrame) -> list[NetworkAnalysis]:
    """The network analyses of the table's seeds, one per G (the first found when seeds analysed by
    different code versions cached the same G twice), read from the run folder."""
    out = {}
    for key in dict.fromkeys(df["network_key"].dropna()):
        net = load_network(run_dir, key)
        if net is not None:
            out.setdefault(net.G_digest, net)
    return list(out.values())


def inputs_digest(run_dir: Path, seeds) -> str:
    """A fingerprint of the metrics a population report was made from."""
    h = hashlib.sha256()
    for s in sorted(seeds):
        f = files.metrics_path(files.seed_dir(run_dir, s))
        h.update(str(s).encode())
        h.update(f.read_bytes() if f.exists() else b"-")
    return h.hexdigest()[:16]


class SeedArrays(Mapping):
    """A seed's analysis.npz as a read-only mapping: each array is read and decompressed when asked for."""

    def __init__(self, folder: Path):
        self.path = files.arrays_path(folder)
        self.names = self._read("the seed's arrays", lambda z: list(z.files))

    def _read(self, what: str, take):
        """take(the open npz), or a one-line UserError naming the file when it cannot be read."""
        try:
            with np.load(self.path, allow_pickle=False) as z:
                return take(z)
        except files.NPZ_ERRORS as exc:
            raise UserError(f"{self.path}: cannot read {what} ({exc.__class__.__name__}); "
                            f"`sysa check` names what a re-run repairs") from None

    def __getitem__(self, name: str) -> np.ndarray:
        return self._read(repr(name), lambda z: z[name])

    def __iter__(self):
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


def runs(folders: dict) -> dict:
    """{ensemble: (run folder, seeds)} -> {ensemble: {seed: SeedArrays}}, what the population's
    curves and points are computed from (analysis.population)."""
    return {ens: {s: SeedArrays(files.seed_dir(run_dir, s)) for s in seeds} for ens, (run_dir, seeds) in folders.items()}
