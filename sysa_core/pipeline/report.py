"""HTML: executed notebooks to self-contained HTML (figures embedded as data URIs) and the
run's index page."""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from .. import files


def notebook_to_html(ipynb: Path, out_html: Path) -> None:
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(ipynb), as_version=4)
    exporter = HTMLExporter(template_name="lab", embed_images=True)
    body, _ = exporter.from_notebook_node(nb)
    files.write_text(out_html, body)


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}"
    return html.escape(str(v))


def _img(path: Path) -> str:
    if not path.exists():
        return "<p><em>(population figure not available)</em></p>"
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="population figure" src="data:image/png;base64,{data}" style="max-width:100%">'


STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f3f3f3}td.l{text-align:left}.failed{background:#fde2e2}.complete{background:#e6f4e6}
pre{background:#f7f7f7;padding:.8em;font-size:12px;overflow:auto;max-height:24em}
"""


def _settings_table(settings: dict) -> str:
    """A two-column table of settings, lists written as comma-separated values."""
    rows = "".join(f'<tr><td class="l">{html.escape(k)}</td><td class="l">'
                   f'{html.escape(", ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v))}</td></tr>'
                   for k, v in settings.items())
    return f"<table>{rows}</table>"


def write_index(run_dir: Path, run_cfg: dict, seed_records: list[dict], population: dict | None) -> Path:
    """index.html: configuration, a table of seeds with metrics, links and timings, and the
    population figure (embedded)."""
    run_dir = Path(run_dir)
    rows = []
    metric_cols = [("precision", "precision"), ("precision_untrained", "untrained"),
                   ("weight_correlation", "I·w cos"), ("pr_input_l1", "PR I l1"), ("pr_input_l2", "PR I l2"),
                   ("pr_output_l1", "PR w l1"), ("pr_output_l2", "PR w l2"),
                   ("dim_spontaneous", "dim spont"), ("dim_memory", "dim mem")]
    for rec in seed_records:
        s = rec["seed"]
        m = rec.get("metrics") or {}
        links = []
        for step in rec.get("steps", []):
            if step.get("html"):
                links.append(f'<a href="{html.escape(step["html"])}">{step["name"]}</a>')
            if step.get("ipynb"):
                links.append(f'<a href="{html.escape(step["ipynb"])}">.ipynb</a>')
        times = " · ".join(f'{st["name"]} {st["seconds"]:.1f}s' for st in rec.get("steps", []) if "seconds" in st)
        cells = "".join(f"<td>{_fmt(m.get(k))}</td>" for k, _ in metric_cols)
        status = rec.get("status", "?")
        err = f'<br><small>{html.escape(rec["error"])}</small>' if rec.get("error") else ""
        rows.append(f'<tr class="{status}"><td class="l">{html.escape(rec.get("ensemble", "main"))}</td>'
                    f'<td>{s}</td><td class="l">{status}{err}</td>{cells}'
                    f'<td class="l">{" ".join(links)}</td><td class="l">{times}</td></tr>')
    head = "".join(f"<th>{lab}</th>" for _, lab in metric_cols)
    pop = ""
    if population:
        links = " ".join(f'<a href="{html.escape(v)}">{k}</a>' for k, v in population.get("links", {}).items())
        pop = (f"<h2>Population</h2><p>{links} · {population.get('seconds', 0):.1f}s"
               f"{' · ' + html.escape(population['error']) if population.get('error') else ''}</p>"
               f"{_img(run_dir / 'population.png')}")
    main = [r for r in seed_records if r.get("ensemble", "main") == "main"]
    n_ok = sum(r.get("status") == "complete" for r in main)
    ctl = [r for r in seed_records if r.get("ensemble") == "control"]
    ctl_note = (f" The control ensemble ({sum(r.get('status') == 'complete' for r in ctl)} of {len(ctl)} complete) "
                f"uses the same seeds with I and w initialised independently.") if ctl else ""
    doc = f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>sysa run: {html.escape(str(run_cfg.get('profile')))}</title>
<style>{STYLE}</style></head><body>
<h1>System A run <code>{html.escape(str(run_cfg.get('profile')))}</code></h1>
<p>{n_ok} of {len(main)} seeds complete.{ctl_note} Precision is the mean plateau MSE over the test durations
(lower is better); "untrained" is the same network before training.</p>
<table><tr><th>ensemble</th><th>seed</th><th>status</th>{head}<th>reports</th><th>time</th></tr>
{''.join(rows)}</table>
{pop}
<h2>Analysis settings</h2>{_settings_table(run_cfg.get("config", {}).get("analysis", {}))}
<h2>Configuration</h2><pre>{html.escape(json.dumps(run_cfg, indent=2))}</pre>
</body></html>"""
    path = run_dir / "index.html"
    files.write_text(path, doc)
    return path
