"""Latency as a distribution: warm-up, fixed threads, repeat until the median is stable; and paired
with a baseline: the two interleaved in alternating rounds, so that a burst of load hits both and the
ratio of their times is measured round by round, with a confidence interval.

Both time in rounds of at least a millisecond and of ``READINGS_PER_ROUND`` host readings (~3 ms with
the default three loops at 2 threads). Given a ``HostSpeed``, its reference loops are read between
rounds, and the cell's numbers come from the rounds the host ran at its full speed (measure/hostspeed.py
says why); the rest are counted (``noise.host_slow_fraction``), and if too few ran at full speed by
the deadline and ``max_seconds`` more, the quarter of the rounds it ran fastest in are used and the
cell says so.

A cell may be timed in several visits, apart in time (measure/cell.py visits every cell of a row in
turn, twice): the numbers pool the visits' rounds, and each visit's median (and ratio) is kept, since
a speed the host holds for seconds, which no reading between rounds shows, shows as visits that
disagree."""
import math
import statistics
import time
from dataclasses import dataclass, field
from functools import cached_property

from .hostspeed import HostSpeed
from .runner import Runner

# A round is short: on a 2-vCPU cloud guest (Dec 2026) the host's full-speed stretches lasted 0.15 ms
# (median) to 4 ms at most, so a 5 ms round never ran at full speed throughout, and rounds of ~1 ms
# kept 2-9x more full-speed rounds than rounds of ~9 ms. Reading the host's speed between them costs
# ``1 / READINGS_PER_ROUND`` of the timing (~6% at 2 threads there). Since the cache loop (2026-12-07)
# a reading takes ~0.25-0.3 ms at 2 threads (0.09-0.1 ms before), so rounds are ~3 ms: fewer rounds per
# cell, and on a host whose fast stretches last ~1 ms, fewer of them at full speed (not measured there).
ROUND_SECONDS = 0.001
READINGS_PER_ROUND = 10


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
    visits: list[dict] | None = None
    bound_ms: float | None = None
    bound_by: str | None = None
    fraction_of_bound: float | None = None

    @property
    def spread(self) -> float:
        return self.p90_ms / self.p10_ms if self.p10_ms > 0 else math.inf


@dataclass
class Round:
    """A few calls of each side, and the host's reference-loop readings before and after them."""

    times: dict[str, list[float]]
    before: tuple[float, ...] | None = None  # HostSpeed readings (seconds of each of its loops)
    after: tuple[float, ...] | None = None


@dataclass
class Stop:
    """When a cell's rounds end: ``enough`` says when the full-speed rounds settle the answer (after
    ``min_seconds``); at ``deadline`` it ends with at least ``min_full`` full-speed rounds, and at
    ``deadline + patience`` with what it has."""

    enough: object  # Callable[[list[Round]], bool]
    start: float
    min_seconds: float
    deadline: float
    patience: float
    min_full: int

    def now(self, full: list[Round]) -> bool:
        now = time.perf_counter()
        if len(full) >= self.min_full and (now > self.deadline or (now - self.start >= self.min_seconds
                                                                    and self.enough(full))):
            return True
        return now > self.deadline + self.patience


@dataclass
class Visit:
    """One stretch of a cell's timing: all its rounds, those that ran at the host's full speed (as
    judged when the visit ended), whether they were enough to measure from, and if not, the rounds
    the host ran fastest in."""

    rounds: list[Round]
    full: list[Round]
    enough: bool
    least_slowed: list[Round] = field(default_factory=list)
    waited_seconds: float = 0.0  # before it started, for the host to read full speed
    min_full: int = 5  # full-speed rounds it needs to be measured from them

    def judged(self, host: HostSpeed | None) -> "Visit":
        """The visit with its rounds judged against ``host``'s fastest now: a faster reading seen since it
        ended (by a later cell) sets aside rounds it ran below that speed."""
        return judged_visit(self.rounds, host, self.min_full, self.waited_seconds)

    @property
    def used(self) -> list[Round]:
        """The rounds the numbers come from: the full-speed ones if enough, else the least slowed (all
        of them without a host reading)."""
        return self.full if self.enough else (self.least_slowed or self.rounds)

    @cached_property
    def summary(self) -> dict:
        """The visit's median (ms) from its used rounds, and when paired its ratio to the baseline and the
        baseline's median (ms)."""
        entry = {"median_ms": statistics.median(_samples(self.used, "row")) * 1e3}
        if "base" in self.used[0].times:
            entry["ratio_to_baseline"] = math.exp(statistics.fmean(_log_ratios(self.used)))
            entry["baseline_median_ms"] = statistics.median(_samples(self.used, "base")) * 1e3
        return entry


def measure_latency(run: Runner, batch, batch_size: int, host: HostSpeed | None = None, **timing) -> Latency:
    """The cell of ``run(batch)`` timed alone in one visit (``time_alone``'s ``timing``)."""
    return summarize_visits([time_alone(run, batch, host=host, **timing)], batch_size, host)


