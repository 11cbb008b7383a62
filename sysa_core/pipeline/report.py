"""HTML: executed notebooks to self-contained reports (sysa's nbconvert template: nothing fetched
from the network, figures embedded with alt text, a compact stylesheet), and the run's index,
its front page."""
from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

from .. import files
from . import prose, store
from ..analysis.mechanism import LEARNED, SETTLED_TRAVEL
from ..analysis import stepsize
from ..analysis.plateau import HOLD_TOLERANCE, sweep_durations
from ..config import Config
from ..training import CONVERGENCE_FALL, CONVERGENCE_WINDOW

TEMPLATES = Path(__file__).resolve().parent / "templates"

def legend(cfg: Config) -> dict:
    """What the index's abbreviations, columns and verdicts mean, for the run's configuration."""
    inside = [d for d in cfg.analysis.durations_ms if cfg.in_trained_range(d)]
    outside = [d for d in cfg.analysis.durations_ms if not cfg.in_trained_range(d)]
    ms = lambda ds: ", ".join(f"{d:g}" for d in ds) + " ms" if ds else "none"  # noqa: E731
    window = cfg.trained_window_ms / 1000
    return {
        "G": f"the fixed random recurrent matrix (gain g = {cfg.model.g_G:g}); only I and w are trained",
        "N": f"the number of units ({cfg.model.hidden_size} here)",
        "τ": f"the units' time constant ({cfg.model.tau_ms:g} ms here)",
        "I, w": "the trained input weights and readout",
        "D": f"a pulse's labelled duration: {cfg.pulse_rule_text}",
        "PC": "principal component of the firing rates",
        "a.u.": "arbitrary units: the output's scale is set by the task's target (threshold × pulse duration)",
        "MSE": "mean squared error of the output against its target",
        "main": "the original's seed-compatible initialisation (I = √N·w at the start)"
                + ("; every seed shares one G" if not cfg.model.G_per_seed else "; a G per seed"),
        "control": "the same seeds with I and w drawn independently (the same G)",
        "verdict": "works: the network does the task (it converged, holds its in-range plateaus through the "
                   f"trained window, and its in-range precision is at least {LEARNED:g}× better than before training"
                   + (f", all at the {cfg.model.dt_ms:g} ms step it was trained with" if stepsize.applies(cfg) else "")
                   + "); "
                   "check: one of these fails (not converged, plateaus not held, barely learned); failed: the seed's "
                   "chain stopped (its error shown)",
        "beyond the window": "in the duration sweep, how long the shortest-lived in-range plateau stays within "
                             f"{100 * HOLD_TOLERANCE:g} % of its target after the trained window ends (negative: it "
                             "leaves before the window ends)",
        "sign after": "whether the in-range test outputs keep their target's sign after the trained window, to the "
                      f"end of the test run ({cfg.analysis.eval_extra_ms / 1000:g} s more), or when the first one flips "
                      "(the sign only: an output may leave its band long before)",
        **({FINE_STEP: f"the test trials simulated again with the paper's {stepsize.FINE_DT_MS:g} ms Euler step (the "
                       f"same onsets and pulses in ms; the network was trained at {cfg.model.dt_ms:g} ms): the share of "
                       f"the in-range plateaus that stay within {100 * HOLD_TOLERANCE:g} % of their target through the "
                       f"trained window, and their relative error (as in range, relative). {stepsize.FINE_DT_MS:g} ms is "
                       f"itself a discretisation, but a {cfg.model.dt_ms / stepsize.FINE_DT_MS:g} times finer one: what "
                       "holds only at the coarse step rests on that step's own errors"}
           if stepsize.applies(cfg) else {}),
        "converged": f"the loss of a fixed set of training trials fell by less than {100 * CONVERGENCE_FALL:g} % "
                     f"of its mean over the last {100 * CONVERGENCE_WINDOW:g} % of the training steps (its trend: the Theil–Sen line, the "
                     "median slope between every two measurements, which a few upward excursions do not pull)"
                     + ("; under a learning rate that decays to 0 this says the loss settled, not that more steps could "
                        "not lower it" if cfg.train.lr_schedule != "constant" else ""),
        "final loss": "that loss at the end of training (MSE on the evaluated steps)",
        "holds": f"the share of the test pulses inside the trained range whose output stays within {100 * HOLD_TOLERANCE:g} % of its "
                 f"target from the cost onset to the end of the trained window ({window:g} s)",
        "in range": f"precision (plateau MSE, a.u.², lower is better) over the test durations inside the trained "
                    f"range {cfg.trained_range_text} ({ms(inside)})",
        "in range, relative": "the typical in-range error as a share of the level to hold: the root of each "
                              "plateau MSE over its target, root-mean-squared over the in-range durations",
        "extrapolation": f"the same over the test durations outside it ({ms(outside)})",
        "precision": "the original's precision: the mean over every test duration, extrapolation included",
        "untrained ×": "how many times better the in-range precision is than the same network's before training",
        "I–w cos": "cosine of the input weights I and the readout w",
        "mechanism": "how the plateau is held: attractor (the state settles), transient (the state keeps moving "
                     "while the output holds: the readout is nearly blind to its motion; the rule cannot tell this from a "
                     "limit cycle), or no memory",
        "train": "training time of the model; models trained together as one computation split its time evenly",
        "cost onset": f"the time from which the output is scored against its target ({cfg.task.cost_onset_ms / 1000:g} s "
                      "into a trial)",
        "trained window": f"from the cost onset to the end of a training trial ({window:g} s)",
        "duration sweep": f"one test trial per pulse duration of {_sweep_text(cfg)}: the plateau against duration, and "
                          f"how long each stays within {100 * HOLD_TOLERANCE:g} % of its target",
        "census": f"the search for G's fixed points from {cfg.analysis.census_starts} starting states, once per G",
        "fixed point, slow (moving) point": "a state where the autonomous flow stops (to the search's tolerance), or where it is "
                                   "slowest nearby without stopping",
        "h units": "the units of the state h (a unit's rate is tanh(h))",
        "spont.": "spontaneous: the network's activity without input",
        "Holm": "Holm's step-down adjustment of p-values for the number of tests made together",
        "rho": "Spearman's rank correlation over the networks; its two-sided p from permutations of the ranks (every "
               "one enumerated at small n)",
        "PCs, memory PCs": "principal components of the firing rates: of the spontaneous activity, or of the memory "
                           "window's activity",
        "variance alignment": "v'Cv / (λ_max |v|²) of a vector v (I or w) and a covariance C of the rates: how much "
                              "variance lies along v, as a share of the leading PC's (1 along the leading PC)",
        "relative state speed": "|dh/dt| / |h| over the memory window, in 1/s: the share of its norm the state moves "
                                "per second",
        "PCs the readout needs": "the fewest memory PCs from which the readout reproduces its own output within "
                                 f"{100 * HOLD_TOLERANCE:g} % of the target at every step of the in-range memory trials",
        "mechanism rule": f"attractor when the network is at least {LEARNED:g}× more precise in range than untrained "
                          f"and its state travels less than {100 * SETTLED_TRAVEL:g} % of its norm over the memory "
                          f"window, transient when it travels more; no memory below {LEARNED:g}×",
    }


