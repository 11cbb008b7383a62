"""`sysa run` end to end on the smoke profile (sysa_core.pipeline.run and .jobs): real papermill
executions of the real notebooks, HTML reports and the index, the control ensemble, skipping
finished seeds, re-analysing without retraining, --force, a run at dt = 2 ms, the lock, and bad input refused before any work (the failure
of a seed and damaged folders: test_faults).

Most tests read the session's smoke run (conftest.smoke_run); those that change a run work on a
copy of it."""
from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import sys
import time

import nbformat
import numpy as np
import pandas as pd
import pytest
from conftest import (REPO, SMOKE_RUN, assert_user_error, children, cli_env, cmdline, copy_run, parse_json_lines,
                      run_cli)

from sysa_core import cli, files
from sysa_core.analysis import population
from sysa_core.pipeline import report, verify

SEEDS = (1, 2)
NOTEBOOKS = ("train", "inspect", "pca")
ENSEMBLES = ("", "control/")


def _files(run):
    return {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}


def test_every_seed_of_both_ensembles_has_executed_notebooks_and_their_html(smoke_run):
    for prefix in ENSEMBLES:
        for s in SEEDS:
            d = smoke_run / f"{prefix}seed_{s}"
            for name in NOTEBOOKS:
                nb = nbformat.read(d / f"{name}.ipynb", as_version=4)
                code = [c for c in nb.cells if c.cell_type == "code"]
                assert all(c.get("execution_count") for c in code), f"{d / name}: not every cell ran"
                errors = [o for c in code for o in c.get("outputs", []) if o.output_type == "error"]
                assert not errors, f"{d / name}.ipynb has error outputs"
                assert (d / f"{name}.html").stat().st_size > 10_000
            for f in (f"sys_A{s}_state.pth", f"sys_A{s}.pth", f"sys_A{s}_train.json", "metrics.json",
                      "analysis.npz", f"sys_A{s}_err.png", f"sys_A{s}_param.png", "pipeline.json"):
                assert (d / f).exists(), d / f
    for f in ("population.ipynb", "population.html", "population.csv", "index.html", "sysa-run.json"):
        assert (smoke_run / f).exists(), f


def test_the_control_ensemble_is_initialised_independently(smoke_run):
    for s in SEEDS:
        main = json.loads((smoke_run / f"seed_{s}" / "metrics.json").read_text())
        ctl = json.loads((smoke_run / "control" / f"seed_{s}" / "metrics.json").read_text())
        assert main["weight_correlation_init"] == pytest.approx(1.0, abs=1e-6)
        assert abs(ctl["weight_correlation_init"]) < 0.5
        assert ctl["training_id"] != main["training_id"]
    index = (smoke_run / "index.html").read_text()
    assert 'href="control/seed_1/inspect.html"' in index


def test_written_files_get_the_usual_permissions_not_mkstemps_0600(smoke_run):
    umask = os.umask(0)
    os.umask(umask)
    for f in (smoke_run / "index.html", smoke_run / "seed_1" / "sys_A1_state.pth", smoke_run / "seed_1" / "metrics.json"):
        assert f.stat().st_mode & 0o777 == 0o666 & ~umask, f


def test_metrics_json_and_csv_agree_and_training_helped(smoke_run):
    both = pd.read_csv(smoke_run / "population.csv")
    assert sorted(both["ensemble"].unique()) == ["control", "main"]
    df = both[both["ensemble"] == "main"]
    assert sorted(df["seed"]) == list(SEEDS)
    for s in SEEDS:
        m = json.loads((smoke_run / f"seed_{s}" / "metrics.json").read_text())
        row = df[df.seed == s].iloc[0]
        assert row["precision"] == pytest.approx(m["precision"], rel=1e-12)
        assert m["precision_untrained"] / m["precision"] >= 10
        assert set(m["precision_by_duration"]) == {"30", "60", "100"}
        meta = json.loads((smoke_run / f"seed_{s}" / f"sys_A{s}_train.json").read_text())
        assert m["converged"] is meta["convergence"]["converged"] and m["final_loss"] > 0


