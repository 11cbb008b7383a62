"""The notebooks and sysa_core.pipeline.notebook: committed without outputs, one tagged parameters
cell of annotated literals with help, an unknown or mistyped papermill parameter stops before any
work with a one-line reason, and any checkpoint file can be analysed (the original's published
ones included)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill
import pytest
from conftest import cli_env, copy_run
from papermill.exceptions import PapermillExecutionError

from sysa_core import files
from sysa_core.pipeline.notebook import PARAMETERS

NB_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NAMES = ("train", "inspect", "pca", "population", "explore")


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_has_no_outputs(name):
    nb = nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: cell has outputs"


@pytest.mark.parametrize("name", NAMES)
def test_parameters_cell_declares_annotated_literals_with_help(name):
    nb = nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    params = papermill.inspect_notebook(str(NB_DIR / f"{name}.ipynb"))
    assert set(params) == set(PARAMETERS[name])
    for p in params.values():
        assert p["inferred_type_name"] != "None" and p["help"].startswith("help:"), p


def test_unknown_papermill_parameter_is_refused_before_any_work(tmp_path):
    with pytest.raises(PapermillExecutionError) as info:
        papermill.execute_notebook(str(NB_DIR / "train.ipynb"), str(tmp_path / "out.ipynb"),
                                   parameters={"profile": "smoke", "sed": 3, "run_dir": str(tmp_path / "s")},
                                   progress_bar=False, kernel_name="python3")
    assert info.value.ename == "UserError"
    assert "unknown parameter 'sed'" in info.value.evalue
    assert not (tmp_path / "s").exists()  # nothing trained or written


def test_wrongly_typed_papermill_parameter_is_refused(tmp_path):
    with pytest.raises(PapermillExecutionError) as info:
        papermill.execute_notebook(str(NB_DIR / "inspect.ipynb"), str(tmp_path / "out.ipynb"),
                                   parameters={"profile": "smoke", "overrides": "epochs=3",
                                               "run_dir": str(tmp_path / "s")},
                                   progress_bar=False, kernel_name="python3")
    assert info.value.ename == "UserError" and "'overrides' must be list" in info.value.evalue


def _cell_text(nb_path: Path) -> str:
    nb = nbformat.read(nb_path, as_version=4)
    out = []
    for c in nb.cells:
        for o in c.get("outputs", []):
            out.append(o.get("text", "") + json.dumps(o.get("data", {})))
    return "\n".join(out)


def test_the_original_checkpoint_in_the_inspect_and_pca_notebooks(reference_dir, reference_full, paper_network_dir,
                                                                   tmp_path):
    """`papermill notebooks/inspect.ipynb out.ipynb -p checkpoint ../shared/reference/sys_A1_state.pth`
    (no sysa metadata: the paper profile) and the same for pca run without error, write their
    analysis to a folder of their own, and show the precision `sysa evaluate` gives for the file.
    The folder starts with the analysis of G that `sysa evaluate --network-dir` kept (G is analysed
    once per session), and the notebooks read it from there."""
    ck = reference_dir / "sys_A1_state.pth"
    out = tmp_path / "analysis"
    out.mkdir()
    key = reference_full["network_key"]
    for suffix in (".json", ".npz"):
        shutil.copyfile(paper_network_dir / f"network-{key}{suffix}", out / f"network-{key}{suffix}")
    kept = {p.name: p.stat().st_ino for p in out.iterdir()}
    for name in ("inspect", "pca"):
        papermill.execute_notebook(str(NB_DIR / f"{name}.ipynb"), str(tmp_path / f"{name}.ipynb"),
                                   parameters={"checkpoint": str(ck), "run_dir": str(out)},
                                   progress_bar=False, kernel_name="python3", cwd=str(tmp_path))
    m = json.loads(files.metrics_path(out).read_text())
    assert m == reference_full  # the same numbers as `sysa evaluate` (same bytes, configuration and code)
    assert m["profile"] == "paper" and m["checkpoint_sha256"] == files.sha256(ck)
    shown = _cell_text(tmp_path / "inspect.ipynb")
    assert f"{reference_full['precision']:.4g}" in shown
    assert "sys_A1_state.pth" in _cell_text(tmp_path / "pca.ipynb")
    assert not list(reference_dir.glob("*.json")) and not list(reference_dir.glob("*.npz"))  # nothing written there
    assert {name: (out / name).stat().st_ino for name in kept} == kept  # read, not computed and rewritten


def test_default_folder_for_a_checkpoint_is_its_own(tmp_path):
    from sysa_core.pipeline import notebook as nb

    ck = tmp_path / "sys_A3.pth"
    import torch

    from sysa_core import config, model
    torch.save(model.init_weights(config.resolve("smoke").model, 3), ck)
    ctx = nb.setup("inspect", {"profile": "smoke", "seed": 1, "overrides": [], "run_dir": "", "checkpoint": str(ck)})
    assert ctx.seed == 3 and ctx.checkpoint == ck
    assert ctx.run_dir == files.default_analysis_dir(ck, files.sha256(ck))
    assert ctx.run_dir.parent.name == "analyses" and ctx.run_dir.name.startswith("sys_A3-")


def test_papermills_report_of_a_bad_parameter_ends_with_one_line_and_no_sysa_frames(tmp_path):
    """`papermill train.ipynb out.ipynb -p sed 3`: papermill's own traceback, then the one line."""
    res = subprocess.run([sys.executable, "-m", "papermill", str(NB_DIR / "train.ipynb"), str(tmp_path / "out.ipynb"),
                          "-p", "sed", "3", "-p", "profile", "smoke", "-p", "run_dir", str(tmp_path / "s")],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path, env=cli_env())
    assert res.returncode == 1
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert lines[-1] == "UserError: train.ipynb: unknown parameter 'sed' (known: profile, seed, overrides, run_dir)"
    assert "sysa_core" not in res.stderr and res.stderr.count("Traceback") <= 1, res.stderr
    assert not (tmp_path / "s").exists()


