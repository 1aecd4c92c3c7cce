"""The terminal table, with what the columns mean and what the numbers say."""
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..measure.noise import unstable_kinds
from ..results import Results, Row
from .format import (UNSTABLE_MARK, bound_cell, generation_batch, generation_headers, human_bytes, latency_cell, pct,
                     quality_cell, quality_header, throughput_cell, tokens_per_s_cell)
from .pareto import conclusions, fp32_baseline

EXPLANATION = (
    "quality: the task's metric on the test split with its 95% interval (accuracy: Wilson); "
    "agree: % of test predictions equal to fp32's; "
    "size: bytes of the saved artifact (x = times smaller than fp32); bits/p: file bits per parameter; "
    "latency: median [p10-p90] per batch, timed interleaved with the runtime's fp32 row; "
    f"{UNSTABLE_MARK}: unstable (other processes used the CPU, the host ran below its full speed, ran faster "
    "later in the run or in earlier runs, the cell's visits disagreed, or the samples spread; see the notes; "
    "each cell's full reason is its unstable_reason in results.json/csv, --out); "
    "bound: the cell's physical bound (weights read at the measured bandwidth, or its multiply-adds at the "
    "measured GEMM peak of its dtype) as a % of its median, per batch; thr: samples/s at the largest batch; "
    "mem: peak RSS growth to load + run the largest batch in a fresh process; prep: seconds spent quantizing/calibrating/fine-tuning; "
    "kernel: what executed the row. Every number is measured on the saved artifact, reloaded."
)
GENERATION_EXPLANATION = (
    "ppP tok/s: prompt processing, batch x P prompt tokens / median prefill time; tgD tok/s: token generation, "
    "batch x D tokens / median time of D greedy decode steps with the KV cache (no early stop); at the smallest "
    "decode batch (the others in results.json/csv)."
)


def render(results: Results, console: Console | None = None) -> None:
    console = console or Console(width=max(Console().width, 150))
    rows = results.rows
    batch_sizes = [l.batch_size for l in next((r.latency for r in rows if r.latency), [])]
    console.print(_table(results, batch_sizes))
    console.print(escape(EXPLANATION), style="dim")
    if generation_batch(rows) is not None:
        console.print(escape(GENERATION_EXPLANATION), style="dim")
    for row in rows:
        console.print(f"[dim]kernel[/dim] {row.label}: {row.kernel or '-'}"
                      + (" [yellow](simulated)[/yellow]" if row.simulated else ""))
    console.print(f"[dim]fp32[/dim] {fp32_origin(results.task)}")
    if run_memory_line(results):
        console.print(f"[dim]run[/dim] {run_memory_line(results)}")
    for note in results.task.get("notes") or []:  # the task's and the comparison's (e.g. merged duplicate methods)
        console.print(f"[dim]note[/dim] {escape(note)}")
    for note in _notes(rows):
        console.print(f"[dim]note[/dim] {note}")
    for line in conclusions(rows, batch_sizes or [1]):
        console.print(f"- {line}")
    for warning in (busy_machine_warning(results.env), contended_bounds_warning(results.env)):
        if warning:
            console.print(f"[yellow]warning[/yellow] {escape(warning)}")


def fp32_origin(task: dict) -> str:
    """Where the baseline came from: trained now (how long), cached, or the user's/pretrained."""
    info = task.get("fp32_training") or {}
    source = info.get("source", "trained")
    if source == "trained":
        return (f"baseline trained for {info.get('epochs')} epochs in {info.get('seconds', 0):.1f} s "
                f"(early stopping on validation; best val accuracy {info.get('val_accuracy') or 0:.3f})")
    return f"baseline not trained in this run: {source}"


def run_memory_line(results: Results) -> str | None:
    """The whole run's wall time and peak RSS, against the fp32 weights' bytes and with its largest phase."""
    run = results.env.get("run") or {}
    phases = run.get("phases") or []
    if not run.get("peak_rss_bytes") or not phases:
        return None
    seconds = sum(p["seconds"] or 0 for p in phases)
    weights = next((4 * r.n_params for r in results.rows if r.n_params), None)
    top = max(phases, key=lambda p: p["peak_rss_bytes"] or 0)
    against = f" = {run['peak_rss_bytes'] / weights:.2f}x the fp32 weights ({human_bytes(weights)})" if weights else ""
    return (f"{seconds:.0f} s; peak RSS {human_bytes(run['peak_rss_bytes'])}{against}, highest in '{top['name']}' "
            f"(every phase's time and peak in results.json env.run)")