def test_evaluate_prints_exactly_the_metrics_json_of_a_seed(smoke_run):
    """`sysa evaluate <checkpoint> --json` and the seed's metrics.json: the same keys, equal values."""
    ckpts = [smoke_run / "seed_1" / "sys_A1_state.pth", smoke_run / "control" / "seed_2" / "sys_A2_state.pth"]
    proc = run_cli("evaluate", *ckpts, "--json")
    assert proc.returncode == 0, proc.stderr
    for got, ck in zip(parse_json_lines(proc.stdout), ckpts):
        assert got == json.loads((ck.parent / "metrics.json").read_text())


def test_pca_reads_what_inspect_computed(smoke_run, tmp_path):
    """Executed again, the pca notebook reads the cached analysis: metrics.json and analysis.npz are
    not rewritten (a recomputation would rewrite both), and its tables show the cached numbers."""
    from sysa_core.pipeline import jobs

    run = copy_run(smoke_run, tmp_path / "run")
    sdir = run / "seed_1"
    cached = {f: (sdir / f).stat().st_mtime_ns for f in ("metrics.json", "analysis.npz")}
    params = {"profile": "smoke", "seed": 1, "overrides": [], "run_dir": str(sdir), "checkpoint": ""}
    runner = jobs.NotebookRunner()
    try:
        seconds, error = runner.execute(files.notebooks_dir() / "pca.ipynb", sdir / "pca.ipynb", params, sdir)
    finally:
        runner.close()
    assert error is None
    assert {f: (sdir / f).stat().st_mtime_ns for f in cached} == cached
    m = json.loads((sdir / "metrics.json").read_text())
    html = (sdir / "pca.html").read_text()
    assert f"{m['pr_output_l2']:.4g}" in html


def test_rerun_does_no_training_and_rewrites_only_the_index(smoke_run, tmp_path):
    run = copy_run(smoke_run, tmp_path / "run")
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in run.rglob("*") if p.is_file()}
    res = run_cli(*SMOKE_RUN[:-1], "--out", run)  # the same command, with its progress bars
    assert res.returncode == 0, res.stderr
    assert "train seed" not in res.stderr  # no training progress bar: nothing trained
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in run.rglob("*") if p.is_file()}
    assert set(after) - {run / ".sysa.lock"} == set(before) - {run / ".sysa.lock"}
    changed = sorted(p.name for p in after if p.name != ".sysa.lock" and after[p] != before.get(p))
    assert changed == ["index.html"]
    # the index still reports the invocation that made the results: its start, machine and wall times
    fact = lambda name, html: re.search(rf"<b>{name}</b></td><td>(.*?)</td>", html).group(1)  # noqa: E731
    was, now = before[run / "index.html"][1].decode(), (run / "index.html").read_text()
    assert fact("run", now) == fact("run", was)
    assert fact("wall time", now).split(" (")[0] == fact("wall time", was).split(" (")[0]
    assert "(the invocation that made these results; one started " in fact("wall time", now)
    assert "found nothing to redo" in fact("wall time", now)


def test_other_analysis_settings_reanalyse_without_retraining(smoke_run, tmp_path):
    run = copy_run(smoke_run, tmp_path / "run")
    ck = run / "seed_1" / "sys_A1_state.pth"
    ck_bytes, ck_mtime = ck.read_bytes(), ck.stat().st_mtime_ns
    res = run_cli("run", "--profile", "smoke", "--seeds", "1", "--threads", "1", "--out", run,
                  "--set", "analysis.durations_ms=50,100")
    assert res.returncode == 0, res.stderr
    assert "train seed" not in res.stderr
    assert ck.read_bytes() == ck_bytes and ck.stat().st_mtime_ns == ck_mtime
    m = json.loads((run / "seed_1" / "metrics.json").read_text())
    assert set(m["precision_by_duration"]) == {"50", "100"}
    rec = json.loads((run / "seed_1" / "pipeline.json").read_text())
    assert rec["status"] == "complete" and rec["analysis_id"] == m["analysis_id"]
    index = (run / "index.html").read_text()
    assert re.search(r"durations_ms</td><td[^>]*>50, 100<", index)  # the analysis settings used are shown