def test_the_population_report_of_one_seed_says_what_it_cannot_test(smoke_run, tmp_path):
    """With one seed in each ensemble there is nothing to correlate or compare: the population
    notebook runs to its end and says so instead of drawing empty panels."""
    run = tmp_path / "run"
    shutil.copytree(smoke_run, run, ignore=shutil.ignore_patterns("seed_2", ".sysa.lock"))
    out = tmp_path / "population.ipynb"
    papermill.execute_notebook(str(NB_DIR / "population.ipynb"), str(out), progress_bar=False, kernel_name="python3",
                               parameters={"profile": "smoke", "run_dir": str(run), "control_dir": str(run / "control")})
    text = "\n".join("".join(o.get("data", {}).get("text/markdown", "")) for c in nbformat.read(out, as_version=4).cells
                     if c.cell_type == "code" for o in c.outputs)
    assert "1 seed of the seed-compatible ensemble" in text
    assert "No test compares the ensembles at 1 and 1 seeds" in text
    assert text.count("the main ensemble has 1 seed, and a rank correlation needs at least 3") == 3
    assert "claimed" not in text and "p = nan" not in text


def test_the_ensembles_can_be_pooled_with_the_ensemble_as_a_covariate(smoke_run, tmp_path):
    run = copy_run(smoke_run, tmp_path / "run")  # the notebook writes population.csv into its run folder
    params = {"profile": "smoke", "run_dir": str(run), "control_dir": str(run / "control"), "pool_ensembles": True}
    out = tmp_path / "population.ipynb"
    papermill.execute_notebook(str(NB_DIR / "population.ipynb"), str(out), parameters=params, progress_bar=False,
                               kernel_name="python3", cwd=str(tmp_path))
    cell = next(c for c in nbformat.read(out, as_version=4).cells if "nb.statistics_section" in c.source)
    html = "".join(o.get("data", {}).get("text/html", "") for o in cell.outputs)
    assert "Main ensemble, n = 2" in html and "Both ensembles pooled, n = 4" in html and "partial Spearman" in html
    with pytest.raises(PapermillExecutionError) as info:
        papermill.execute_notebook(str(NB_DIR / "population.ipynb"), str(tmp_path / "no.ipynb"), progress_bar=False,
                                   parameters={**params, "control_dir": ""}, kernel_name="python3", cwd=str(tmp_path))
    assert info.value.ename == "UserError" and "pool_ensembles needs control_dir" in info.value.evalue


