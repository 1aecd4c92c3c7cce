"""``quantbench report STORE...``: per-task comparison tables in the terminal, and report.html,
report.md and report.csv; stores from several machines merge, grouped by hardware."""
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..errors import UserError
from ..results import BASELINE
from ..spec import spec_field
from .files import CSV_COLUMNS, csv_lines, markdown_table, write_csv_lines
from .format import UNSTABLE_MARK, human_bytes, human_ms, pct, quality_header, quality_value
from ..sweep.ingest import pending_results
from .groups import Entry, Group, MethodLine, group_entries, load_entries

RUN_COLUMNS = ["run_id", "run_key", "task_label", "hardware", "seed", "finished_at", "job_id"]


@dataclass
class ReportOptions:
    out: str | None = spec_field(None, "folder for report.html/.md/.csv (default: the first store's folder)", "DIR")
    task: str | None = spec_field(None, "only tasks whose label contains this text", "TEXT")
    method: str | None = spec_field(None, "only methods whose label contains this text", "TEXT")
    machine: str | None = spec_field(None, "only machines whose hardware label contains this text", "TEXT")


def report_stores(stores: list[Path], options: ReportOptions) -> list[Path]:
    from .html import write_html

    entries = [e for e in load_entries(stores) if _selected(e, options)]
    if not entries:
        raise UserError("no runs in the store(s) match the filters")
    groups = group_entries(entries)
    print_groups(groups)
    for folder in (s for s in stores if s.is_dir() and pending_results(s / "results")):
        print(f"note: {pending_results(folder / 'results')} finished runs in {folder} are not in the store yet; "
              f"'quantbench sweep status {folder}' collects them")
    out = Path(options.out) if options.out else (stores[0] if stores[0].is_dir() else stores[0].parent)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.md").write_text(to_markdown(groups))
    write_runs_csv(entries, out / "report.csv")
    write_html(groups, entries, out / "report.html")
    return [out / "report.html", out / "report.md", out / "report.csv"]


def line_cells(line: MethodLine, base: MethodLine | None, batch_sizes: list[int], metric: str) -> list[str]:
    """method, runs, quality [range], agreement, size (x smaller), bits/param, latency per batch, kernel."""
    runs = f"{len(line.rows)}/{len(line.entries)}"
    q = line.quality()
    quality = "-" if q is None else f"{quality_value(metric, q[0])} [{quality_value(metric, q[1])}-" \
                                    f"{quality_value(metric, q[2])}]"
    size, base_size = line.median("size_bytes"), base.median("size_bytes") if base else None
    ratio = f" ({base_size / size:.1f}x)" if size and base_size and line is not base else ""
    bits = line.mean("bits_per_param")
    return [line.method, runs, quality, pct(line.mean("agreement")), human_bytes(size) + ratio,
            f"{bits:.2f}" if bits else "-", *[latency_text(line, b) for b in batch_sizes],
            line.first("kernel") or "-"]


def headers(group: Group) -> list[str]:
    return ["method", "ok/runs", quality_header(group.metric).replace("95% CI", "range"), "agree %", "size",
            "bits/p", *[f"lat b{b}" for b in group.batch_sizes], "kernel"]


def base_line(group: Group, line: MethodLine) -> MethodLine | None:
    """The fp32 line to compare ``line`` with: on the same runtime where there is one."""
    fp32 = [other for other in group.lines if other.entries[0].method == BASELINE and other.rows]
    return next((b for b in fp32 if b.runtime == line.runtime), fp32[0] if fp32 else None)


def group_cells(group: Group) -> list[list[str]]:
    """The cells of each line of the group's table, in the order of ``group.lines``."""
    return [line_cells(line, base_line(group, line), group.batch_sizes, group.metric) for line in group.lines]


def print_groups(groups: list[Group], console: Console | None = None) -> None:
    console = console or Console(width=max(Console().width, 150))
    for group in groups:
        table = Table(title=f"{group.task}  |  {group.hardware}", title_justify="left")
        for name in headers(group):
            table.add_column(name, overflow="fold")
        for cells in group_cells(group):
            table.add_row(*map(escape, cells))
        console.print(table)
        for e in group.failed:
            console.print(f"[red]{e.status}[/red] {escape(e.run_id)}: {escape(str(e.error))}")
    console.print(escape("quality: mean over seeds [lowest-highest seed; a single run shows its 95% CI]; "
                         "latency: median over seeds of each run's median; (!)k/n: k of n runs' cells were unstable "
                         "(timed while something else used the CPU, or widely spread)"), style="dim")


def latency_text(line: MethodLine, batch_size: int) -> str:
    """The median over runs, with the unstable mark and how many runs' cells were unstable."""
    unstable = line.unstable_runs(batch_size)
    mark = f" {UNSTABLE_MARK}{unstable}/{len(line.rows)}" if unstable else ""
    return human_ms(line.latency_ms(batch_size)) + mark


def to_markdown(groups: list[Group]) -> str:
    lines = ["# quantbench sweep report", ""]
    for group in groups:
        lines += [f"## {group.task} on {group.hardware}", "", *markdown_table(headers(group), group_cells(group)),
                  *[f"- {e.status}: {e.run_id}: {e.error}" for e in group.failed], ""]
    return "\n".join(lines)


def write_runs_csv(entries: list[Entry], path: Path) -> None:
    """One line per run and batch size, every stored number."""
    columns = RUN_COLUMNS + [c for c in CSV_COLUMNS if c != "task"]
    write_csv_lines(path, columns, (line for e in entries for line in csv_lines(e.row, _run_ids(e))))


def _run_ids(e: Entry) -> dict:
    """Which run, where and when; the store's status and error win over the row's."""
    return {"run_id": e.run_id, "run_key": e.run_key, "task_label": e.task, "hardware": e.hardware, "seed": e.seed,
            "finished_at": e.finished_at, "job_id": e.job_id, "method": e.method, "runtime": e.runtime, "status": e.status,
            "error": e.error}


def _selected(e: Entry, options: ReportOptions) -> bool:
    checks = [(options.task, e.task), (options.method, e.line), (options.machine, e.hardware)]
    return all(want.lower() in have.lower() for want, have in checks if want)
