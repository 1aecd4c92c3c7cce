"""What else used the CPU while a cell was timed, and whether that makes the cell unstable.

A sampler reads the kernel's counters before and after a cell (``start()`` / ``stop()``): other
processes' CPU time on the cores this process may use (``/proc/stat`` minus ``/proc/self/stat``),
steal time (the hypervisor running other guests), how long this process's threads sat runnable
waiting for a core (``/proc/self/task/*/schedstat``), and the load average before and after.
``instability`` turns those and the spread of the samples into a reason, or None for a stable cell.
"""
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class Noise:
    """What the machine did during one timed cell. ``other_cores``: CPU time of other processes on
    the cores this process may use, in cores (1.0 = one core fully used by others); ``steal_fraction``:
    share of those cores' time stolen by the hypervisor; ``run_queue_wait``: time this process's
    threads were runnable but waiting for a core, per second of the cell; None where not readable."""

    seconds: float
    cores: int
    other_cores: float | None
    steal_fraction: float | None
    run_queue_wait: float | None
    load_before: float | None
    load_after: float | None

    def to_dict(self) -> dict:
        return asdict(self)


def worst(noises: list[Noise]) -> Noise:
    """One cell's noise over its visits: their seconds summed, the worst of each reading, the load
    average before the first and after the last."""

    def most(key):
        seen = [getattr(n, key) for n in noises if getattr(n, key) is not None]
        return max(seen) if seen else None

    return Noise(seconds=sum(n.seconds for n in noises), cores=noises[0].cores, other_cores=most("other_cores"),
                 steal_fraction=most("steal_fraction"), run_queue_wait=most("run_queue_wait"),
                 load_before=noises[0].load_before, load_after=noises[-1].load_after)


@dataclass(frozen=True)
class Limits:
    """When a cell is unstable: others used more than ``other_cores`` cores beyond those this process
    leaves idle; steal above ``steal``; our threads waited for a core more than ``run_queue_wait`` of
    the time; the samples' p90/p10 exceeds ``spread``; or the cell's visits disagree by more than
    ``visits`` (the slowest visit's answer / the fastest's, minus one)."""

    other_cores: float = 0.25
    steal: float = 0.05
    run_queue_wait: float = 0.10
    spread: float = 2.5
    visits: float = 0.10


# What a cell is unstable for, by a phrase of each reason that ``instability`` and measure/cell.py give.
UNSTABLE_KINDS = {
    "other processes used": "other processes used the cores",
    "hypervisor stole": "steal time",
    "threads waited": "threads waited for a core",
    "host ran below its full speed": "host below full speed",
    "visits, timed apart, disagree": "visits disagree",
    "samples spread": "samples spread",
    "later ran": "faster later in the run",
    "ran slower in this run than in earlier runs": "slower than in earlier runs",
}


def unstable_kinds(reason: str | None) -> list[str]:
    """The kinds (``UNSTABLE_KINDS``) of reason that ``reason`` gives; a reason of none of them, whole."""
    kinds = [kind for said, kind in UNSTABLE_KINDS.items() if said in (reason or "")]
    return kinds or [reason or "stability not measured"]


def instability(noise: Noise | None, spread: float, threads: int, limits: Limits = Limits(),
                host: dict | None = None, visits: list[dict] | None = None) -> str | None:
    """Why a cell measured under ``noise`` with samples of p90/p10 ``spread`` (timed with ``threads``
    threads) cannot be trusted, or None; what the counters name comes first. ``host``: what the
    reference loops said (measure/latency.py's ``host_*`` entries) and how much slower than its fastest
    the baseline ran beside it (``baseline_*``, measure/cell.py); a cell whose numbers could not come
    from full-speed visits is unstable.
    ``visits``: each visit's median (and ratio to the baseline, which is judged instead when there)."""
    reasons = []
    if noise is not None:
        if others_busy(noise, threads, limits):
            reasons.append(f"other processes used {noise.other_cores:.2f} of the {noise.cores} cores this process "
                           f"may use while it was timed ({threads} threads)")
        if noise.steal_fraction is not None and noise.steal_fraction > limits.steal:
            reasons.append(f"the hypervisor stole {100 * noise.steal_fraction:.0f}% of the CPU time")
        if noise.run_queue_wait is not None and noise.run_queue_wait > limits.run_queue_wait:
            reasons.append(f"this process's threads waited {noise.run_queue_wait:.2f} s per second for a free core")
    if host and host.get("host_full_speed") is False:
        reasons.append(_below_full_speed(host))
    disagreement = visits_disagree(visits or [], limits.visits)
    if disagreement:
        reasons.append(disagreement)
    if spread > limits.spread:
        reasons.append(f"samples spread p90/p10 = {spread:.2f} (above {limits.spread})")
    return "; ".join(reasons) or None


def others_busy(noise: Noise, threads: int, limits: Limits = Limits()) -> bool:
    """Other processes used more of the cores than the ``threads`` of this process leave idle."""
    idle_cores = max(noise.cores - threads, 0)
    return noise.other_cores is not None and noise.other_cores > idle_cores + limits.other_cores


