"""results.json (the schema), results.csv (one line per row and batch size), results.md."""
import csv
from pathlib import Path

from ..results import Results
from .format import human_bytes, latency_cell, pct, quality_cell, quality_header
from .pareto import conclusions
from .table import busy_machine_warning

CSV_COLUMNS = ["task", "method", "status", "error", "runtime", "kernel", "simulated", "metric", "quality",
               "quality_ci_low", "quality_ci_high", "higher_is_better", "accuracy", "n_samples", "agreement", "size_bytes", "n_params", "bits_per_param",
               "batch_size", "median_ms", "p10_ms", "p90_ms", "throughput_per_s", "peak_memory_bytes",
               "quantize_seconds"]


def write_all(results: Results, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    results.save_json(out / "results.json")
    write_csv(results, out / "results.csv")
    (out / "results.md").write_text(to_markdown(results))
    return [out / n for n in ("results.json", "results.csv", "results.md")]


def write_csv(results: Results, path: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in results.rows:
            ci = row.quality_ci or [None, None]
            fields = {**vars(row), "quality_ci_low": ci[0], "quality_ci_high": ci[1]}
            for lat in row.latency or [None]:
                writer.writerow({**fields, **(vars(lat) if lat else {})})


def to_markdown(results: Results) -> str:
    rows = results.rows
    batch_sizes = sorted({l.batch_size for r in rows for l in r.latency})
    metric = next((r.metric for r in rows if r.status == "ok"), "accuracy")
    head = ["method", "status", quality_header(metric), "agree %", "size", "bits/param",
            *[f"latency b{b} median [p10-p90]" for b in batch_sizes], "kernel"]
    lines = [f"# quantbench: {results.task['description']}", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lat = [latency_cell(r.latency_at(b)) for b in batch_sizes]
        cells = [r.label, r.status if r.status == "ok" else f"{r.status}: {r.error}", quality_cell(r), pct(r.agreement),
                 human_bytes(r.size_bytes), f"{r.bits_per_param:.2f}" if r.bits_per_param else "-", *lat,
                 r.kernel or "-"]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    warning = busy_machine_warning(results.env)
    lines += ["", *[f"- {c}" for c in conclusions(rows, batch_sizes or [1])], *([f"- **warning**: {warning}"] if warning else []),
              "", _md_env(results.env)]
    return "\n".join(lines) + "\n"



def _md_env(env: dict) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v)
    return (f"Environment: {env['cpu']} ({', '.join(env['cpu_flags']) or 'no SIMD flags found'}), "
            f"{env['threads']} threads, int8 engine {env.get('int8_engine')}, {versions}, git {env['git_sha']}.")