# -- a run folder's notebooks are portable, analyse the checkpoint's own configuration and
#    never write into another model's folder

def _file_bytes(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
            and p.name != ".sysa.lock"}


def _machine_paths(text: str, *folders: Path) -> list[str]:
    """The absolute paths of this machine (the given folders, the repository, the Python environment) in `text`."""
    needles = {str(f) for f in folders} | {str(NB_DIR.parent), sys.prefix, str(Path.home())}
    return sorted(n for n in needles if n and n != "/" and n in text)


def test_a_run_folders_notebooks_name_no_folder_of_this_machine(smoke_run):
    for path in sorted(smoke_run.rglob("*.ipynb")) + sorted(smoke_run.rglob("*.html")):
        assert not _machine_paths(path.read_text(), smoke_run), path
    nb = nbformat.read(smoke_run / "seed_1" / "inspect.ipynb", as_version=4)
    assert nb.metadata.papermill.parameters == {"profile": "smoke", "seed": 1, "overrides": [], "run_dir": "",
                                                "checkpoint": "sys_A1_state.pth"}
    assert nb.metadata.papermill.output_path == "inspect.ipynb"


def test_a_copied_run_folder_reanalyses_the_checkpoint_beside_it(smoke_run, tmp_path):
    """The whole run folder copied elsewhere, its inspect and pca notebooks re-run there unchanged (papermill
    with no new parameters, in the notebook's folder): they analyse the checkpoint beside them (their cached
    analysis removed, so it is computed again) and get the same metrics."""
    run = copy_run(smoke_run, tmp_path / "moved" / "run")
    sdir = run / "seed_1"
    for name in ("metrics.json", "analysis.npz"):
        (sdir / name).unlink()
    original = _file_bytes(smoke_run)
    for name in ("inspect", "pca"):
        papermill.execute_notebook(str(sdir / f"{name}.ipynb"), str(sdir / f"{name}.ipynb"), progress_bar=False,
                                   kernel_name="python3", cwd=str(sdir))
        cells = nbformat.read(sdir / f"{name}.ipynb", as_version=4).cells  # (papermill's metadata names its own
        assert not _machine_paths(json.dumps(cells), run, smoke_run)       # input and output as it was given them)
    assert json.loads((sdir / "metrics.json").read_text()) == json.loads((smoke_run / "seed_1" / "metrics.json").read_text())
    assert _file_bytes(smoke_run) == original  # the original folder was not read into or written


def test_the_checkpoints_own_configuration_wins(smoke_run, tmp_path, monkeypatch):
    """Changing only `checkpoint` in seed 1's notebook analyses control seed 2 with its own recorded
    configuration (independent initialisation), beside it; a profile or an override that contradicts the
    recorded configuration is refused in one line naming both."""
    from sysa_core.errors import UserError
    from sysa_core.pipeline import notebook as nb

    run = copy_run(smoke_run, tmp_path / "run")
    monkeypatch.chdir(run / "seed_1")
    base = {"profile": "smoke", "seed": 1, "overrides": [], "run_dir": "", "checkpoint": "../control/seed_2/sys_A2_state.pth"}
    ctx = nb.setup("inspect", base)
    assert ctx.seed == 2 and ctx.control and ctx.cfg.model.init == "independent"
    assert ctx.run_dir == run / "control" / "seed_2" and ctx.label == "control seed 2 (smoke)"
    with pytest.raises(UserError) as info:
        nb.setup("inspect", {**base, "profile": "quick"})
    msg = str(info.value)
    assert "\n" not in msg and "profile='quick'" in msg and "profile 'smoke'" in msg and "sys_A2_train.json" in msg
    with pytest.raises(UserError) as info:
        nb.setup("pca", {**base, "profile": "", "overrides": ["model.init=seed_compatible"]})
    msg = str(info.value)
    assert "model.init='seed_compatible'" in msg and "model.init='independent'" in msg
    ok = nb.setup("pca", {**base, "profile": "", "overrides": ["analysis.spont_h0=0.2"]})  # analysis settings may change
    assert ok.cfg.training_id() == ctx.cfg.training_id() and ok.cfg.analysis.spont_h0 == 0.2


