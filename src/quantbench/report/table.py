"""The terminal table, with what the columns mean and what the numbers say."""
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..results import Results, Row
from .format import human_bytes, human_ms, pct, quality_cell, quality_header
from .pareto import conclusions, fp32_baseline

EXPLANATION = (
    "quality: the task's metric on the test split with its 95% interval (accuracy: Wilson); "
    "agree: % of test predictions equal to fp32's; "
    "size: bytes of the saved artifact (x = times smaller than fp32); bits/p: file bits per parameter; "
    "latency: median [p10-p90] per batch; thr: samples/s at the largest batch; mem: peak RSS growth to "
    "load + run the largest batch in a fresh process; prep: seconds spent quantizing/calibrating/fine-tuning; "
    "kernel: what executed the row. Every number is measured on the saved artifact, reloaded."
)


def render(results: Results, console: Console | None = None) -> None:
    console = console or Console(width=max(Console().width, 150))
    rows = results.rows
    batch_sizes = [l.batch_size for l in next((r.latency for r in rows if r.latency), [])]
    console.print(_table(results, batch_sizes))
    console.print(escape(EXPLANATION), style="dim")
    for row in rows:
        console.print(f"[dim]kernel[/dim] {row.label}: {row.kernel or '-'}"
                      + (" [yellow](simulated)[/yellow]" if row.simulated else ""))
    for note in _notes(rows):
        console.print(f"[dim]note[/dim] {note}")
    for line in conclusions(rows, batch_sizes or [1]):
        console.print(f"- {line}")


def _table(results: Results, batch_sizes: list[int]) -> Table:
    env = results.env
    n = next((r.n_samples for r in results.rows if r.n_samples), None)
    title = (f"{results.task['description']}, n={n} test samples  |  "
             f"{env['cpu']}, {env['threads']} threads, torch {env['versions']['torch']}")
    table = Table(title=title, title_justify="left")
    metric = next((r.metric for r in results.rows if r.status == "ok"), "accuracy")
    for col in ["method", quality_header(metric), "agree %", "size", "bits/p", *[f"lat b{b}" for b in batch_sizes],
                "thr/s", "mem", "prep s"]:
        table.add_column(col, overflow="fold")
    for row in results.rows:
        table.add_row(*_cells(row, fp32_baseline(results.rows, row.runtime), batch_sizes))
    return table


def _cells(row: Row, base: Row | None, batch_sizes: list[int]) -> list[str]:
    if row.status != "ok":
        return [row.label, f"[red]{row.status}[/red]: {row.error}", *[""] * (len(batch_sizes) + 6)]
    ratio = f" ({base.size_bytes / row.size_bytes:.1f}x)" if base and row is not base else ""
    lat = [_latency_cell(row.latency_at(b)) for b in batch_sizes]
    largest = row.latency_at(max(batch_sizes)) if batch_sizes else None
    return [row.label, quality_cell(row), pct(row.agreement),
            human_bytes(row.size_bytes) + ratio, f"{row.bits_per_param:.1f}", *lat,
            f"{largest.throughput_per_s:,.0f}" if largest else "-", human_bytes(row.peak_memory_bytes),
            f"{row.quantize_seconds:.2f}"]


def _latency_cell(lat) -> str:
    return "-" if lat is None else f"{human_ms(lat.median_ms)} [{human_ms(lat.p10_ms)}-{human_ms(lat.p90_ms)}]"


def _notes(rows: list[Row]) -> list[str]:
    return [f"{r.label}: {n}" for r in rows for n in r.notes]