def busy_machine_warning(env: dict) -> str | None:
    """Latencies measured while other processes compete for the cores are not trustworthy."""
    load, cores = (env.get("load_average") or [0])[0], env.get("cpu_count") or 1
    if load > 0.75 * cores:
        return (f"the machine was busy when this run started (1-min load average {load:.1f} on {cores} cores): "
                "latencies are unreliable; rerun when it is idle")
    return None


def contended_bounds_warning(env: dict) -> str | None:
    """Bounds from bandwidth or GEMM probes that ran while the cores were in use are too slow."""
    contended = {probe: why for host in env.get("bounds") or [] for probe, why in (host.get("contended") or {}).items()}
    if not contended:
        return None
    probe, why = next(iter(contended.items()))
    return (f"the host's {', '.join(contended)} probe(s) ran while the machine was busy ({probe}: {why}): the "
            "bound % column overstates how close cells come to the host's real bound; rerun when it is idle")


def _table(results: Results, batch_sizes: list[int]) -> Table:
    env = results.env
    n = next((r.n_samples for r in results.rows if r.n_samples), None)
    title = (f"{results.task['description']}, n={n} test samples  |  "
             f"{env['cpu']}, {env['threads']} threads, torch {env['versions']['torch']}")
    table = Table(title=title, title_justify="left")
    metric = next((r.metric for r in results.rows if r.status == "ok"), "accuracy")
    decode_batch = generation_batch(results.rows)
    generation = generation_headers(results.rows, decode_batch)
    for col in ["method", quality_header(metric), "agree %", "size", "bits/p", *[f"lat b{b}" for b in batch_sizes],
                "bound %", "thr/s", *generation, "mem", "prep s"]:
        table.add_column(col, overflow="fold", no_wrap=col == "method")
    for row in results.rows:
        cells = _cells(row, fp32_baseline(results.rows, row.runtime), batch_sizes)
        table.add_row(*cells[:-2], *_generation_cells(row, decode_batch, generation), *cells[-2:])
    return table


def _generation_cells(row: Row, batch_size: int | None, headers: list[str]) -> list[str]:
    if not headers:
        return []
    entry = row.generation_at(batch_size)
    return [tokens_per_s_cell(entry, "prefill_tokens_per_s"), tokens_per_s_cell(entry, "decode_tokens_per_s")]


def _cells(row: Row, base: Row | None, batch_sizes: list[int]) -> list[str]:
    if row.status != "ok":
        return [row.label, f"[red]{row.status}[/red]: {row.error}", *[""] * (len(batch_sizes) + 7)]
    ratio = f" ({base.size_bytes / row.size_bytes:.1f}x)" if base and row is not base else ""
    lat = [latency_cell(row.latency_at(b)) for b in batch_sizes]
    largest = row.latency_at(max(batch_sizes)) if batch_sizes else None
    return [row.label, quality_cell(row), pct(row.agreement),
            human_bytes(row.size_bytes) + ratio, f"{row.bits_per_param:.1f}", *lat,
            bound_cell([row.latency_at(b) for b in batch_sizes]), throughput_cell(largest),
            human_bytes(row.peak_memory_bytes),
            f"{row.quantize_seconds:.2f}"]


def _notes(rows: list[Row]) -> list[str]:
    return [f"{r.label}: {n}" for r in rows for n in r.notes] + _unstable_notes(rows) + _generation_notes(rows)


def _unstable_notes(rows: list[Row]) -> list[str]:
    """Per row, its unstable latency cells and the kinds of reason they give (each cell's reason in full is its
    ``unstable_reason`` in results.json/csv: under a CPU hog, the full reasons of a 3-row run filled 40 lines)."""
    notes = []
    for r in rows:
        unstable = [l for l in r.latency if l.stable is False]
        kinds = dict.fromkeys(kind for l in unstable for kind in unstable_kinds(l.unstable_reason))
        if unstable:
            notes.append(f"{r.label}: latency at batch {', '.join(str(l.batch_size) for l in unstable)} unstable: "
                         f"{', '.join(kinds)}")
    return notes


def _generation_notes(rows: list[Row]) -> list[str]:
    """Prefill/decode entries that were unstable or not measured, with why."""
    notes = []
    for r in rows:
        for g in r.generation:
            at = f" at batch {g['batch_size']}" if g.get("batch_size") else ""
            if g.get("status") != "measured":
                notes.append(f"{r.label}: prefill/decode speed{at} not measured: {escape(str(g.get('reason')))}")
            elif g.get("stable") is False:
                notes.append(f"{r.label}: prefill/decode speed{at} unstable: "
                             f"{', '.join(unstable_kinds(g.get('unstable_reason')))}")
    return notes