def test_analysis_never_trains_a_missing_checkpoint(tmp_path, monkeypatch):
    from sysa_core.errors import UserError
    from sysa_core.pipeline import notebook as nb

    monkeypatch.chdir(tmp_path)
    for name in ("inspect", "pca"):
        with pytest.raises(UserError) as info:
            nb.setup(name, {"profile": "smoke", "seed": 4, "overrides": [], "run_dir": "run/seed_4", "checkpoint": ""})
        msg = str(info.value)
        assert "\n" not in msg and "no checkpoint run/seed_4/sys_A4_state.pth" in msg and "never trains" in msg
        assert "sysa train --profile smoke --seeds 4 --out run" in msg
    assert list(tmp_path.iterdir()) == []


def test_another_models_checkpoint_never_overwrites_a_seed_folder(smoke_run, tmp_path):
    """Control seed 2's checkpoint analysed with main seed 1's folder as the target is refused before any
    work; with the target left empty it is analysed beside itself. Seed 1's files stay byte-identical and
    `sysa check` stays clean."""
    from conftest import run_cli

    run = copy_run(smoke_run, tmp_path / "run")
    sdir = run / "seed_1"
    before = _file_bytes(sdir)
    params = {"checkpoint": "../control/seed_2/sys_A2_state.pth", "run_dir": "."}
    with pytest.raises(PapermillExecutionError) as info:
        papermill.execute_notebook(str(sdir / "inspect.ipynb"), str(tmp_path / "refused.ipynb"), parameters=params,
                                   progress_bar=False, kernel_name="python3", cwd=str(sdir))
    assert info.value.ename == "UserError" and "holds the results of another model" in info.value.evalue
    papermill.execute_notebook(str(sdir / "inspect.ipynb"), str(tmp_path / "beside.ipynb"),
                               parameters={**params, "run_dir": ""}, progress_bar=False, kernel_name="python3",
                               cwd=str(sdir))
    assert "control seed 2 (smoke)" in _cell_text(tmp_path / "beside.ipynb")
    assert _file_bytes(sdir) == before
    proc = run_cli("check", run)
    assert proc.returncode == 0, proc.stderr


def test_a_checkpoint_without_metadata_is_never_analysed_into_another_models_folder(smoke_run, tmp_path, monkeypatch):
    import torch

    from sysa_core import config, model
    from sysa_core.errors import UserError
    from sysa_core.pipeline import notebook as nb

    monkeypatch.chdir(tmp_path)
    torch.save(model.init_weights(config.resolve("smoke").model, 3), tmp_path / "sys_A3.pth")
    for target in (smoke_run / "seed_1", smoke_run / "control" / "seed_2"):
        with pytest.raises(UserError, match="holds the results of another model"):
            nb.setup("inspect", {"profile": "smoke", "seed": 1, "overrides": [], "run_dir": str(target),
                                 "checkpoint": "sys_A3.pth"})
    ctx = nb.setup("inspect", {"profile": "smoke", "seed": 1, "overrides": [], "run_dir": "mine",
                               "checkpoint": "sys_A3.pth"})
    assert ctx.run_dir == tmp_path / "mine"


def test_the_training_summary_says_when_a_training_has_not_finished(tmp_path, monkeypatch):
    """The train notebook's summary of a model whose metadata says "running" (it holds no histories
    until the training completes) says so, instead of calling it a checkpoint without metadata."""
    from sysa_core import config
    from sysa_core.pipeline import notebook

    shown = []
    monkeypatch.setattr(notebook, "display", lambda obj: shown.append(obj.data))
    ctx = notebook.Context("train", config.resolve("smoke", seed=1), tmp_path, {})
    notebook.training_summary(ctx, notebook.history(ctx))
    files.write_json(files.meta_path(tmp_path, 1), {"seed": 1, "status": "running", "epochs_done": 3})
    assert notebook.history(ctx) is None
    notebook.training_summary(ctx, notebook.history(ctx))
    assert "has no sysa training metadata" in shown[0]
    assert "says the training is running" in shown[1] and "no sysa training metadata" not in shown[1]


def _shown(monkeypatch) -> list[str]:
    from sysa_core.pipeline import notebook

    shown = []
    monkeypatch.setattr(notebook, "display", lambda obj: shown.append(getattr(obj, "data", obj)))
    return shown


