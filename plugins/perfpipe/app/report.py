"""One self-contained HTML summary per pipeline run: decision path, per-stage checks, charts, k6 report links.

Charts are inline SVG built from each stage's rollup (perfpipe.app.rollup), so the file opens anywhere.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfpipe.app.influx import influxdb_hook
from perfpipe.app.measurements import ANALYSIS_FIELDS
from perfpipe.app import rollup
from perfpipe.app.outcomes import read_conclusion, stage_results
from perfpipe.app.report_paths import run_report_dir
from perfpipe.core.model.plan import StageResult

if TYPE_CHECKING:  # an Airflow hook: importing Airflow (~4 s) waits until someone makes a hook
    from perfpipe.core.hooks.influxdb import InfluxDBHook

REPORT_FILE = "pipeline-report.html"
# (title, unit) of the charts, in order.
SERIES = (("VUs", ""), ("Request rate", "req/s"), ("p95 latency", "ms"), ("Error rate", ""))


def time_series(hook: InfluxDBHook, stage: StageResult) -> dict[str, list[tuple[int, float]]]:
    """A stage's charts from its rollup (perfpipe.app.rollup: at most ~600 buckets, whatever the run's length)."""

    state = rollup.read_state(hook, stage.testid) if stage.testid else None
    buckets = rollup.read_rollup(hook, stage.testid)[0] if state else []
    bucket_s = state[0] if state else 1
    values = {
        "VUs": [(b.t, b.vus) for b in buckets],
        "Request rate": [(b.t, b.requests / bucket_s) for b in buckets],
        "p95 latency": [(b.t, b.p95_ms) for b in buckets],
        "Error rate": [(b.t, b.error_rate) for b in buckets if b.requests],
    }
    return {title: [(int(t * 1000), float(v)) for t, v in points if v is not None]
            for title, points in values.items()}


def svg_chart(title: str, unit: str, values: list[tuple[int, float]], width: int = 360, height: int = 140) -> str:
    if not values:
        return f'<div class="chart"><b>{html.escape(title)}</b><p class="muted">no data</p></div>'
    t0, t1 = values[0][0], values[-1][0]
    peak = max(v for _, v in values) or 1.0
    pad = 28

    def xy(t: int, v: float) -> str:
        x = pad + (width - pad - 4) * ((t - t0) / ((t1 - t0) or 1))
        y = height - 18 - (height - 30) * (v / peak)
        return f"{x:.1f},{y:.1f}"

    points = " ".join(xy(t, v) for t, v in values)
    label = f"max {peak:.3g} {unit}".strip()
    return (f'<div class="chart"><b>{html.escape(title)}</b><svg width="{width}" height="{height}" '
            f'role="img" aria-label="{html.escape(title)}">'
            f'<line x1="{pad}" y1="{height - 18}" x2="{width}" y2="{height - 18}" class="axis"/>'
            f'<polyline points="{points}" class="line"/>'
            f'<text x="{pad}" y="12">{html.escape(label)}</text>'
            f'<text x="{pad}" y="{height - 4}">0 s</text>'
            f'<text x="{width - 40}" y="{height - 4}">{(t1 - t0) / 1000:.0f} s</text></svg></div>')


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape("" if value is None else str(value))


def stage_section(hook: InfluxDBHook, stage: StageResult, report_dir: Path) -> str:
    rows = "".join(
        f'<tr class="{html.escape(c["result"])}"><td>{_cell(c["name"])}</td><td>{_cell(c["value"])}</td>'
        f'<td>{_cell(c["op"])} {_cell(c["threshold"])}</td><td>{_cell(c.get("warn"))}</td>'
        f'<td>{_cell(c["result"]).upper()}</td></tr>' for c in stage.checks)
    metrics = " · ".join(f"{name} {_cell(stage.metrics.get(name))}" for name in
                         ("p95_ms", "p99_ms", "avg_ms", "error_rate", "rps", "requests", "vus_max", "duration_s"))
    analysis = analysis_section(stage)
    series = time_series(hook, stage)
    charts = "".join(svg_chart(title, unit, series[title]) for title, unit in SERIES)
    k6_report = stage.report
    link = ""
    if k6_report:
        href = os.path.relpath(k6_report, report_dir) if os.path.isabs(k6_report) else k6_report
        link = f'<a href="{html.escape(href)}">k6 HTML report</a>'
    complete = ("complete" if stage.metrics.get("metrics_complete") else
                f'<b class="fail">INCOMPLETE</b> ({_cell(stage.metrics.get("samples_stored"))} of '
                f'{_cell(stage.metrics.get("samples_expected"))})')
    return (f'<section><h2>{html.escape(stage.test_type)} — <span class="{html.escape(stage.verdict)}">'
            f'{html.escape(stage.verdict.upper())}</span></h2>'
            f'<p>{metrics}</p><p>samples: {complete} · testid <code>{html.escape(stage.testid)}</code> · {link}</p>'
            f'<table><tr><th>check</th><th>value</th><th>threshold</th><th>warn</th><th>result</th></tr>{rows}'
            f'</table>{analysis}<div class="charts">{charts}</div></section>')


def analysis_section(stage: StageResult) -> str:
    """The test type's own figures (breaking point, recovery, drift, chaos phases)."""

    figures = " · ".join(f"{name} <b>{_cell(stage.metrics[name])}</b>" for name in ANALYSIS_FIELDS
                         if stage.metrics.get(name) is not None)
    details = stage.analysis
    phases = details.get("phases") or {}
    rows = "".join(f"<tr><td>{html.escape(name)}</td><td>{_cell(p.get('seconds'))}</td><td>{_cell(p.get('requests'))}"
                   f"</td><td>{_cell(p.get('error_rate'))}</td><td>{_cell(p.get('p95_ms'))}</td>"
                   f"<td>{_cell(p.get('rps'))}</td></tr>" for name, p in phases.items())
    table = ("" if not rows else
             f"<p>chaos scenario <b>{_cell(details.get('scenario'))}</b>: {_cell(details.get('action'))} "
             f"{_cell(details.get('component'))}</p><table><tr><th>phase</th><th>seconds</th><th>requests</th>"
             f"<th>error rate</th><th>p95 ms</th><th>req/s</th></tr>{rows}</table>")
    note = f'<p class="muted">{_cell(details["note"])}</p>' if details.get("note") else ""
    if not (figures or table or note):
        return ""
    return f"<h3>analysis</h3><p>{figures}</p>{table}{note}"


STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}
.pass{color:#1a7f37}.warn{color:#9a6700}.fail,.inconclusive,.aborted{color:#cf222e}
tr.fail td{background:#ffebe9}tr.warn td{background:#fff8c5}.muted{color:#888}
.path span{display:inline-block;padding:.3em .7em;margin:.2em;border-radius:1em;background:#eee}
.path span.outcome{background:#ddf4ff;font-weight:bold}.charts{display:flex;flex-wrap:wrap;gap:1em}
.chart{border:1px solid #ddd;padding:.4em}.axis{stroke:#999}.line{fill:none;stroke:#0969da;stroke-width:1.5}
text{font-size:10px;fill:#555}"""


def render(hook: InfluxDBHook, dag_id: str, run_id: str, report_dir: Path) -> str:
    stages = stage_results(hook, dag_id, run_id)
    conclusion = read_conclusion(hook, dag_id, run_id)
    path = conclusion["path"] if conclusion else [s.test_type for s in stages]
    outcome = conclusion["outcome"] if conclusion else "no outcome (infrastructure error: see the task logs)"
    path_html = " → ".join(f'<span class="{"outcome" if step == path[-1] and conclusion else ""}">'
                           f'{html.escape(step)}</span>' for step in path)
    explanation = html.escape(conclusion["explanation"]) if conclusion else ""
    target = html.escape((conclusion or {}).get("target") or (stages[0].target if stages else ""))
    sections = "".join(stage_section(hook, s, report_dir) for s in stages)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>perfpipe {html.escape(run_id)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(dag_id)}: {html.escape(outcome)}</h1>"
            f"<p>run <code>{html.escape(run_id)}</code> · target <b>{target}</b></p>"
            f'<p class="path">{path_html}</p><p>{explanation}</p>{sections}</body></html>')


def write_pipeline_report(dag_id: str, run_id: str) -> Path:
    report_dir = run_report_dir(dag_id, run_id)
    report_dir.mkdir(parents=True, exist_ok=True)
    path = report_dir / REPORT_FILE
    path.write_text(render(influxdb_hook(), dag_id, run_id, report_dir), encoding="utf-8")
    return path
