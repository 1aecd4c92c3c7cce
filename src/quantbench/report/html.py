"""report.html: one self-contained file (inline SVG plots, inline CSS and JS, no network):
per (task, machine) a table and the same Pareto plots as a comparison's PNG, filters by task,
machine and method, each machine's environment, and every run with its provenance."""
import datetime
from html import escape
from pathlib import Path

from .groups import Entry, Group, MethodLine, machines
from .plot import Point, Tradeoffs, figure_svg, tradeoff_figure
from .sweep_report import group_cells, headers

STYLE = """body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:left;font-variant-numeric:tabular-nums}th{background:#f3f3f3}
section{border-top:2px solid #ddd;margin-top:1.5em}.plots svg{max-width:100%;height:auto}.fail{color:#b00}
#filters{position:sticky;top:0;background:#fff;padding:.5em 0;border-bottom:1px solid #ddd}.note{color:#666}"""

SCRIPT = """function applyFilters(){
  const want={task:document.getElementById('f-task').value,machine:document.getElementById('f-machine').value};
  const method=document.getElementById('f-method').value.toLowerCase();
  document.querySelectorAll('.f').forEach(el=>{
    let show=true;
    for(const k of ['task','machine']){if(want[k]&&el.dataset[k]!==undefined&&el.dataset[k]!==want[k])show=false;}
    if(method&&el.dataset.method!==undefined&&!el.dataset.method.toLowerCase().includes(method))show=false;
    el.style.display=show?'':'none';});
}
document.querySelectorAll('#filters select,#filters input').forEach(el=>el.addEventListener('input',applyFilters));
const query=new URLSearchParams(location.search);  // report.html?method=ptq&task=... opens filtered
for(const k of ['task','machine','method']){if(query.has(k))document.getElementById('f-'+k).value=query.get(k);}
applyFilters();"""


def write_html(groups: list[Group], entries: list[Entry], path: Path) -> Path:
    path.write_text(render_html(groups, entries))
    return path


def render_html(groups: list[Group], entries: list[Entry]) -> str:
    envs = machines(entries)
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    body = [f"<h1>quantbench report</h1><p>{len(entries)} runs, {len({e.task for e in entries})} tasks, "
            f"{len(envs) or 1} machine(s); generated {now}.</p>", _filters(entries),
            *[_group(g) for g in groups], _machines(envs), _runs(entries)]
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>quantbench report</title>"
            f"<style>{STYLE}</style></head><body>{''.join(body)}<script>{SCRIPT}</script></body></html>\n")


def _filters(entries: list[Entry]) -> str:
    def select(name: str, values) -> str:
        options = "".join(f"<option value='{escape(v)}'>{escape(v)}</option>" for v in sorted(set(values)))
        return f"<label>{name} <select id='f-{name}'><option value=''>all</option>{options}</select></label> "

    return ("<div id='filters'>" + select("task", [e.task for e in entries])
            + select("machine", [e.hardware for e in entries])
            + "<label>method <input id='f-method' placeholder='part of a method name'></label></div>")


def _group(group: Group) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers(group))
    rows = "".join(_line_row(line, cells) for line, cells in zip(group.lines, group_cells(group)))
    failed = "".join(f"<li class='fail'>{escape(e.status)}: {escape(e.run_id)}: {escape(str(e.error))}</li>"
                     for e in group.failed)
    return (f"<section class='f' data-task='{escape(group.task)}' data-machine='{escape(group.hardware)}'>"
            f"<h2>{escape(group.task)}</h2><p>on {escape(group.hardware)}</p><table><tr>{head}</tr>{rows}</table>"
            f"<p class='note'>quality: mean over seeds [lowest-highest seed; one run: its 95% CI]. "
            f"Circled points and dashed line: Pareto front.</p>"
            f"<div class='plots'>{tradeoff_svg(group)}</div><ul>{failed}</ul></section>")


def _line_row(line: MethodLine, cells: list[str]) -> str:
    return (f"<tr class='f' data-method='{escape(line.method)}'>"
            + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")


def tradeoff_svg(group: Group) -> str:
    """The figure a comparison saves as PNG, drawn for the group's lines, as inline SVG."""
    lines = [line for line in group.lines if line.quality() is not None]
    if not lines:
        return "<p class='note'>no successful runs to plot</p>"
    return figure_svg(tradeoff_figure(_line_tradeoffs(group, lines)))


def _line_tradeoffs(group: Group, lines: list[MethodLine]) -> Tradeoffs:
    batch = min(group.batch_sizes, default=None)
    points = [Point(line.method, line.entries[0].method, line.runtime, line.quality(), line.median("size_bytes"),
                    line.latency_ms(batch) if batch else None, latency_stable=not (batch and line.unstable_runs(batch)))
              for line in lines]
    return Tradeoffs(f"{group.task} on {group.hardware}", group.metric, lines[0].first("higher_is_better") is not False,
                     batch, points, interval="seed range or 95% CI")


def _machines(envs: dict[str, dict]) -> str:
    rows = "".join(
        f"<tr><td>{escape(hw)}</td><td>{escape(str(env.get('host')))}</td><td>{escape(str(env.get('cpu')))}</td>"
        f"<td>{escape(', '.join(env.get('cpu_flags') or []))}</td><td>{escape(str(env.get('gpu') or '-'))}</td>"
        f"<td>{env.get('threads')}</td><td>{escape(str(env.get('python')))}</td>"
        f"<td>{escape(_versions(env))}</td><td>{escape(str(env.get('git_sha')))}</td></tr>"
        for hw, env in envs.items())
    return ("<section><h2>Machines</h2><table><tr><th>hardware</th><th>host</th><th>cpu</th><th>flags</th>"
            f"<th>gpu</th><th>threads</th><th>python</th><th>versions</th><th>git</th></tr>{rows}</table></section>")


def _versions(env: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in (env.get("versions") or {}).items() if v)


def _runs(entries: list[Entry]) -> str:
    rows = "".join(
        f"<tr class='f' data-task='{escape(e.task)}' data-machine='{escape(e.hardware)}' "
        f"data-method='{escape(e.line)}'><td>{escape(e.run_id)}</td><td><code>{e.run_key}</code></td>"
        f"<td>{escape(e.task)}</td><td>{escape(e.hardware)}</td><td>{e.seed}</td><td>{escape(e.method)}</td>"
        f"<td class='{'' if e.ok else 'fail'}'>{escape(e.status)}</td><td>{escape(str(e.error or ''))}</td>"
        f"<td>{escape(str(e.finished_at))}</td><td>{escape(str(e.job_id or '-'))}</td></tr>" for e in entries)
    return ("<section><h2>All runs</h2><details open><summary>provenance of each run</summary><table><tr>"
            "<th>run</th><th>key</th><th>task</th><th>machine</th><th>seed</th><th>method</th><th>status</th>"
            f"<th>error</th><th>finished (UTC)</th><th>job</th></tr>{rows}</table></details></section>")