def test_the_weights_summary_says_how_far_each_vector_moved_from_its_start(tmp_path, monkeypatch):
    import numpy as np
    import torch

    from sysa_core import config
    from sysa_core.model import init_weights
    from sysa_core.pipeline import notebook

    shown = _shown(monkeypatch)
    for init in ("seed_compatible", "independent"):
        cfg = config.resolve("smoke", seed=3, overrides=[f"model.init={init}"])
        sd0 = init_weights(cfg.model, 3)
        gen = torch.Generator().manual_seed(5)
        sd = {**sd0, "I": sd0["I"] + 0.05 * torch.randn(sd0["I"].shape, generator=gen),
              "w": sd0["w"] + 0.1 * torch.randn(sd0["w"].shape, generator=gen)}
        notebook.weights_summary(notebook.Context("train", cfg, tmp_path, {}), sd)
        def cos(a, b):
            a, b = a.double().flatten().numpy(), b.double().flatten().numpy()
            return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))

        for a, b in ((sd["I"], sd0["I"]), (sd["w"], sd0["w"]), (sd["I"], sd["w"]), (sd0["I"], sd0["w"])):
            assert f"{cos(a, b):.3f}" in shown[-1]
    assert "mostly measures how far w moved" in shown[0] and "mostly measures" not in shown[1]


def test_the_memory_sections_say_what_their_numbers_can_show(smoke_run, smoke_cfg, monkeypatch):
    """The nearest fixed point named as the origin where it is one (its distance is |h| by definition),
    the fixed-point threshold read from the analysis, and w's variance on the memory PCs said to be the
    output's variance within the window."""
    import numpy as np

    from sysa_core.analysis import pca
    from sysa_core.pipeline import notebook, prose

    sdir = files.seed_dir(smoke_run, 1)
    m = json.loads(files.metrics_path(sdir).read_text())
    with np.load(files.arrays_path(sdir)) as z:
        A = {k: z[k] for k in z.files}
    shown = _shown(monkeypatch)
    at_origin = {**m, "memory_nearest_point_norm_by_duration": {d: 0.0 for d in m["memory_state_norm_by_duration"]},
                 "memory_nearest_point_relative_distance_by_duration": {d: 1.0 for d in m["memory_state_norm_by_duration"]}}
    notebook.memory_points_section(at_origin, A)
    text = shown[0]
    assert "the nearest point is the origin" in text and "100% of |h| away" not in text
    for d, rel in m["memory_nearest_nonzero_point_relative_distance_by_duration"].items():  # and the nearest other
        said = (", and G has no other known fixed point" if rel is None else
                f"the nearest other has |h*| = {m['memory_nearest_nonzero_point_norm_by_duration'][d]:#.3g} and "
                f"{prose.count(m['memory_nearest_nonzero_point_unstable_by_duration'][d], 'unstable mode')}, "
                f"{rel:.1%} of |h| away")
        assert said in text.split(f"{d} ms: ")[1].split("ms: ")[0], d
    assert "at least 100% of its norm away from every fixed point" in text  # the origin, |h| away, is the nearest
    shown.clear()  # an origin found by a search, a rounding away from 0, is the origin too
    notebook.memory_points_section({**at_origin, "memory_nearest_point_norm_by_duration":
                                    {d: 1e-13 for d in m["memory_state_norm_by_duration"]}}, A)
    assert shown[0] == text
    assert f"q ≤ {float(A['points_constants'][1]):.0e}" in text
    shown.clear()
    notebook.alignment_summary(m, A)
    y = A["traj_readout"] * np.linalg.norm(A["mem_coef_w"])
    within, between = pca.readout_variances(y[:, int(A["traj_phase_steps"][1]):])
    assert f"within the memory window ({within:.2g} a.u.²" in shown[0] and f"plateaus ({between:.2g} a.u.²)" in shown[0]
    assert "two-sided p" in shown[0]
    fitted = [int(d) for d, f in zip(A["eval_durations_ms"], A["traj_duration_fitted"]) if f]
    assert fitted == [d for d in smoke_cfg.analysis.durations_ms if smoke_cfg.in_trained_range(d)] and len(fitted) >= 2
    assert notebook.coding_sentence(m["readout_coding_cosine"], m["readout_coding_cosine_untrained"],
                                    len(A["mem_coef_w"]), fitted) in shown[0]


