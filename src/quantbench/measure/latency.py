"""Latency as a distribution: warm-up, fixed threads, repeat until the median is stable."""
import statistics
import time
from dataclasses import dataclass

from .runner import Runner


@dataclass
class Latency:
    batch_size: int
    median_ms: float
    p10_ms: float
    p90_ms: float
    repeats: int
    throughput_per_s: float


def measure_latency(run: Runner, batch, batch_size: int, warmup: int = 5, min_repeats: int = 30,
                    max_seconds: float = 2.0, rel_tol: float = 0.02, min_samples: int = 5) -> Latency:
    """Time ``run(batch)`` after ``warmup`` calls; stop once the median of all samples moves
    less than ``rel_tol`` when ``min_repeats`` more are added, or once ``max_seconds`` are
    spent (with at least ``min_samples``), so slow models are timed in bounded time."""
    deadline = time.perf_counter() + max_seconds
    for i in range(warmup):
        run(batch)
        if i >= 1 and time.perf_counter() > deadline - 0.75 * max_seconds:
            break  # slow model: a quarter of the budget is enough warm-up
    samples: list[float] = []
    previous = None
    while True:
        for _ in range(min_repeats):
            samples.append(_time_once(run, batch))
            if len(samples) >= min_samples and time.perf_counter() > deadline:
                return summarize(samples, batch_size)
        median = statistics.median(samples)
        if previous is not None and abs(median - previous) <= rel_tol * previous:
            return summarize(samples, batch_size)
        previous = median


def summarize(samples_s: list[float], batch_size: int) -> Latency:
    ms = sorted(s * 1e3 for s in samples_s)
    deciles = statistics.quantiles(ms, n=10, method="inclusive")
    median = statistics.median(ms)
    return Latency(batch_size, median, deciles[0], deciles[-1], len(ms), batch_size / (median / 1e3))


def _time_once(run: Runner, batch) -> float:
    start = time.perf_counter()
    run(batch)
    return time.perf_counter() - start