def test_force_retrains_to_the_same_bits(smoke_run, tmp_path):
    run = copy_run(smoke_run, tmp_path / "run")
    ck = run / "seed_1" / "sys_A1_state.pth"
    metrics_before = json.loads((run / "seed_1" / "metrics.json").read_text())
    mtime = ck.stat().st_mtime_ns
    res = run_cli("run", "--profile", "smoke", "--seeds", "1", "--threads", "1", "--out", run, "--force")
    assert res.returncode == 0, res.stderr
    assert "train seed 1" in res.stderr and ck.stat().st_mtime_ns != mtime
    assert json.loads((run / "seed_1" / "metrics.json").read_text()) == metrics_before


def test_a_run_at_dt_2_ms_with_a_G_per_seed(tmp_path):
    """End to end at dt = 2 ms, with the independent initialisation and a G per seed: the networks'
    own analyses are per seed, in the population report and among its predictors."""
    out = tmp_path / "dt2"
    res = run_cli("run", "--profile", "smoke", "--seeds", "1-2", "--threads", "1", "--quiet", "--out", out,
                  "--set", "model.dt_ms=2", "--set", "model.init=independent", "--set", "model.G_per_seed=true")
    assert res.returncode == 0, res.stderr
    for s in (1, 2):
        m = json.loads((out / f"seed_{s}" / "metrics.json").read_text())
        meta = json.loads((out / f"seed_{s}" / f"sys_A{s}_train.json").read_text())
        assert meta["config"]["model"]["dt_ms"] == 2
        assert m["precision_untrained"] / m["precision"] >= 5
        assert set(m["precision_by_duration"]) == {"30", "60", "100"}
        npz = np.load(out / f"seed_{s}" / "analysis.npz")
        assert npz["eval_t_ms"][1] == 2.0 and len(npz["eval_t_ms"]) == (600 + 400) // 2
        # trained at 2 ms: its test plateaus again at the paper's 1 ms step, in the metrics and the report
        assert m["fine_step_dt_ms"] == 1.0 and set(m["fine_step_hold_ms_by_duration"]) == {"30", "60", "100"}
        inspect = (out / f"seed_{s}" / "inspect.html").read_text()
        assert "The same network at a 1 ms step" in inspect and "Trained with a 2 ms Euler step" in inspect
    keys = {json.loads((out / f"seed_{s}" / "metrics.json").read_text())["network_key"] for s in (1, 2)}
    assert len(keys) == 2 and all((out / f"network-{k}.npz").exists() for k in keys)
    stats_cell = _cell_output(out / "population.ipynb", "nb.statistics_section")
    assert "spontaneous dimensionality" in stats_cell  # G differs between the seeds: a per-seed measure
    index = (out / "index.html").read_text()
    assert "every seed&#x27;s G drawn from its own seed" in index
    assert f"<th>{report.FINE_STEP}<br><small>share held, RMS / target</small></th>" in index
    assert f"<dt>{report.FINE_STEP}</dt>" in index
    assert len(re.findall(r"<td>[0-9.]+ held, [0-9.e-]+ relative</td>", index)) == 2


def _cell_output(ipynb, source_start: str) -> str:
    nb = nbformat.read(ipynb, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and c.source.startswith(source_start))
    return "\n".join(json.dumps(o.get("data", {}), ensure_ascii=False) + o.get("text", "") for o in cell.outputs)


def test_the_population_report_shows_G_once_and_no_G_only_predictor(smoke_run):
    html = (smoke_run / "population.html").read_text()
    assert html.count("G, shared by all 4 networks (2 main, 2 control)") == 1 and "<h2" in html and "The network G" in html
    stats_cell = _cell_output(smoke_run / "population.ipynb", "nb.statistics_section")
    for label in population.NETWORK_MEASURES.values():
        assert label not in stats_cell
    assert "dim_spontaneous" not in stats_cell and "I–w cosine" in stats_cell
    assert re.search(r"the seeds' k \(the PCs that carry 90 % of the variance\) is [0-9–]+ for I and [0-9–]+ for w",
                     stats_cell)
    for alt in ("Overlap of the seeds' memory subspaces", "Duration → plateau across seeds",
                "Error over time, pooled over seeds"):
        assert f'alt="{alt}' in html, alt
    answer = _cell_output(smoke_run / "population.ipynb", "nb.answer")
    assert "I–w cosine ends at" in answer and "control ensemble" in answer and "seeds" in answer
    terms = _cell_output(smoke_run / "population.ipynb", "nb.terms")  # the report defines its terms itself
    for term in ("cost onset", "trained window", "duration sweep", "census", "h units", "in range"):
        assert f"**{term}**" in terms, term