def _sweep_text(cfg: Config) -> str:
    """'10–400 ms (every 10 ms)': the duration sweep's pulses."""
    ds = sweep_durations(cfg)
    step = min((b - a for a, b in zip(ds, ds[1:])), default=0)
    return f"{ds[0]:g}–{ds[-1]:g} ms" + (f" (every {step:g} ms)" if step else "")


def notebook_to_html(ipynb: Path, out_html: Path, title: str | None = None, code: bool = False) -> None:
    """Render an executed notebook with sysa's template; `title` is the page's title. A report to
    share shows the prose and the outputs only (no code cells, no In/Out prompts); `code` shows the
    code cells too (without prompts). The executed notebook beside it holds the code either way."""
    # imported here: the notebooks' kernels import this module and never render (seconds to import)
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(ipynb), as_version=4)
    exporter = HTMLExporter(template_name="sysa", extra_template_basedirs=[str(TEMPLATES)], exclude_input=not code,
                            exclude_input_prompt=True, exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title or Path(ipynb).stem}})
    files.write_text(out_html, body)


def page_title(notebook: str, seed: int | None, profile: str, ensemble: str = "main") -> str:
    """'<notebook> · seed <s> · <profile>', the control ensemble marked: 'inspect · control seed 2 · quick'."""
    who = "" if seed is None else f" · {'control ' if ensemble == 'control' else ''}seed {seed}"
    return f"{notebook}{who} · {profile}"