def test_the_summary_gives_each_memory_exponent_its_blocks_against_its_decorrelation(smoke_run, smoke_cfg, monkeypatch):
    """The model summary's in-range memory exponents, each with the phrase prose builds from the metrics:
    the blocks' length (the memory window over lyapunov_blocks) against the lag after which its log
    growth first decorrelates."""
    from sysa_core.pipeline import notebook, prose

    m = json.loads(files.metrics_path(files.seed_dir(smoke_run, 1)).read_text())
    shown = _shown(monkeypatch)
    notebook.summary(notebook.Context("inspect", smoke_cfg, smoke_run, {}), m)
    a = smoke_cfg.analysis
    block_ms = (a.mem_T_ms - a.mem_start_ms) / m["lyapunov_blocks"]
    inside = [d for d in m["lyapunov_per_s_by_duration"] if smoke_cfg.in_trained_range(int(d))]
    assert inside
    for d in inside:
        lag = m["lyapunov_decorrelation_ms_by_duration"][d]
        assert prose.blocks_phrase(m["lyapunov_blocks"], block_ms, lag) in shown[0]
        assert f"{block_ms:.0f} ms" in shown[0] and f"the {lag:.0f} ms after which" in shown[0]


def test_the_population_counts_the_fixed_points_of_G_with_their_unreached_mirrors(smoke_run, smoke_cfg, monkeypatch):
    """G's points united with every seed's: the sentence counts the fixed and moving points the searches
    reached, and how many fixed points' mirrors (found here by brute force) were not reached."""
    import numpy as np

    from sysa_core.analysis import dynamics
    from sysa_core.analysis import population as pop
    from sysa_core.pipeline import notebook, prose

    ctx = notebook.Context("population", smoke_cfg, smoke_run, {"control_dir": smoke_run / "control",
                                                                 "pool_ensembles": False})
    P = notebook.population(ctx)
    shown = _shown(monkeypatch)
    monkeypatch.setattr(notebook.plots, "show", lambda *a, **k: None)
    notebook.networks_section(P)
    pts, _, _ = pop.points_of_G(P.networks[0], P.both, P.runs)
    fixed = pts.h[pts.fixed]
    tol = dynamics.merge_tolerance(pts.h.shape[1])
    unreached = sum(np.linalg.norm(fixed + x, axis=1).min() > tol for x in fixed)
    text = next(t for t in shown if isinstance(t, str) and t.startswith("United with"))
    assert f": {len(fixed)} fixed points and {len(pts) - len(fixed)} moving points" in text
    assert (f"the mirrors of {prose.count(unreached, 'fixed point')} were not reached, so G has at least "
            f"{len(fixed) + unreached} fixed points" if unreached else "every fixed point's mirror was reached") in text


def test_the_coding_sentence_gives_the_cosine_its_chance_and_exact_p():
    """The readout against the duration-coding direction: the cosine and the untrained one, a random
    direction's mean |cos| and the exact two-sided p (both computed here from their integrals), that
    the task asks for it, and cos²; no direction, no numbers."""
    from scipy import integrate, special

    from sysa_core.pipeline import notebook

    n = 500
    density = lambda c: (1 - c * c) ** ((n - 3) / 2) / special.beta(0.5, (n - 1) / 2)  # noqa: E731 - cos of a random direction
    chance = 2 * integrate.quad(lambda c: c * density(c), 0, 1)[0]
    for c, c0, share in ((0.22, -0.03, "4.8 %"), (-0.05, 0.01, "0.25 %"), (0.9, None, "81 %")):
        p = 2 * integrate.quad(density, abs(c), 1)[0]
        text = notebook.coding_sentence(c, c0, n, [50, 150])
        assert "over the 50 and 150 ms trials: with two, their difference;" in text
        said = ("," if c0 is None else f" (before training {c0:.2f}, the untrained w against the untrained network's "
                                       f"own u: exact p = {2 * integrate.quad(density, abs(c0), 1)[0]:.2g})")
        assert f"cosine {c:.2f}" + said in text and "fell" not in text
        assert f"a random direction's mean |cos| is {chance:.3f}" in text
        assert (f"p = {p:.2g}" if p >= 1e-4 else "p < 1e-4") in text and f"cos² = {share}" in text
        assert ("is what the task asks, no separate finding" in text) == (c > 0)
        assert ("w·u < 0: the window's mean output falls as the pulse lengthens, against what the task asks" in text) == (c < 0)
    assert "their difference" not in notebook.coding_sentence(0.2, None, n, [50, 150, 300])
    assert "no coding direction" in notebook.coding_sentence(None, None, n, [50, 150])
    assert "cosine" not in notebook.coding_sentence(None, None, n, [50, 150])