def _below_full_speed(host: dict) -> str:
    """Why too few of a cell's visits ran at the host's full speed: what the reference loops read, what
    the baseline's own calls did."""
    said = []
    if "host_slow_fraction" in host:
        said.append(f"for {100 * host['host_slow_fraction']:.0f}% of the cell's rounds by fixed reference loops (at "
                    f"{host['host_slowdown']:.2f}x their fastest time in this run)")
    if host.get("baseline_slow_visits"):
        said.append(f"in {host['baseline_slow_visits']} of its visits by the baseline run beside it (at "
                    f"{host['baseline_slowdown']:.2f}x its fastest in this run, a slowdown the loops may miss)")
    where = " and ".join(said or ["in too many of its visits"])
    return (f"the host ran below its full speed {where}; unless another reason here names the load, that is another "
            "tenant on these cores or a lower clock; the numbers come from its full-speed visits, or else the rounds "
            f"it ran fastest in{_waited(host)}{_skipped(host)}; rerun")


def _waited(host: dict) -> str:
    seconds = host.get("host_wait_seconds") or 0.0
    return f"; its visits first waited {seconds:.1f} s in all for full speed" if seconds >= 0.05 else ""


def _skipped(host: dict) -> str:
    skipped = host.get("host_visits_skipped") or 0
    return (f"; {skipped} extra visit{'s' * (skipped > 1)} not made, as the host had run below full speed through "
            "the visits before" if skipped else "")


def visits_disagree(visits: list[dict], limit: float) -> str | None:
    """The reason a cell's visits disagree by more than ``limit``: their ratios to the baseline where
    paired (what conclusions state), else their medians."""
    key = "ratio_to_baseline" if visits and "ratio_to_baseline" in visits[0] else "median_ms"
    answers = [v[key] for v in visits]
    if len(answers) < 2 or max(answers) <= (1 + limit) * min(answers):
        return None
    what = "ratios to the baseline" if key == "ratio_to_baseline" else "medians (ms)"
    return (f"its {len(answers)} visits, timed apart, disagree by {100 * (max(answers) / min(answers) - 1):.0f}% "
            f"({what} {', '.join(f'{a:.4g}' for a in answers)}): the host ran at a different speed for seconds "
            "(unless another reason here names the load, one no reading between rounds shows); rerun")


class ProcSampler:
    """Reads Linux's counters; on other systems every reading is None (only the spread is judged)."""

    def __init__(self, proc: Path = Path("/proc")):
        self.proc = proc
        self.cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        self._start = None

    def start(self) -> None:
        self._start = self._read()

    def stop(self) -> Noise:
        before, after = self._start, self._read()
        seconds = after["time"] - before["time"]
        ticks = seconds * CLOCK_TICKS

        def delta(key):
            return None if before[key] is None or after[key] is None else after[key] - before[key]

        busy, mine, steal, total, waited = (delta(k) for k in ("busy", "self", "steal", "total", "run_delay_ns"))
        return Noise(
            seconds=seconds, cores=len(self.cpus) or (os.cpu_count() or 1),
            other_cores=None if busy is None or mine is None or ticks <= 0 else max(busy - mine, 0) / ticks,
            steal_fraction=None if steal is None or not total else steal / total,
            run_queue_wait=None if waited is None or seconds <= 0 else waited / 1e9 / seconds,
            load_before=before["load"], load_after=after["load"])

    def _read(self) -> dict:
        reading = {"time": time.perf_counter(), "load": _load_average(), "run_delay_ns": self._run_delay_ns(),
                   "self": self._self_ticks(), "busy": None, "steal": None, "total": None}
        reading.update(self._cpu_ticks())
        return reading

    def _cpu_ticks(self) -> dict:
        """Busy, steal and total ticks summed over the cores this process may use."""
        try:
            lines = (self.proc / "stat").read_text().splitlines()
        except OSError:
            return {}
        wanted = {f"cpu{n}" for n in self.cpus}
        busy = steal = total = 0
        for line in lines:
            name, *fields = line.split()
            if name not in wanted:
                continue
            user, nice, system, idle, iowait, irq, softirq, stolen = (int(v) for v in fields[:8])
            busy += user + nice + system + irq + softirq
            steal += stolen
            total += user + nice + system + idle + iowait + irq + softirq + stolen
        return {"busy": busy, "steal": steal, "total": total} if total else {}

    def _self_ticks(self) -> int | None:
        """This process's user + system ticks, all threads."""
        try:
            fields = (self.proc / "self" / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))

    def _run_delay_ns(self) -> int | None:
        """Nanoseconds this process's threads have waited on a run queue (schedstat's second field)."""
        total, found = 0, False
        for stat in (self.proc / "self" / "task").glob("*/schedstat"):
            try:
                total += int(stat.read_text().split()[1])
                found = True
            except (OSError, IndexError, ValueError):
                continue
        return total if found else None


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None