def measure_paired(run: Runner, batch, base_run: Runner, base_batch, batch_size: int, host: HostSpeed | None = None,
                   **timing) -> Latency:
    """The cell of ``run(batch)`` paired with ``base_run(base_batch)`` in one visit (``time_paired``'s ``timing``)."""
    return summarize_visits([time_paired(run, batch, base_run, base_batch, host=host, **timing)], batch_size, host)


def time_alone(run: Runner, batch, warmup: int = 5, min_repeats: int = 30, max_seconds: float = 2.0,
               rel_tol: float = 0.02, min_samples: int = 5, min_seconds: float = 0.0, host: HostSpeed | None = None,
               round_seconds: float = ROUND_SECONDS, patience: float | None = None) -> Visit:
    """Time ``run(batch)`` after ``warmup`` calls; stop once at least ``min_seconds`` are spent and
    the median of the samples moves less than ``rel_tol`` when ``min_repeats`` more are added, or
    once ``max_seconds`` are spent (with at least ``min_samples``), so slow models are timed in
    bounded time; with too few full-speed rounds by then, ``patience`` seconds more at most
    (``max_seconds`` unless given)."""
    start = time.perf_counter()
    one = _warm_up(run, batch, warmup, start + 0.25 * max_seconds)
    stop = Stop(_settling(min_repeats, rel_tol), start, min_seconds, start + max_seconds,
                max_seconds if patience is None else patience,
                max(math.ceil(min_samples / _calls_per_round(one, round_seconds)), 5))
    return _time_rounds({"row": (run, batch)}, (one, round_seconds), host, stop)


def time_paired(run: Runner, batch, base_run: Runner, base_batch, warmup: int = 5, max_seconds: float = 2.0,
                min_seconds: float = 0.0, rel_tol: float = 0.02, min_rounds: int = 5,
                round_seconds: float = ROUND_SECONDS, host: HostSpeed | None = None,
                patience: float | None = None) -> Visit:
    """Time ``run(batch)`` interleaved with ``base_run(base_batch)``: rounds of a few calls of each, the
    order alternating, until the 95% interval of the ratio (geometric mean of the rounds' median
    ratios) is within ``rel_tol`` and ``min_seconds`` are spent, or both sides' ``max_seconds`` are
    (with at least ``min_rounds``; with too few full-speed rounds by then, ``patience`` seconds more
    at most, ``max_seconds`` unless given)."""
    start = time.perf_counter()
    slowest = max(_warm_up(fn, x, warmup, start + 0.25 * max_seconds) for fn, x in ((base_run, base_batch),
                                                                                     (run, batch)))

    def narrow(full: list[Round]) -> bool:
        low, high = ratio_interval(_log_ratios(full))
        return high / low - 1 <= 2 * rel_tol

    stop = Stop(narrow, start, min_seconds, start + 2 * max_seconds, max_seconds if patience is None else patience,
                min_rounds)
    sides = {"base": (base_run, base_batch), "row": (run, batch)}
    return _time_rounds(sides, (slowest, round_seconds), host, stop)


def summarize_visits(visits: list[Visit], batch_size: int, host: HostSpeed | None) -> Latency:
    """A cell from its ``visits`` (``pooled``), with each visit's median (and ratio) in ``visits``, so that
    visits that disagree can be seen, and what the host's loops said over them."""
    lat = pooled(visits, batch_size)
    lat.visits = [dict(v.summary) for v in visits]
    lat.noise = host_noise(visits, host)
    return lat


def pooled(visits: list[Visit], batch_size: int) -> Latency:
    """The cell from its visits' used rounds pooled: the row's distribution from its own samples and,
    when paired, the ratio to the baseline with its interval."""
    used = [r for v in visits for r in v.used]
    lat = summarize(_samples(used, "row"), batch_size)
    if "base" in used[0].times:
        log_ratios = _log_ratios(used)
        lat.ratio_to_baseline = math.exp(statistics.fmean(log_ratios))
        lat.ratio_ci = list(ratio_interval(log_ratios))
        lat.baseline_median_ms = statistics.median(_samples(used, "base")) * 1e3
        lat.rounds = len(used)
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
    deciles = statistics.quantiles(ms, n=10, method="inclusive") if len(ms) > 1 else [ms[0]] * 9
    median = statistics.median(ms)
    return Latency(batch_size, median, deciles[0], deciles[-1], len(ms), batch_size / (median / 1e3))


