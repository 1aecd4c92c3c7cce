"""results.json (the schema), results.csv (one line per row and batch size), results.md."""
import csv
from pathlib import Path
from typing import Any, Iterable

from ..results import Results, Row
from .format import human_bytes, latency_cell, pct, quality_cell, quality_header
from .pareto import conclusions
from .table import busy_machine_warning

GENERATION_COLUMNS = ["generation_status", "generation_reason", "prompt_tokens", "decode_tokens",
                      "prefill_tokens_per_s", "prefill_median_ms", "prefill_p10_ms", "prefill_p90_ms", "ttft_median_ms",
                      "ttft_p10_ms", "ttft_p90_ms", "decode_tokens_per_s", "decode_step_median_ms",
                      "decode_step_p10_ms", "decode_step_p90_ms", "decode_bound_ms_per_token",
                      "decode_fraction_of_bound", "generation_repeats", "generation_stable",
                      "generation_unstable_reason"]
"""Prefill/decode columns (``Row.generation``), on the line of their decode batch size; the entry's
``status``, ``reason``, ``repeats``, ``stable`` and ``unstable_reason`` take the ``generation_`` prefix."""
CSV_COLUMNS = ["task", "method", "status", "error", "runtime", "kernel", "simulated", "metric", "quality",
               "quality_ci_low", "quality_ci_high", "higher_is_better", "accuracy", "n_samples", "agreement", "size_bytes", "n_params", "bits_per_param",
               "batch_size", "median_ms", "p10_ms", "p90_ms", "throughput_per_s", "stable", "unstable_reason",
               "ratio_to_baseline", "bound_ms", "bound_by", "fraction_of_bound", "peak_memory_bytes",
               "quantize_seconds", *GENERATION_COLUMNS]


def write_all(results: Results, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    results.save_json(out / "results.json")
    write_csv(results, out / "results.csv")
    (out / "results.md").write_text(to_markdown(results))
    return [out / n for n in ("results.json", "results.csv", "results.md")]


OUTPUT_FILES = ("results.json", "results.csv", "results.md", "tradeoffs.png")


def write_outputs(results: Results, out: Path) -> list[Path]:
    """Everything a comparison writes into its ``out`` folder (what ``CompareSpec(out=...)`` and the
    CLI's ``--out`` both give): results.json/csv/md and the trade-off plot when a row is ok."""
    from .plot import plot_tradeoffs

    return write_all(results, out) + [p for p in [plot_tradeoffs(results, out / "tradeoffs.png")] if p]


def write_csv(results: Results, path: Path) -> None:
    write_csv_lines(path, CSV_COLUMNS, (line for row in results.rows for line in csv_lines(row)))


def csv_lines(row: Row | None, ids: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One line per batch size of latency or of prefill/decode (one line for a row with neither, or
    without a row): the row's fields, its interval as two columns, then ``ids``, which name where the
    row comes from; a "not measured" generation entry without a batch size is on every line."""
    ci = (row.quality_ci if row else None) or [None, None]
    fields = {**(vars(row) if row else {}), **(ids or {}), "quality_ci_low": ci[0], "quality_ci_high": ci[1]}
    latency = {lat.batch_size: vars(lat) for lat in (row.latency if row else [])}
    generation = {g.get("batch_size"): _generation_fields(g) for g in (row.generation if row else [])}
    everywhere = generation.pop(None, {})
    sizes = sorted(latency.keys() | generation.keys()) or [None]
    return [{**fields, **everywhere, **latency.get(b, {"batch_size": b}), **generation.get(b, {})} for b in sizes]


def _generation_fields(entry: dict[str, Any]) -> dict[str, Any]:
    renamed = {"status", "reason", "stable", "unstable_reason", "repeats"}
    return {f"generation_{k}" if k in renamed else k: v for k, v in entry.items() if k != "noise"}


def write_csv_lines(path: Path, columns: list[str], lines: Iterable[dict[str, Any]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(lines)


def to_markdown(results: Results) -> str:
    rows = results.rows
    batch_sizes = sorted({l.batch_size for r in rows for l in r.latency})
    metric = next((r.metric for r in rows if r.status == "ok"), "accuracy")
    head = ["method", "status", quality_header(metric), "agree %", "size", "bits/param",
            *[f"latency b{b} median [p10-p90]" for b in batch_sizes], "kernel"]
    lines = [f"# quantbench: {results.task['description']}", "",
             *markdown_table(head, [_md_cells(r, batch_sizes) for r in rows])]
    warning = busy_machine_warning(results.env)
    lines += ["", *[f"- {c}" for c in conclusions(rows, batch_sizes or [1])],
              *([f"- **warning**: {warning}"] if warning else []), "", _md_env(results.env)]
    return "\n".join(lines) + "\n"


def markdown_table(head: list[str], rows: list[list[str]]) -> list[str]:
    """The lines of a markdown table; a '|' inside a cell is written '/'."""
    return [_md_line(head), "|" + "---|" * len(head), *map(_md_line, rows)]


def _md_line(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "/") for c in cells) + " |"


def _md_cells(r: Row, batch_sizes: list[int]) -> list[str]:
    return [r.label, r.status if r.status == "ok" else f"{r.status}: {r.error}", quality_cell(r), pct(r.agreement),
            human_bytes(r.size_bytes), f"{r.bits_per_param:.2f}" if r.bits_per_param else "-",
            *[latency_cell(r.latency_at(b)) for b in batch_sizes], r.kernel or "-"]


def _md_env(env: dict) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v)
    return (f"Environment: {env['cpu']} ({', '.join(env['cpu_flags']) or 'no SIMD flags found'}), "
            f"{env['threads']} threads, int8 engine {env.get('int8_engine')}, {versions}, git {env['git_sha']}.")