def _fmt(v, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return html.escape(str(v))


def _img(path: Path, alt: str) -> str:
    if not path.exists():
        return "<p><em>(figure not available)</em></p>"
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}" style="max-width:100%">'


def verdict(rec: dict) -> str:
    """One short phrase on a seed: "works", "check: <what fails>" or "failed: <error>" (the numbers
    behind it are the index's columns)."""
    if rec.get("status") != "complete":
        return f"failed: {rec.get('error') or rec.get('status')}"
    found = prose.problems(rec.get("metrics") or {})
    return "check: " + ", ".join(found) if found else "works"


def beyond_window(m: dict) -> str:
    """How long the shortest-lived in-range plateau of the duration sweep stays within its band after
    the trained window ends ("+0.3 s", "−0.2 s" when it leaves before, "to the end (10 s)")."""
    shortest, window, horizon = (m.get(k) for k in ("sweep_hold_ms_in_range_min", "sweep_trained_window_ms",
                                                    "sweep_horizon_ms"))
    if shortest is None or window is None:
        return "–"
    if horizon is not None and shortest >= horizon:
        return f"to the sweep's end ({horizon / 1000:g} s)"
    return f"{(shortest - window) / 1000:+.2g} s".replace("-", "−")


def sign_after_window(m: dict) -> str:
    """Whether the in-range test outputs keep their target's sign after the trained window, to the
    end of the test run: "kept to +3 s", or the earliest flip after the window's end ("flips at
    +0.4 s", rounded down to 10 ms, so that a flip 3 ms before the run's end does not read as its end;
    "flips in the window" when before it)."""
    first, window, run = (m.get(k) for k in ("plateau_sign_kept_ms_in_range_min", "sweep_trained_window_ms",
                                             "plateau_run_ms"))
    if first is None or window is None or run is None:
        return "–"
    if first >= run:
        return f"kept to +{(run - window) / 1000:.3g} s"
    if first < window:
        return "flips in the window"
    return f"flips at +{math.floor((first - window) / 10) / 100:g} s"


def _miniature(cfg: Config) -> str:
    """The line that says a run is not the paper's configuration, and how it differs ('' for the paper's)."""
    text = cfg.miniature_text()
    return f'<p class="miniature"><b>{html.escape(text)}</b></p>' if text else ""


def answer_box(answer: dict | None, population: dict | None) -> str:
    """The index's opening box: the study's questions answered at this run's n (the population
    report's answer), or why there is none yet."""
    if not answer:
        why = ("the population report failed: " + population["error"] if population and population.get("error")
               else "no population report yet")
        return f'<section class="answer"><h2>The answer</h2><p>None: {html.escape(why)}.</p></section>'
    n = f"{answer['n_main']} main" + (f" and {answer['n_control']} control" if answer.get("n_control") else "")
    items = "".join(f"<li>{html.escape(line)}</li>" for line in answer["lines"])
    return (f'<section class="answer"><h2>The answer, from this run ({n} networks)</h2>'
            '<p><b>The study\'s questions:</b> do the networks do the task; is the I–w correlation learned or '
            'inherited from the initialisation; does precision depend on how I and w align with the principal '
            'components of the activity, or on the I–w correlation; and how is the memory held? Each point below is '
            'computed from this run and claims no more than its n supports; the '
            f'<a href="population.html">population report</a> holds the evidence.</p><ul>{items}</ul></section>')


STYLE = """
body{font-family:system-ui,sans-serif;margin:0;color:#1d1d1d;line-height:1.45}
main{max-width:1250px;margin:0 auto;padding:1.5em 2em}
table{border-collapse:collapse;font-size:13px;margin:.5em 0}th,td{border:1px solid #ddd;padding:3px 7px;text-align:right}
th{background:#f4f5f7}td.l,th.l{text-align:left}tr.failed{background:#fde2e2}tr.check{background:#fff6dd}
dl{display:grid;grid-template-columns:max-content auto;gap:.15em 1em;font-size:13px}dt{font-weight:600}dd{margin:0}
.wide{overflow-x:auto}.facts{font-size:14px}.facts td{border:none;padding:1px 10px 1px 0;text-align:left}
.answer{background:#eef4fb;border:1px solid #b9d0ea;border-radius:6px;padding:.2em 1.2em .6em;margin:.8em 0}
.answer li{margin:.3em 0}
.miniature{background:#fff6dd;border:1px solid #e8d28a;border-radius:6px;padding:.5em 1em}
"""