@pytest.mark.parametrize("name", NAMES)
def test_every_table_a_cell_builds_is_its_last_expression(name):
    """A table (a Styler from sysa_core.pipeline.tables) is shown only as a cell's last expression:
    one built on an earlier line is computed and thrown away."""
    nb = nbformat.read(NB_DIR / f"{name}.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        lines = [ln for ln in cell.source.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        for ln in lines[:-1]:
            assert not ln.startswith("tables."), f"{name}: {ln!r} is not shown (not the cell's last expression)"


def test_the_participation_summary_says_whether_the_ratios_are_a_random_directions(monkeypatch):
    import numpy as np

    from sysa_core.analysis import alignment
    from sysa_core.pipeline import notebook

    shown = _shown(monkeypatch)
    rng = np.random.default_rng(3)
    random_I, random_w = rng.standard_normal(200), rng.standard_normal(200)
    notebook.participation_summary(random_I, random_w)
    assert shown[-1].startswith("All 4 ratios lie within the middle 95 % of a random direction's")
    one_pc = np.zeros(200)
    one_pc[0] = 1.0  # all its weight on one eigenvector: l1 = l2 = 1
    notebook.participation_summary(random_I, one_pc)
    assert shown[-1].startswith("2 of the 4 ratios") and "outside it: l1 of w, l2 of w" in shown[-1]
    null = alignment.participation_null(200)
    assert np.percentile(null["l1"], 2.5) > 1


def test_the_summary_of_a_transient_gives_its_evidence_in_numbers(smoke_run, smoke_cfg, monkeypatch):
    """'the readout is nearly blind to the state's motion' with its number (the memory-period activity's
    variance along w over its leading PC's, and that over a random direction's), said to be the rule's
    reading; how much state noise worsens the in-range error; how many of the sweep's in-range pulses hold."""
    from sysa_core.pipeline import notebook

    m = json.loads(files.metrics_path(files.seed_dir(smoke_run, 1)).read_text())
    m["memory_mechanism"] = "transient"
    shown = _shown(monkeypatch)
    notebook.summary(notebook.Context("inspect", smoke_cfg, smoke_run, {}), m)
    va, null = m["output_var_alignment"], m["output_var_alignment_null_mean"]
    assert (f"the readout is nearly blind to the state's motion (the memory-period activity's variance along w is "
            f"{va:.2g} of its leading PC's, {va / null:.2g}× a random direction's).") in shown[0]
    assert "By the mechanism rule the plateau is held by a transient" in shown[0]
    inr = m["precision_trained_range"]
    ratios = [m[f"precision_noise_{s}"] / inr for s in ("0.01", "0.03", "0.1")]
    grows = ", ".join(f"{float(f'{r:.2g}'):g}× at σ = {s}" for r, s in zip(ratios, ("0.01", "0.03", "0.1")))
    assert f"4 seeded draws per duration) the in-range error grows {grows}." in shown[0]
    from sysa_core.analysis.plateau import sweep_durations

    ds = [d for d in sweep_durations(smoke_cfg) if smoke_cfg.in_trained_range(d)]
    k = round(m["sweep_held_in_range"] * len(ds))
    said = "none does" if k == 0 else "all do" if k == len(ds) else f"{k} do"
    assert f"; of the sweep's {len(ds)} in-range durations ({ds[0]}–{ds[-1]} ms, every 10 ms), {said}." in shown[0]
    assert "a limit cycle or chaotic motion the readout ignores would read the same" in shown[0]
