"""One latency cell, as every row gets it: timed alone or paired with its baseline, watched by a
noise sampler, judged stable or not, and set against its physical bound."""
import math
import statistics
from dataclasses import dataclass, field
from itertools import combinations
from typing import Callable, NamedTuple

from .bounds import HostBounds, bound_ms
from .hostrecord import HostRecord, Slower, baseline_key
from .hostspeed import HostSpeed
from .latency import Latency, Visit, host_noise, pooled, time_alone, time_paired
from .noise import Limits, Noise, ProcSampler, instability, others_busy, visits_disagree, worst
from .runner import Runner


@dataclass
class Cell:
    """What one latency cell times: ``run`` on ``batch``, paired with ``baseline`` (runner, batch) if
    given; ``own_threads``: the calls run on a thread pool of their own, not torch's. ``reference``
    names the baseline that this cell times alone or is paired with (the runtime of its fp32 row):
    the baseline then runs in every cell of the run that names it, and its fastest visit at this
    batch size judges each visit (``CellTimer.baseline_slowdown``)."""

    run: Runner
    batch: object
    batch_size: int
    baseline: tuple[Runner, object] | None = None
    own_threads: bool = False
    reference: object = None


class Stale(NamedTuple):
    """How many times faster than in a cell the host or its baseline ran later in the run, and which."""

    faster: float
    by: str  # "host": the reference loops; "baseline": the baseline's own calls


