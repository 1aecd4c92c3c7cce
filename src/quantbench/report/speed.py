"""What may be said about a row's speed against its baseline: a ratio only from two stable cells
whose paired interval excludes 1, and a slowdown always with its reason, from the row's own data."""
from ..results import Row


def speed_claim(row: Row, base: Row, batch_size: int) -> str:
    """', 2.31x faster [2.20-2.43] than fp32 at batch 1', ', no measurable difference ...' or
    ', speed unstable ... (why)'."""
    mine, theirs = row.latency_at(batch_size), base.latency_at(batch_size)
    if not (mine and theirs):
        return ""
    where = f"than fp32 at batch {batch_size}"
    unstable = [f"{r.label}: {(l.unstable_reason or 'stability not measured').split(';')[0]}"
                for r, l in ((row, mine), (base, theirs)) if l.stable is not True]
    if unstable:
        return (f", speed vs fp32 at batch {batch_size} not stated: unstable, rerun on an idle machine "
                f"({'; '.join(unstable)})")
    if mine.ratio_to_baseline is None or not mine.ratio_ci:
        return f", speed vs fp32 at batch {batch_size} not stated: not timed paired with it"
    lo, hi = mine.ratio_ci
    if lo <= 1 <= hi:
        return f", no measurable difference in speed {where} (time ratio {mine.ratio_to_baseline:.2f}, 95% CI {lo:.2f}-{hi:.2f})"
    if hi < 1:
        return f", {1 / mine.ratio_to_baseline:.2f}x faster [{1 / hi:.2f}-{1 / lo:.2f}] {where}"
    reasons = "; ".join(slowdown_reasons(row, base, batch_size))
    return f", {mine.ratio_to_baseline:.2f}x slower [{lo:.2f}-{hi:.2f}] {where} ({reasons})"


def slowdown_reasons(row: Row, base: Row, batch_size: int) -> list[str]:
    """Why ``row`` is slower than ``base`` at ``batch_size``, from what the row recorded: layers kept
    dense, a compute-bound batch where its kernel reaches a small share of its dtype's peak,
    activation casts, no low-bit kernel here."""
    mine, theirs = row.latency_at(batch_size), base.latency_at(batch_size)
    reasons = []
    if row.details.get("fp32_kernel_only"):
        reasons.append("no low-bit kernel on this runtime: it runs the dense kernel on weights dequantized at load")
    dense = row.details.get("dense_lowbit_layers") or []
    if dense and not row.details.get("fp32_kernel_only"):
        reasons.append(f"layers that fell back to dense: {', '.join(dense)}")
    dtype, base_dtype = row.details.get("compute_dtype"), base.details.get("compute_dtype")
    if mine.bound_by == "compute" and mine.fraction_of_bound is not None:
        versus = (f", fp32 reaches {100 * theirs.fraction_of_bound:.0f}% of its bound"
                  if theirs.fraction_of_bound is not None else "")
        reasons.append(f"compute-bound at batch {batch_size}: its {dtype} kernel reaches {100 * mine.fraction_of_bound:.0f}% "
                       f"of the {dtype} GEMM bound ({mine.median_ms:.3g} ms against {mine.bound_ms:.3g} ms){versus}")
    if dtype and base_dtype and dtype not in (base_dtype, "int8") and base_dtype == "float32":
        reasons.append(f"activations are cast float32 -> {dtype} and back around its kernels")
    return reasons or ["no recorded cause: its kernel is slower than the dense one here "
                       f"({_share(mine)} of its bound, fp32 {_share(theirs)})"]


def _share(lat) -> str:
    return "-" if lat.fraction_of_bound is None else f"{100 * lat.fraction_of_bound:.0f}%"


def stable_at(row: Row, batch_size: int) -> bool:
    lat = row.latency_at(batch_size)
    return bool(lat and lat.stable)


def decode_claim(row: Row, base: Row, batch_size: int) -> str | None:
    """'rtn: decode 2.10x faster than fp32 at batch 1 (tg128: 41.0 vs 19.5 tok/s)', stated only from two
    stable measured entries whose decode-step p10-p90 ranges do not overlap; else why not. None when
    neither row has prefill/decode entries (tasks that do not generate)."""
    if not (row.generation or base.generation):
        return None
    where = f"decode speed vs fp32 at batch {batch_size} not stated"
    mine, theirs = row.generation_at(batch_size), base.generation_at(batch_size)
    missing = [f"{r.label}: {_why_not_measured(r)}" for r, g in ((row, mine), (base, theirs)) if g is None]
    if missing:
        return f"{row.label}: {where}: not measured ({'; '.join(missing)})"
    unstable = [f"{r.label}: {(g.get('unstable_reason') or 'stability not measured').split(';')[0]}"
                for r, g in ((row, mine), (base, theirs)) if g.get("stable") is not True]
    if unstable:
        return f"{row.label}: {where}: unstable, rerun on an idle machine ({'; '.join(unstable)})"
    speeds = (f"tg{mine['decode_tokens']}: {mine['decode_tokens_per_s']:.1f} vs {theirs['decode_tokens_per_s']:.1f} "
              "tok/s")
    if mine["decode_step_p90_ms"] >= theirs["decode_step_p10_ms"] and theirs["decode_step_p90_ms"] >= mine["decode_step_p10_ms"]:
        return f"{row.label}: no clear difference in decode speed from fp32 at batch {batch_size} ({speeds}; " \
               "the p10-p90 ranges of their decode steps overlap)"
    ratio = mine["decode_tokens_per_s"] / theirs["decode_tokens_per_s"]
    faster = f"{ratio:.2f}x faster" if ratio >= 1 else f"{1 / ratio:.2f}x slower"
    return f"{row.label}: decode {faster} than fp32 at batch {batch_size} ({speeds})"


def _why_not_measured(row: Row) -> str:
    return next((g.get("reason") for g in row.generation if g.get("status") != "measured"), None) or "no entry at this batch"
