"""Pareto fronts and the plain-language conclusion drawn from the rows."""
from ..results import Row
from .format import generation_batch
from .speed import decode_claim, speed_claim, stable_at


def pareto_front(points: dict[str, tuple[float, float]]) -> list[str]:
    """Names whose (cost, quality) no other point beats: lower-or-equal cost and
    higher-or-equal quality, strictly better in one."""
    def dominated(name):
        c, q = points[name]
        return any(c2 <= c and q2 >= q and (c2 < c or q2 > q) for n2, (c2, q2) in points.items() if n2 != name)

    return sorted((n for n in points if not dominated(n)), key=lambda n: points[n][0])


def ok_rows(rows: list[Row]) -> list[Row]:
    return [r for r in rows if r.status == "ok"]


def fp32_baseline(rows: list[Row], runtime: str) -> Row | None:
    """The fp32 row measured on ``runtime``: what every other row there is compared with."""
    return next((r for r in ok_rows(rows) if r.is_baseline and r.runtime == runtime), None)


def size_front(rows: list[Row]) -> list[str]:
    return pareto_front({r.label: (r.size_bytes, r.oriented_quality()) for r in ok_rows(rows)})


def latency_front(rows: list[Row], batch_size: int) -> list[str]:
    """The front of the rows whose cell at ``batch_size`` is stable (speed is concluded from stable cells only)."""
    return pareto_front({r.label: (r.latency_at(batch_size).median_ms, r.oriented_quality())
                         for r in ok_rows(rows) if stable_at(r, batch_size)})


def latency_front_line(rows: list[Row], batch_size: int, metric: str) -> str:
    """The conclusion on the latency front at ``batch_size``, naming the rows left out as not stable."""
    left_out = [r.label for r in ok_rows(rows) if r.latency_at(batch_size) and not stable_at(r, batch_size)]
    what = f"Pareto front, {metric} vs latency at batch {batch_size}"
    front = latency_front(rows, batch_size)
    if not front:
        return f"{what}: not stated: no stable latency cell; rerun on an idle machine." if left_out else f"{what}: -."
    if left_out:
        what += f", stable cells only (left out, not stable: {', '.join(left_out)})"
    return f"{what}: {', '.join(front)}."


def conclusions(rows: list[Row], batch_sizes: list[int]) -> list[str]:
    """Sentences derived only from the measured numbers."""
    metric = next((r.metric for r in ok_rows(rows)), "quality")
    lines = [f"Pareto front, {metric} vs size: {', '.join(size_front(rows))}."]
    lines += [latency_front_line(rows, b, metric) for b in batch_sizes]
    for row in ok_rows(rows):
        base = fp32_baseline(rows, row.runtime)
        if base and row is not base:
            lines.append(_versus_fp32(row, base, batch_sizes[0]))
            lines += [c for c in [decode_claim(row, base, generation_batch(rows) or 1)] if c]
    lines += _across_runtimes(rows, batch_sizes[0])
    lines += [f"{r.label}: {r.status} ({r.error})" for r in rows if r.status != "ok"]
    return lines


def _across_runtimes(rows: list[Row], batch_size: int) -> list[str]:
    """With several runtimes, speed-ups against each runtime's own fp32 hide that one fp32 may be
    much faster than another: compare the fastest row with the fastest fp32 too (stable cells only;
    these ratios are not paired)."""
    timed = [r for r in ok_rows(rows) if stable_at(r, batch_size)]
    fp32 = sorted((r for r in timed if r.is_baseline), key=lambda r: r.latency_at(batch_size).median_ms)
    if len(fp32) < 2:
        return []
    fastest_fp32, slowest_fp32 = fp32[0], fp32[-1]
    best = min(timed, key=lambda r: r.latency_at(batch_size).median_ms)
    ratio = slowest_fp32.latency_at(batch_size).median_ms / fastest_fp32.latency_at(batch_size).median_ms
    gain = fastest_fp32.latency_at(batch_size).median_ms / best.latency_at(batch_size).median_ms
    return [f"Across runtimes at batch {batch_size}: fp32 on {fastest_fp32.runtime} is {ratio:.2f}x faster than on "
            f"{slowest_fp32.runtime}, so speed-ups are per runtime; the fastest row, {best.label}, is {gain:.2f}x "
            f"faster than the fastest fp32 ({fastest_fp32.label})."]


def _versus_fp32(row: Row, base: Row, batch_size: int) -> str:
    text = f"{row.label}: {base.size_bytes / row.size_bytes:.1f}x smaller"
    if row.details.get("fp32_kernel_only"):
        text += ", runs the fp32 kernel (no low-bit kernel on this runtime)"
    text += speed_claim(row, base, batch_size)
    return text + f", {quality_change(row, base)}, agrees with fp32 on {100 * row.agreement:.1f}%."


def quality_change(row: Row, base: Row) -> str:
    """'accuracy -0.3 pts (within the 95% CIs)' or 'perplexity 27.6 -> 31.1 (+12.6%)'."""
    if row.metric == "accuracy":
        change = f"accuracy {100 * (row.quality - base.quality):+.1f} pts"
    else:
        change = f"{row.metric} {base.quality:.4g} -> {row.quality:.4g} ({100 * (row.quality / base.quality - 1):+.1f}%)"
    if not (row.quality_ci and base.quality_ci):
        return change
    overlap = row.quality_ci[1] >= base.quality_ci[0] and base.quality_ci[1] >= row.quality_ci[0]
    return change + (" (within the 95% CIs)" if overlap else " (outside the 95% CIs)")