def _time_rounds(sides: dict, pace: tuple[float, float], host: HostSpeed | None, stop: Stop) -> Visit:
    """Rounds of each side (the order alternating) until ``stop``, each side's calls lasting about
    ``pace`` = (seconds per call, seconds per round), a round at least ``READINGS_PER_ROUND`` host
    readings long: all the rounds, and those to measure from: the ones at the host's full speed
    (judged against the fastest reading so far) if there are ``stop.min_full``, else the least slowed
    (every round without a ``host``)."""
    rounds, full = [], []
    before = host.read() if host else None  # after the visit's warm-up calls
    judged_at = host.fastest if host else None
    seconds_per_call, round_seconds = pace
    reading_seconds = host.read_seconds if host else 0.0
    calls = _calls_per_round(seconds_per_call, max(round_seconds, READINGS_PER_ROUND * reading_seconds))
    while True:
        names = list(sides) if len(rounds) % 2 == 0 else list(sides)[::-1]
        times = {name: [_time_once(*sides[name]) for _ in range(calls)] for name in names}
        after = host.read() if host else None
        rounds.append(Round(times, before, after))
        before = after
        if host is not None and host.fastest != judged_at:  # a faster reading: judge every round again
            full, judged_at = _at_full_speed(rounds, host), host.fastest
        elif host is None or host.at_full_speed(rounds[-1].before, after):
            full.append(rounds[-1])
        if stop.now(full):
            break
    return judged_visit(rounds, host, stop.min_full)


def judged_visit(rounds: list[Round], host: HostSpeed | None, min_full: int, waited_seconds: float = 0.0) -> Visit:
    """A visit of ``rounds`` judged against ``host``'s fastest now: its full-speed rounds, whether there
    are ``min_full`` of them, and if not the least slowed (every round counts without a ``host``)."""
    full = _at_full_speed(rounds, host)
    enough = len(full) >= min_full
    least = [] if enough or host is None else _least_slowed(rounds, host, min_full)
    return Visit(rounds, full, enough, least, waited_seconds, min_full)


def _least_slowed(rounds: list[Round], host: HostSpeed, at_least: int) -> list[Round]:
    """The quarter of ``rounds`` (``at_least`` of them) the host ran fastest in, by its slower reading."""
    ranked = sorted(rounds, key=lambda r: _round_slowdown(r, host))
    return ranked[:max(at_least, len(rounds) // 4)]


def _round_slowdown(r: Round, host: HostSpeed) -> float:
    """How much slower than its fastest the host ran around round ``r``: its slower reading."""
    return max(host.slowdown(r.before), host.slowdown(r.after))


def _at_full_speed(rounds: list[Round], host: HostSpeed | None) -> list[Round]:
    return rounds if host is None else [r for r in rounds if host.at_full_speed(r.before, r.after)]


def host_noise(visits: list[Visit], host: HostSpeed | None) -> dict | None:
    """What the reference loops said: the share of rounds set aside as slowed, how much slower than its
    fastest the host ran at the cell's median reading, whether the numbers come from full-speed
    rounds (False: in some visit too few ran at full speed, and its least slowed rounds were used),
    the seconds the visits waited for the host to read full speed before they started, and the
    loops' fastest readings (us) the rounds were judged against."""
    if host is None:
        return None
    rounds = [r for v in visits for r in v.rounds]
    slowdown = statistics.median(_round_slowdown(r, host) for r in rounds)
    return {"host_slow_fraction": 1 - sum(len(v.full) for v in visits) / len(rounds), "host_slowdown": slowdown,
            "host_full_speed": all(v.enough for v in visits),
            "host_wait_seconds": sum(v.waited_seconds for v in visits),
            "host_fastest_us": [f * 1e6 for f in host.fastest]}


def _settling(min_repeats: int, rel_tol: float):
    """``enough(full)``: the samples' median moved less than ``rel_tol`` since ``min_repeats`` fewer."""
    previous = {"count": 0, "median": None}

    def enough(full: list[Round]) -> bool:
        if sum(len(r.times["row"]) for r in full) < previous["count"] + min_repeats:
            return False
        samples = _samples(full, "row")
        median, last = statistics.median(samples), previous["median"]
        previous.update(count=len(samples), median=median)
        return last is not None and abs(median - last) <= rel_tol * last

    return enough


def _samples(rounds: list[Round], side: str) -> list[float]:
    return [t for r in rounds for t in r.times[side]]


def _log_ratios(rounds: list[Round]) -> list[float]:
    return [math.log(statistics.median(r.times["row"]) / statistics.median(r.times["base"])) for r in rounds]


def _calls_per_round(seconds_per_call: float, round_seconds: float) -> int:
    return min(max(math.ceil(round_seconds / max(seconds_per_call, 1e-7)), 1), 1000)


def _warm_up(run: Runner, batch, calls: int, stop_after: float) -> float:
    """``calls`` calls, fewer for a slow model (two at least): warm-up may take until ``stop_after``.
    Returns the last call's seconds."""
    seconds = math.inf
    for i in range(max(calls, 1)):
        seconds = _time_once(run, batch)
        if i >= 1 and time.perf_counter() > stop_after:
            break
    return seconds


def _time_once(run: Runner, batch) -> float:
    start = time.perf_counter()
    run(batch)
    return time.perf_counter() - start