@dataclass
class CellTimer:
    """What the cells of one run share: threads, the host's measured bounds, the noise sampler and
    limits, the host's speed (reference loops read between rounds, measure/hostspeed.py), the
    shortest time a cell is timed per visit (long enough for the CPU counters, which tick every 10 ms,
    to say what else ran), how many visits each cell gets, how many more a cell may get when too
    few of its visits found the host at full speed, and how long a visit may wait for the host to read
    full speed before it starts: ``wait_seconds`` at most, and over the timer's life no more than
    ``wait_share`` of the seconds spent timing, plus ``wait_seconds``. Once ``give_up_after`` visits in a
    row found too few full-speed rounds (the host slow throughout, as for whole runs on a 2-vCPU Xeon
    guest, Dec 2026), visits neither wait nor run past their deadline for full-speed rounds, and no
    extra visits are made, until a visit finds the host at full speed again: the cells are unstable
    either way, and the waits and extra visits had only made the run several times longer.

    A visit is at full speed when the host's loops read full speed through enough of its rounds and,
    in a cell that names a ``reference``, its baseline ran within ``Limits.visits`` of its fastest
    visit in the run so far: a slow stretch that the loops do not read shows in the baseline's own
    calls. Seen on a 2-vCPU Xeon guest (Dec 2026), before the loops read the caches: gptq b1 visits
    at 36 and 52 us, their ratios to fp32 agreeing, because fp32 beside it ran 1.2-1.5x slower too."""

    threads: int
    bounds: dict[str, HostBounds] = field(default_factory=dict)  # device -> what was measured there
    sampler: Callable[[], object] = ProcSampler
    limits: Limits = field(default_factory=Limits)
    speed: HostSpeed | None = field(default_factory=HostSpeed)  # None: every round counts
    min_seconds: float = 0.25  # per visit
    max_seconds: float = 2.0  # over the first ``visits`` visits; each extra visit gets a visit's share
    visits: int = 2
    extra_visits: int = 2
    wait_seconds: float = 5.0
    wait_share: float = 0.5
    give_up_after: int = 3
    waited_seconds: float = field(default=0.0, init=False)  # so far, over every visit
    timed_seconds: float = field(default=0.0, init=False)
    last_visit_contended: bool = field(default=False, init=False)  # other processes used the cores in it
    slow_visits_in_a_row: int = field(default=0, init=False)  # too few full-speed rounds, by the loops
    baseline_fastest: dict = field(default_factory=dict, init=False)  # (reference, batch size) -> ms
    baseline_quiet_fastest: dict = field(default_factory=dict, init=False)  # the same, of visits no process shared
    record_folder: object = None  # where the host's record from earlier runs is kept (measure/hostrecord.py)
    model: str | None = None  # what the baselines run (``model_identity``), for the record
    record: HostRecord | None = field(default=None, init=False)

    def __post_init__(self):
        if self.speed is not None:
            self.record = HostRecord.load(self.record_folder, self.speed.loops, self.threads)

    def time(self, run: Runner, batch, batch_size: int, baseline: tuple[Runner, object] | None = None) -> Latency:
        """The cell of ``run`` on ``batch``; with a ``baseline`` (its runner and batch), paired with it."""
        return self.time_cells([Cell(run, batch, batch_size, baseline)])[0]

    def time_cells(self, cells: list[Cell]) -> list[Latency]:
        """The ``cells`` (a row's batch sizes), each timed in ``visits`` visits taken in turn, so that a
        cell's visits lie apart in time and a stretch of slow host hits one of them, not all. A cell
        without ``visits`` visits that found the host at full speed and agree (``Limits.visits``) is
        visited again, after the others, up to ``extra_visits`` times; its numbers come from the
        fastest such visits if it has them, else from all (and disagreeing visits mark it unstable)."""
        visits: list[list[tuple[Visit, Noise]]] = [[] for _ in cells]
        for _ in range(self.visits):
            for cell, seen in zip(cells, visits):
                seen.append(self._watched_visit(cell))
        skipped = [0 for _ in cells]
        for _ in range(self.extra_visits if self.speed is not None else 0):
            visits = [self._rejudged(cell, seen) for cell, seen in zip(cells, visits)]
            for i, (cell, seen) in enumerate(zip(cells, visits)):
                if self._agreeing(cell, seen) is not None:
                    continue
                if self.host_slow_throughout:
                    skipped[i] += 1
                else:
                    seen.append(self._watched_visit(cell))
        return [self._summarized(cell, self._rejudged(cell, seen), skipped=n)
                for cell, seen, n in zip(cells, visits, skipped)]

    @property
    def host_slow_throughout(self) -> bool:
        """The last ``give_up_after`` visits all found too few rounds at the host's full speed."""
        return self.speed is not None and self.slow_visits_in_a_row >= self.give_up_after

    def _watched_visit(self, cell: Cell) -> tuple[Visit, Noise]:
        waited = self._wait_for_full_speed(cell)
        sampler = self.sampler()
        sampler.start()
        visit = self._visit(cell)
        visit.waited_seconds, noise = waited, sampler.stop()
        self.slow_visits_in_a_row = 0 if visit.enough else self.slow_visits_in_a_row + 1
        self.timed_seconds += noise.seconds
        self.last_visit_contended = others_busy(noise, self.threads, self.limits)
        self._note_baseline(cell, visit)
        return visit, noise

    def _wait_for_full_speed(self, cell: Cell) -> float:
        """Seconds waited, within this visit's and the timer's allowance, for the host to read full speed;
        none while other processes were seen using the cores (a load the cell's reason will name, which
        waiting rarely outlasts: under a CPU hog a default run waited 47 s of 154 s in vain), nor while the
        host has run slow throughout the last visits (``host_slow_throughout``)."""
        speed = self._speed(cell)
        allowed = min(self.wait_seconds, self.wait_seconds + self.wait_share * self.timed_seconds - self.waited_seconds)
        if speed is None or allowed <= 0 or self.last_visit_contended or self.host_slow_throughout:
            return 0.0
        waited = speed.wait_for_full_speed(allowed)
        self.waited_seconds += waited
        return waited

    def _rejudged(self, cell: Cell, seen: list[tuple[Visit, Noise]]) -> list[tuple[Visit, Noise]]:
        """``seen`` with every visit judged against the host's fastest now (measure/latency.py, ``Visit.judged``)."""
        return [(v.judged(self._speed(cell)), n) for v, n in seen]

    def _note_baseline(self, cell: Cell, visit: Visit) -> None:
        """The baseline's fastest visit so far, and of the visits no other process shared the cores in: the
        one the host's record keeps (under a CPU hog, fp32 at batch 256 of a 2048-wide MLP ran 16.0 ms, 7.6
        quiet, and such runs would make the record's usual slower)."""
        if cell.reference is not None:
            key, ms = (cell.reference, cell.batch_size), _baseline_ms(visit.summary)
            self.baseline_fastest[key] = min(self.baseline_fastest.get(key, ms), ms)
            if not self.last_visit_contended:
                self.baseline_quiet_fastest[key] = min(self.baseline_quiet_fastest.get(key, ms), ms)

    def baseline_slowdown(self, reference, batch_size: int, baseline_ms: float) -> float:
        """How many times slower than its fastest visit in the run so far the baseline ``reference`` ran at
        ``batch_size`` where it took ``baseline_ms`` (1.0 without such a baseline)."""
        fastest = self.baseline_fastest.get((reference, batch_size))
        return baseline_ms / fastest if fastest else 1.0

    def _visit_baseline_slowdown(self, cell: Cell, visit: Visit) -> float:
        return self.baseline_slowdown(cell.reference, cell.batch_size, _baseline_ms(visit.summary))

    def stale(self, lat: Latency, reference=None) -> Stale | None:
        """How many times faster than in ``lat`` the host (its reference loops) or the baseline ``reference``
        ``lat`` times or is paired with ran later in the run, if by more than ``Limits.visits``: its rounds
        may have been timed in a slow stretch taken for full speed (the first cells of a run that began
        in one), else None."""
        judged = (lat.noise or {}).get("host_fastest_us")
        seen = [Stale(self.baseline_slowdown(reference, lat.batch_size, lat.baseline_median_ms or lat.median_ms),
                      "baseline")]
        if self.speed is not None and judged:
            seen.append(Stale(max(j / (f * 1e6) for j, f in zip(judged, self.speed.fastest_seen())), "host"))
        worst_seen = max(seen)
        return worst_seen if worst_seen.faster > 1 + self.limits.visits else None

    def mark_stale(self, lat: Latency, stale: Stale) -> None:
        """``lat`` unstable, as ``stale`` found it."""
        what = ("the host later ran {:.2f}x faster than the reference readings this cell was judged against"
                if stale.by == "host" else "the baseline later ran {:.2f}x faster than in this cell")
        _mark_unstable(lat, what.format(stale.faster) + ": it may have been timed in a slow stretch taken for full "
                            "speed; rerun")

    def judge_against_record(self, lat: Latency, reference=None) -> None:
        """``lat`` unstable if the whole run may have been timed slow, by the host's record of earlier runs
        (``HostRecord``): the loops' readings it was judged against, or the fastest visit of the baseline
        ``reference`` at its batch size, were more than the host's ``slow_above`` slower than their usual in
        recent runs, or more than ``hostrecord.GROSS`` slower than their fastest since boot (not
        ``Limits.visits``: on the Xeon guest the host ran ~1.2x slower, loops and fp32 alike, for the hour
        after a record was set, and every batch-256 cell failed a 10% line). ``noise`` says by how much,
        where there is a record: ``host_record_slowdown``/``host_boot_slowdown`` (the loops, against their
        usual/fastest) and ``baseline_record_slowdown``/``baseline_boot_slowdown``."""
        if self.record is None:
            return
        lat.noise = lat.noise or {}
        for reason in self._record_reasons(lat.noise, lat.batch_size, reference):
            _mark_unstable(lat, reason)

    def judge_generation_against_record(self, entry: dict) -> None:
        """A prefill/decode entry (measure/generation.py) judged as a latency cell is, by the loops alone (no
        baseline is timed beside it)."""
        if self.record is None or entry.get("status") != "measured":
            return
        for reason in self._record_reasons(entry.setdefault("noise", {}), entry["batch_size"], None):
            entry["stable"], entry["unstable_reason"] = False, with_reason(entry.get("unstable_reason"), reason)

    def _record_reasons(self, noise: dict, batch_size: int, reference) -> list[str]:
        """Why a cell whose ``noise`` this is may have been timed slow throughout, by the record; ``noise`` gets
        the slowdowns."""
        reasons = []
        for prefix, what, found in self._against_record(noise, batch_size, reference):
            noise[f"{prefix}_boot_slowdown"] = max(s.fastest for s in found)
            usual = [s.usual for s in found if s.usual is not None]
            if usual:
                noise[f"{prefix}_record_slowdown"] = max(usual)
            slow = [s for s in found if s.beyond(self.speed.slow_above)]
            if slow:
                reasons.append(f"{what} ran slower in this run than in earlier runs on this machine since it booted "
                               f"({' and '.join(s.said for s in slow)}): the whole run may have been timed slow; rerun")
        return reasons

    def _against_record(self, noise: dict, batch_size: int, reference) -> list[tuple[str, str, list[Slower]]]:
        """What a cell was judged against, by the loops and by the baseline ``reference``, against the record."""
        judged = [("host", "the host's reference loops",
                   self.record.loop_slowdowns(tuple(j / 1e6 for j in noise.get("host_fastest_us") or ())))]
        fastest = self.baseline_fastest.get((reference, batch_size))
        if reference is not None and self.model is not None and fastest is not None:
            found = self.record.baseline_slowdown(baseline_key(self.model, reference, batch_size), fastest)
            judged.append(("baseline", "the baseline", [found] if found else []))
        return [(prefix, what, found) for prefix, what, found in judged if found]

    def save_record(self) -> None:
        """This run's fastest loop readings and baseline visits (of those no other process shared the cores in)
        into the host's record, for later runs."""
        if self.record is None:
            return
        baselines = {} if self.model is None else {baseline_key(self.model, ref, b): ms
                                                    for (ref, b), ms in self.baseline_quiet_fastest.items()}
        self.record.save(self.speed.fastest_seen(), baselines)

    def _full_speed(self, cell: Cell, seen: list[tuple[Visit, Noise]]) -> list[tuple[Visit, Noise]]:
        """The visits of ``seen`` that ran at full speed: by the host's loops, and by the baseline's calls."""
        return [(v, n) for v, n in seen
                if v.enough and self._visit_baseline_slowdown(cell, v) <= 1 + self.limits.visits]

    def _agreeing(self, cell: Cell, seen: list[tuple[Visit, Noise]]) -> list[tuple[Visit, Noise]] | None:
        """The fastest ``visits`` of ``seen`` that ran at full speed and agree, or None."""
        groups = sorted(combinations(self._full_speed(cell, seen), self.visits),
                        key=lambda g: sum(_answer(v) for v, _ in g))
        agree = (list(g) for g in groups if not visits_disagree([v.summary for v, _ in g], self.limits.visits))
        return next(agree, None)

    def _summarized(self, cell: Cell, seen: list[tuple[Visit, Noise]], skipped: int = 0) -> Latency:
        """The cell from its agreeing full-speed visits, else from its full-speed ones, else from all; the
        host's share of slow rounds is over every visit, and it ran at full speed if ``visits`` visits did
        (by the loops and by the baseline); the baseline's slowdown is its median over the visits;
        ``skipped``: the extra visits not made while the host ran slow throughout."""
        full = self._full_speed(cell, seen)
        kept = self._agreeing(cell, seen) or full or seen
        lat = pooled([v for v, _ in kept], cell.batch_size)
        lat.visits = [v.summary | {"kept": any(v is k for k, _ in kept)} for v, _ in seen]
        lat.noise = host_noise([v for v, _ in seen], self._speed(cell))
        if lat.noise is not None:
            lat.noise |= {"host_visits_set_aside": len(seen) - len(kept), "host_visits_skipped": skipped}
        if cell.reference is not None:
            slowdowns = [self._visit_baseline_slowdown(cell, v) for v, _ in seen]
            lat.noise = (lat.noise or {}) | {"baseline_slowdown": statistics.median(slowdowns),
                                             "baseline_slow_visits": sum(s > 1 + self.limits.visits for s in slowdowns)}
        if lat.noise is not None:
            lat.noise["host_full_speed"] = len(full) >= self.visits
        return self._judged(lat, worst([n for _, n in kept]))

    def _speed(self, cell: Cell) -> HostSpeed | None:
        """The host's speed as read for ``cell``: without torch's pool loop if its calls use a pool of their own."""
        return self.speed.first_loop_only() if self.speed is not None and cell.own_threads else self.speed

    def _visit(self, cell: Cell) -> Visit:
        timing = {"min_seconds": self.min_seconds, "max_seconds": self.max_seconds / self.visits,
                  "host": self._speed(cell), "patience": 0.0 if self.host_slow_throughout else None}
        if cell.baseline is None:
            return time_alone(cell.run, cell.batch, min_samples=math.ceil(5 / self.visits), **timing)
        return time_paired(cell.run, cell.batch, *cell.baseline, min_rounds=math.ceil(5 / self.visits), **timing)

    def _judged(self, lat: Latency, noise: Noise) -> Latency:
        kept = [v for v in lat.visits if v.get("kept", True)]
        reason = instability(noise, lat.spread, self.threads, self.limits, host=lat.noise, visits=kept)
        lat.noise, lat.stable, lat.unstable_reason = noise.to_dict() | (lat.noise or {}), reason is None, reason
        return lat

    def host(self, device: str = "cpu") -> HostBounds:
        """``device``'s measured bandwidth and GEMM peaks (each measured once, when first asked)."""
        if device not in self.bounds:
            self.bounds[device] = HostBounds(device, sampler=self.sampler, threads=self.threads, limits=self.limits,
                                             speed=self.speed if device == "cpu" else None)
        return self.bounds[device]

    def set_bound(self, lat: Latency, weight_bytes: int, macs: int, dtype: str, device: str = "cpu") -> None:
        """``lat``'s bound on ``device``: reading ``weight_bytes`` once, or ``macs`` multiply-adds in ``dtype``."""
        host = self.host(device)
        bound = bound_ms(weight_bytes, macs, host.bandwidth_gbs(weight_bytes), host.peak_gops(dtype))
        lat.bound_ms, lat.bound_by = bound.ms, bound.by
        lat.fraction_of_bound = bound.ms / lat.median_ms if lat.median_ms > 0 else None


def _mark_unstable(lat: Latency, reason: str) -> None:
    """``lat`` unstable, ``reason`` added to any it has."""
    lat.stable, lat.unstable_reason = False, with_reason(lat.unstable_reason, reason)


def with_reason(reasons: str | None, reason: str) -> str:
    """``reasons`` (None: none yet) with ``reason`` added."""
    return "; ".join(filter(None, [reasons, reason]))


def _baseline_ms(summary: dict) -> float:
    """The baseline's median in a visit's ``summary``: its paired side's, else (the baseline timed alone) its own."""
    return summary.get("baseline_median_ms", summary["median_ms"])


def _answer(visit: Visit) -> float:
    """What a visit says: its ratio to the baseline where paired (what conclusions state), else its median."""
    summary = visit.summary
    return summary.get("ratio_to_baseline", summary["median_ms"])