_COLUMNS = [("final_loss", "final loss"), ("converged", "converged"), ("plateau_held_trained_window", "holds"),
            ("precision_trained_range", "in range"), ("relative_error_trained_range", "in range, relative"),
            ("precision_extrapolation", "extrapolation"),
            ("precision", "precision"), ("weight_correlation", "I–w cos"), ("memory_mechanism", "mechanism")]


def fine_step_cell(m: dict) -> str:
    """The in-range plateaus at the paper's step (analysis.stepsize): '0.5 held, 0.13 relative' (a
    share and an RMS / target); '–' for a model without that check."""
    held, rel = m.get("fine_step_held_trained_window"), m.get("fine_step_relative_error_trained_range")
    if held is None or rel is None:
        return "–"
    return f"{held:.3g} held, {rel:.3g} relative"


#: computed columns after _COLUMNS: (heading, function of the metrics)
_DERIVED = [("beyond the window", beyond_window), ("sign after", sign_after_window)]
#: the index's column for models trained with a step coarser than the paper's
FINE_STEP = f"at a {stepsize.FINE_DT_MS:g} ms step"
#: the units under each column's name
_UNITS = {"final loss": "MSE, a.u.²", "holds": "share", "in range": "MSE, a.u.²", "in range, relative": "RMS / target",
          "extrapolation": "MSE, a.u.²", "precision": "MSE, a.u.²", FINE_STEP: "share held, RMS / target"}


def _row(rec: dict, derived: list) -> str:
    m = rec.get("metrics") or {}
    status = rec.get("status", "?")
    v = verdict(rec)
    klass = "failed" if status != "complete" else ("check" if v.startswith("check") else "complete")
    ratio = m.get("improvement_over_untrained")
    better = f"{ratio:.0f}×" if ratio is not None else "–"
    links = " ".join(f'<a href="{html.escape(st["html"])}">{st["name"]}</a>' for st in rec.get("steps", [])
                     if st.get("html"))
    cells = "".join(f"<td>{_fmt(m.get(k))}</td>" for k, _ in _COLUMNS)
    cells += "".join(f"<td>{html.escape(f(m)) if m else '–'}</td>" for _, f in derived)
    train = rec.get("train_seconds")
    return (f'<tr class="{klass}"><td class="l">{html.escape(rec.get("ensemble", "main"))}</td><td>{rec["seed"]}</td>'
            f'<td class="l">{html.escape(v)}</td>{cells}<td>{better}</td>'
            f'<td>{_train_time(train, rec.get("trained_together") or 1)}</td><td class="l">{links}</td></tr>')


def _train_time(seconds: float | None, together: int) -> str:
    """A model's training time: its share of the batch it was trained in, when it had company."""
    if seconds is None:
        return "–"
    return f"{_seconds(seconds)}" + (f" (its share: {together} models trained together)" if together > 1 else "")


def _seconds(v: float | None) -> str:
    """Seconds for a reader: 0.04 s as '< 0.1 s', then one decimal below a minute, then whole seconds."""
    if v is None:
        return "?"
    if v < 0.1:
        return "< 0.1 s"
    return f"{v:.1f} s" if v < 60 else f"{v:.0f} s"