def test_reports_are_titled_small_and_say_control(smoke_run):
    for prefix, ens in (("", "main"), ("control/", "control")):
        for name in NOTEBOOKS:
            page = (smoke_run / f"{prefix}seed_2" / f"{name}.html").read_text()
            who = "control seed 2" if ens == "control" else "seed 2"
            assert f"<title>{name} · {who} · smoke</title>" in page
            text = re.sub(r"data:image/[a-z]+;base64,[A-Za-z0-9+/=]+", "", page)
            assert len(text.encode()) <= 250_000, (name, len(text))
            if ens == "control":
                assert "control seed 2 (smoke)" in page  # in the report's own heading too
    assert "<title>population · smoke · with control</title>" in (smoke_run / "population.html").read_text()


def test_the_index_is_a_front_page(smoke_run):
    html = (smoke_run / "index.html").read_text()
    for field in ("run</b>", "code</b>", "wall time</b>", "cores", "commit", "training", "ensembles</b>"):
        assert field in html, field
    for column in ("final loss", "converged", "holds", "in range", "extrapolation", "verdict", "train"):
        assert f">{column}<" in html, column
    from sysa_core import config

    terms = report.legend(config.resolve("smoke"))
    for term, text in terms.items():
        assert f"<dt>{report.html.escape(term)}</dt><dd>{report.html.escape(text)}</dd>" in html, term
    assert 'alt="Population overview' in html
    from sysa_core.analysis.mechanism import LEARNED, SETTLED_TRAVEL

    # the words the answer uses are defined, the rule with the constants it applies
    assert terms["rho"].startswith("Spearman's rank correlation") and "v'Cv" in terms["variance alignment"]
    assert (f"at least {LEARNED:g}× more precise in range" in terms["mechanism rule"]
            and f"less than {100 * SETTLED_TRAVEL:g} % of its norm" in terms["mechanism rule"])
    assert report.FINE_STEP not in html and report.FINE_STEP not in terms  # dt 1 ms: nothing to check at a finer step
    rows = re.findall(r'<tr class="(\w+)"><td class="l">(\w+)</td><td>(\d+)</td>', html)
    assert {(e, int(s)) for _, e, s in rows} == {(e, s) for e in ("main", "control") for s in SEEDS}
    order = [k for k, _, _ in rows]
    assert order == sorted(order, key=lambda k: {"failed": 0, "check": 1, "complete": 2}[k])  # failed first


# -- failures --------------------------------------------------------------------------------

