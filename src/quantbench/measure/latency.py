"""Latency as a distribution: warm-up, fixed threads, repeat until the median is stable; and paired
with a baseline: the two interleaved in alternating rounds, so that a burst of load hits both and the
ratio of their times is measured round by round, with a confidence interval."""
import math
import statistics
import time
from dataclasses import dataclass

from .runner import Runner


@dataclass
class Latency:
    """One cell: a batch size's timing. The fields after ``throughput_per_s`` are filled by the
    pipeline (docs/results-schema.md): stability and the noise seen, the paired ratio to the
    baseline, and the physical bound."""

    batch_size: int
    median_ms: float
    p10_ms: float
    p90_ms: float
    repeats: int
    throughput_per_s: float
    stable: bool | None = None
    unstable_reason: str | None = None
    noise: dict | None = None
    ratio_to_baseline: float | None = None
    ratio_ci: list[float] | None = None
    baseline_median_ms: float | None = None
    rounds: int | None = None
    bound_ms: float | None = None
    bound_by: str | None = None
    fraction_of_bound: float | None = None

    @property
    def spread(self) -> float:
        return self.p90_ms / self.p10_ms if self.p10_ms > 0 else math.inf


def measure_latency(run: Runner, batch, batch_size: int, warmup: int = 5, min_repeats: int = 30,
                    max_seconds: float = 2.0, rel_tol: float = 0.02, min_samples: int = 5,
                    min_seconds: float = 0.0) -> Latency:
    """Time ``run(batch)`` after ``warmup`` calls; stop once at least ``min_seconds`` are spent and
    the median of all samples moves less than ``rel_tol`` when ``min_repeats`` more are added, or
    once ``max_seconds`` are spent (with at least ``min_samples``), so slow models are timed in
    bounded time."""
    start = time.perf_counter()
    deadline = start + max_seconds
    _warm_up(run, batch, warmup, deadline - 0.75 * max_seconds)
    samples: list[float] = []
    previous = None
    while True:
        for _ in range(min_repeats):
            samples.append(_time_once(run, batch))
            if len(samples) >= min_samples and time.perf_counter() > deadline:
                return summarize(samples, batch_size)
        median = statistics.median(samples)
        settled = previous is not None and abs(median - previous) <= rel_tol * previous
        if settled and time.perf_counter() - start >= min_seconds:
            return summarize(samples, batch_size)
        previous = median


def measure_paired(run: Runner, batch, base_run: Runner, base_batch, batch_size: int, warmup: int = 5,
                   max_seconds: float = 2.0, min_seconds: float = 0.0, rel_tol: float = 0.02, min_rounds: int = 5,
                   round_seconds: float = 0.005) -> Latency:
    """Time ``run(batch)`` interleaved with ``base_run(base_batch)``: rounds of a few calls of each, the
    order alternating, until the 95% interval of the ratio (geometric mean of the rounds' median
    ratios) is within ``rel_tol`` and ``min_seconds`` are spent, or both sides' ``max_seconds`` are
    (with at least ``min_rounds``). The row's distribution comes from its own samples."""
    start = time.perf_counter()
    deadline = start + 2 * max_seconds
    for fn, x in ((base_run, base_batch), (run, batch)):
        _warm_up(fn, x, warmup, start + 0.25 * max_seconds)
    slowest = max(_time_once(run, batch), _time_once(base_run, base_batch))
    calls = min(max(math.ceil(round_seconds / max(slowest, 1e-7)), 1), 50)
    mine, theirs, log_ratios = [], [], []
    while True:
        blocks = {}
        for side in (("base", "row") if len(log_ratios) % 2 == 0 else ("row", "base")):
            fn, x = (run, batch) if side == "row" else (base_run, base_batch)
            blocks[side] = [_time_once(fn, x) for _ in range(calls)]
        mine += blocks["row"]
        theirs += blocks["base"]
        log_ratios.append(math.log(statistics.median(blocks["row"]) / statistics.median(blocks["base"])))
        if len(log_ratios) < min_rounds:
            continue
        elapsed = time.perf_counter() - start
        interval = ratio_interval(log_ratios)
        narrow = interval[1] / interval[0] - 1 <= 2 * rel_tol
        if (narrow and elapsed >= min_seconds) or time.perf_counter() > deadline:
            break
    lat = summarize(mine, batch_size)
    lat.ratio_to_baseline = math.exp(statistics.fmean(log_ratios))
    lat.ratio_ci = list(ratio_interval(log_ratios))
    lat.baseline_median_ms = statistics.median(theirs) * 1e3
    lat.rounds = len(log_ratios)
    return lat


def ratio_interval(log_ratios: list[float], level: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean log ratio, as ratios (infinite with one round)."""
    n = len(log_ratios)
    if n < 2:
        return 0.0, math.inf
    from scipy.stats import t

    mean = statistics.fmean(log_ratios)
    half = t.ppf(0.5 + level / 2, n - 1) * statistics.stdev(log_ratios) / math.sqrt(n)
    return math.exp(mean - half), math.exp(mean + half)


def summarize(samples_s: list[float], batch_size: int) -> Latency:
    ms = sorted(s * 1e3 for s in samples_s)
    deciles = statistics.quantiles(ms, n=10, method="inclusive")
    median = statistics.median(ms)
    return Latency(batch_size, median, deciles[0], deciles[-1], len(ms), batch_size / (median / 1e3))


def _warm_up(run: Runner, batch, calls: int, stop_after: float) -> None:
    """``calls`` calls, fewer for a slow model (two at least): warm-up may take until ``stop_after``."""
    for i in range(calls):
        run(batch)
        if i >= 1 and time.perf_counter() > stop_after:
            break


def _time_once(run: Runner, batch) -> float:
    start = time.perf_counter()
    run(batch)
    return time.perf_counter() - start