def write_index(run_dir: Path, run_info: dict, seed_records: list[dict], population: dict | None) -> Path:
    """index.html, the run's front page: what ran where and when, how long it took, one row per
    seed (failed seeds first) with its verdict, the population figure, every report linked, a
    legend for every abbreviation, and the configuration."""
    run_dir = Path(run_dir)
    order = sorted(seed_records, key=lambda r: (r.get("status") == "complete",
                                                 not verdict(r).startswith("check"), r.get("ensemble") != "main",
                                                 r["seed"]))
    coarse = any("fine_step_dt_ms" in (r.get("metrics") or {}) for r in seed_records)
    derived = _DERIVED + ([(FINE_STEP, fine_step_cell)] if coarse else [])
    head = "".join(f"<th>{lab}" + (f'<br><small>{_UNITS[lab]}</small>' if lab in _UNITS else "") + "</th>"
                   for lab in [lab for _, lab in _COLUMNS] + [lab for lab, _ in derived])
    rows = "".join(_row(r, derived) for r in order)
    main = [r for r in seed_records if r.get("ensemble", "main") == "main"]
    ctl = [r for r in seed_records if r.get("ensemble") == "control"]
    ok = lambda rs: sum(r.get("status") == "complete" for r in rs)  # noqa: E731
    works = lambda rs: sum(r.get("status") == "complete" and verdict(r).startswith("works") for r in rs)  # noqa: E731
    t = run_info.get("timings", {})
    cv = run_info.get("code_version", {})
    commit = (cv.get("git_commit") or "unknown")[:12] + (" (with local changes)" if cv.get("git_dirty") else "")
    pop = ""
    if population:
        links = " · ".join(f'<a href="{html.escape(v)}">{k}</a>' for k, v in population.get("links", {}).items())
        err = f" · failed: {html.escape(population['error'])}" if population.get("error") else ""
        pop = (f"<h2>Population</h2><p>{links}{err}</p>"
               f"{_img(run_dir / 'population.png', 'Population overview: in-range precision, I–w cosine and plateau against duration, both ensembles')}")
    cfg = Config.from_manifest(run_info)
    terms = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in legend(cfg).items())
    profile = html.escape(str(run_info.get("profile")))
    facts = [
        ("run", f"{html.escape(str(run_info.get('started', '?')))} on {html.escape(str(run_info.get('host', '?')))} "
                f"({html.escape(str(run_info.get('cpu', '?')))}, {run_info.get('cores', '?')} cores)"),
        ("code", f"sysa {html.escape(str(cv.get('sysa', '?')))}, commit {html.escape(commit)}, torch "
                 f"{html.escape(str(cv.get('torch', '?')))}"),
        ("wall time", f"{_seconds(t.get('total_s'))} in all: training {_seconds(t.get('train_s'))} (with its start-up "
                      f"and the checkpoints and plots it writes), network "
                      f"analysis {_seconds(t.get('network_s'))}, notebooks {_seconds(t.get('notebooks_s'))}, "
                      f"population {_seconds(t.get('population_s'))} "
                      + (f"(the invocation that made these results; one started {html.escape(str(run_info['rechecked']))} "
                         "found nothing to redo)" if run_info.get("rechecked") else
                         "(this invocation; finished seeds are not redone)")),
        ("ensembles", html.escape(run_info.get("ensembles_text", ""))),
        ("seeds", f"{works(main)} of {len(main)} main networks work ({ok(main)} complete)"
                  + (f"; control: {works(ctl)} of {len(ctl)} work ({ok(ctl)} complete)" if ctl else "")),
    ]
    facts_html = "".join(f"<tr><td><b>{k}</b></td><td>{v}</td></tr>" for k, v in facts)
    settings = run_info.get("config", {}).get("analysis", {})
    doc = f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>index · {profile}</title><style>{STYLE}</style></head><body><main>
<h1>System A · profile <code>{profile}</code></h1>
{_miniature(cfg)}
{answer_box(store.read_answer(run_dir) if population else None, population)}
<table class="facts">{facts_html}</table>
<h2>Seeds</h2>
<div class="wide"><table><tr><th>ensemble</th><th>seed</th><th class="l">verdict</th>{head}<th>untrained ×</th>
<th>train</th><th class="l">reports</th></tr>
{rows}</table></div>
{pop}
<h2>Legend</h2><dl>{terms}</dl>
<h2>Analysis settings</h2>{_settings_table(settings)}
<h2>Configuration</h2><pre>{html.escape(json.dumps({k: v for k, v in run_info.items() if k != "timings"}, indent=2))}</pre>
</main></body></html>"""
    path = run_dir / "index.html"
    files.write_text(path, doc)
    return path


def _settings_table(settings: dict) -> str:
    """A two-column table of settings, lists written as comma-separated values."""
    rows = "".join(f'<tr><td class="l">{html.escape(k)}</td><td class="l">'
                   f'{html.escape(", ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v))}</td></tr>'
                   for k, v in settings.items())
    return f"<table>{rows}</table>"