def test_second_run_on_the_same_folder_refuses(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    with open(out / ".sysa.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a run in progress holds this lock
        rc = cli.main(["run", "--profile", "smoke", "--seeds", "1", "--out", str(out)])
    assert_user_error(capsys.readouterr().err, rc, str(out), "another sysa process is writing to this folder")
    assert not (out / "seed_1").exists()


def test_another_training_configuration_is_refused_before_anything_is_written(smoke_run, tmp_path, capsys):
    run = copy_run(smoke_run, tmp_path / "run")
    before = _files(run)
    rc = cli.main(["run", "--profile", "smoke", "--seeds", "1-2", "--out", str(run), "--set", "train.epochs=5"])
    assert_user_error(capsys.readouterr().err, rc, str(run), "another training configuration", "--force", "--out")
    assert _files(run) == before


@pytest.mark.parametrize("args, needle", [
    (["--profile", "fast"], "unknown profile 'fast'"),
    (["--set", "hidden=3"], "unknown key 'hidden'"),
    (["--seeds", "5-2"], "--seeds"),
    (["--seeds", "one"], "--seeds"),
    (["--set", "train.epochs=zero"], "train.epochs"),
    (["--set", "task.cost_onset_ms=100"], "cost_onset_ms"),
    (["--set", "dt_ms=200"], "dt_ms"),
])
def test_bad_run_arguments_fail_in_one_line_before_any_work(tmp_path, capsys, args, needle):
    out = tmp_path / "out"
    base = ["run", "--out", str(out)] + ([] if args[0] == "--profile" else ["--profile", "smoke"])
    rc = cli.main(base + args)
    assert_user_error(capsys.readouterr().err, rc, needle)
    assert not out.exists()  # nothing was started


def test_output_folder_that_cannot_be_created_is_refused(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc = cli.main(["run", "--profile", "smoke", "--seeds", "1", "--out", str(blocker / "sub")])
    assert_user_error(capsys.readouterr().err, rc, str(blocker / "sub"))


def test_every_figure_in_every_html_is_an_embedded_data_uri(smoke_run):
    pages = list(smoke_run.rglob("*.html"))
    assert len(pages) == 3 * len(SEEDS) * len(ENSEMBLES) + 2
    for page in pages:
        srcs = re.findall(r"<img[^>]*\ssrc=\"([^\"]+)\"", page.read_text())
        assert srcs, f"{page} has no figure"
        bad = [s[:60] for s in srcs if not s.startswith("data:image/")]
        assert not bad, f"{page}: figures not embedded: {bad}"


def test_index_links_every_report_and_shows_untrained_precision(smoke_run):
    html = (smoke_run / "index.html").read_text()
    for prefix in ENSEMBLES:
        for s in SEEDS:
            for name in NOTEBOOKS:
                assert f'href="{prefix}seed_{s}/{name}.html"' in html
    assert 'href="population.html"' in html and "untrained" in html


def test_the_index_says_how_long_after_the_window_plateaus_hold_and_keep_their_sign():
    """The index's derived columns from hand-made metrics: a 2 s trained window, a 10 s sweep, a
    test run 3 s beyond the window."""
    m = {"sweep_hold_ms_in_range_min": 2300.0, "sweep_trained_window_ms": 2000.0, "sweep_horizon_ms": 10000.0,
         "plateau_sign_kept_ms_in_range_min": 5000.0, "plateau_run_ms": 5000.0}
    assert report.beyond_window(m) == "+0.3 s"
    assert report.sign_after_window(m) == "kept to +3 s"
    assert report.beyond_window({**m, "sweep_hold_ms_in_range_min": 1800.0}) == "−0.2 s"
    assert report.beyond_window({**m, "sweep_hold_ms_in_range_min": 10000.0}) == "to the sweep's end (10 s)"
    assert report.sign_after_window({**m, "plateau_sign_kept_ms_in_range_min": 2400.0}) == "flips at +0.4 s"
    assert report.sign_after_window({**m, "plateau_sign_kept_ms_in_range_min": 1500.0}) == "flips in the window"
    assert report.sign_after_window({**m, "plateau_sign_kept_ms_in_range_min": 4997.0}) == "flips at +2.99 s"
    assert report.sign_after_window({}) == report.beyond_window({}) == "–"


def test_notebooks_that_start_while_the_prewarmed_kernel_imports_wait_for_it(smoke_run, tmp_path):
    """A run whose notebooks start at once (nothing to train, one report to repair) takes the kernel it
    started when it began, still importing then, instead of starting another: one kernel for its one
    lane, and the same verified folder."""
    run = copy_run(smoke_run, tmp_path / "run")
    (run / "seed_1" / "inspect.html").unlink()
    # every kernel of the run takes 3 s longer to start, so its first notebook surely comes first
    (tmp_path / "slow").mkdir()
    (tmp_path / "slow" / "sitecustomize.py").write_text(
        "import sys, time\nif 'ipykernel_launcher' in ' '.join(sys.orig_argv):\n    time.sleep(3)\n")
    env = dict(cli_env(), PYTHONPATH=os.pathsep.join([str(tmp_path / "slow"), *filter(None, [os.environ.get("PYTHONPATH")])]))
    proc = subprocess.Popen([sys.executable, "-m", "sysa_core", *SMOKE_RUN, "--out", str(run)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    kernels, deadline = set(), time.monotonic() + 600
    try:
        while proc.poll() is None:  # the run's own children: a kernel's forks (its git calls) have its command line
            assert time.monotonic() < deadline, "the repair did not end within 600 s"
            kernels |= {p for p in children(proc.pid) if "ipykernel_launcher" in cmdline(p)}
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate()
    assert proc.returncode == 0, err
    assert len(kernels) == 1, kernels
    assert all(chk.action == "none" for chk in verify.check_run(run).values())
