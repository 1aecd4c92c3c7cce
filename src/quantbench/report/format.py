"""Human units: bytes never print as '0.00 MB'; quality printed the way its metric reads."""


def human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}" if n / scale < 100 else f"{n / scale:.0f} {unit}"
    return f"{n} B"


def human_ms(ms: float | None) -> str:
    if ms is None:
        return "-"
    if ms < 1:
        return f"{ms * 1000:.0f} us"
    return f"{ms:.3g} ms" if ms < 100 else f"{ms:.0f} ms"


def latency_cell(lat) -> str:
    """'28 [27-31] us': median [p10-p90], in the median's unit (compact enough for one table line)."""
    if lat is None:
        return "-"
    unit, scale = ("us", 1000.0) if lat.median_ms < 1 else ("ms", 1.0)

    def number(ms: float) -> str:
        value = ms * scale
        return f"{value:.0f}" if unit == "us" or value >= 100 else f"{value:.3g}"

    return f"{number(lat.median_ms)} [{number(lat.p10_ms)}-{number(lat.p90_ms)}] {unit}{unstable_mark(lat.stable)}"


def unstable_mark(stable: bool | None) -> str:
    """' (!)' after a number whose cell was marked unstable, else nothing."""
    return f" {UNSTABLE_MARK}" if stable is False else ""


def throughput_cell(lat) -> str:
    """'341,260 (!)': samples/s of a latency cell, marked when the cell was unstable."""
    if lat is None:
        return "-"
    return f"{lat.throughput_per_s:,.0f}{unstable_mark(lat.stable)}"


def tokens_per_s_cell(entry: dict | None, key: str) -> str:
    """'41.0 (!)': a generation entry's tokens/s under ``key``, marked when the entry was unstable."""
    if entry is None or entry.get(key) is None:
        return "-"
    value = entry[key]
    return (f"{value:,.0f}" if value >= 100 else f"{value:.3g}") + unstable_mark(entry.get("stable"))


def generation_batch(rows) -> int | None:
    """The decode batch size tables show: the smallest one any row measured (batch 1 by default)."""
    sizes = [g["batch_size"] for r in rows for g in r.generation if g.get("status") == "measured"]
    return min(sizes) if sizes else None


def generation_headers(rows, batch_size: int | None) -> list[str]:
    """'pp512 tok/s', 'tg128 tok/s' with the prompt and decode lengths measured (none without entries)."""
    entry = next((r.generation_at(batch_size) for r in rows if batch_size and r.generation_at(batch_size)), None)
    if entry is None:
        return []
    suffix = "" if batch_size == 1 else f" b{batch_size}"
    return [f"pp{entry['prompt_tokens']} tok/s{suffix}", f"tg{entry['decode_tokens']} tok/s{suffix}"]


UNSTABLE_MARK = "(!)"
"""After a latency cell that was timed while something else used the CPU, or spread too widely."""


def bound_cell(latencies) -> str:
    """'12% / 64%': each cell's bound as a share of its median (100% = at the physical bound)."""
    shares = [f"{100 * lat.fraction_of_bound:.0f}%" if lat and lat.fraction_of_bound is not None else "-"
              for lat in latencies]
    return " / ".join(shares) if shares else "-"


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def quality_value(metric: str, value: float | None) -> str:
    """Accuracy as a percentage, other metrics as numbers with 4 significant digits."""
    if value is None:
        return "-"
    return pct(value) if metric == "accuracy" else f"{value:.4g}"


def quality_cell(row) -> str:
    text = quality_value(row.metric, row.quality)
    if row.quality_ci:
        lo, hi = (quality_value(row.metric, v) for v in row.quality_ci)
        text += f" [{lo}-{hi}]"
    return text


def quality_header(metric: str) -> str:
    return "acc % [95% CI]" if metric == "accuracy" else f"{metric} [95% CI]"
