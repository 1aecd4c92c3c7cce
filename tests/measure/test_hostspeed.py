"""Rounds timed while the host ran below its full speed (a reference loop read between rounds) are
set aside; a cell with too few full-speed rounds is marked unstable (issue 12's idle repeatability)."""
import math
import time

import pytest

from quantbench.measure.cell import Cell, CellTimer
from quantbench.measure.hostspeed import CacheLoop, HostSpeed, PoolLoop, reference_loop
from quantbench.measure.latency import measure_latency, measure_paired
from quantbench.report.speed import speed_claim
from quantbench.results import Row


class Host:
    """A host that runs at full speed or at half speed, switching every ``every`` readings of the
    reference loop (each reading calls it three times); ``slow_from``: slow for good after that many."""

    def __init__(self, every: int = 0, slow_from: int | None = None):
        self.calls, self.every, self.slow_from = 0, every, slow_from

    @property
    def slow(self) -> bool:
        reads = self.calls // 3
        if self.slow_from is not None:
            return reads >= self.slow_from
        return bool(self.every) and (reads // self.every) % 2 == 1

    def loop(self) -> float:
        self.calls += 1
        return 2e-5 if self.slow else 1e-5

    def call(self, seconds: float):
        """A model call of ``seconds`` at full speed, twice that when the host is slow."""
        return busy(seconds, lambda: self.slow)


def busy(seconds: float, slow):
    """A model call of ``seconds``, twice that while ``slow()``."""
    def run(_):
        end = time.perf_counter() + seconds * (2 if slow() else 1)
        while time.perf_counter() < end:
            pass
    return run


class Task:
    """A task whose latency input is a batch of zeros."""

    def latency_input(self, batch_size):
        import torch
        return torch.zeros(batch_size, 4)


def speed(host: Host) -> HostSpeed:
    return HostSpeed(loops=(host.loop,), calibrate_seconds=0.0)


def test_a_reading_is_the_loop_warmed_once_and_judged_against_the_fastest():
    readings = iter([5.0, 3.0, 1.0, 9.0, 2.0, 2.5, 1.9])
    host = HostSpeed(loops=(lambda: next(readings),), calibrate_seconds=0.0)
    assert host.read() == (1.0,) and host.fastest == (1.0,)  # calibrated on 5; warmed by 3; the faster of 1 and 9
    assert host.read() == (1.9,) and host.at_full_speed((1.2,)) and not host.at_full_speed((1.2,), (1.4,))
    assert host.slowdown((2.0,)) == pytest.approx(2.0) and 0 < reference_loop(100) < 0.1


def test_each_loop_is_judged_against_its_own_fastest_and_the_slowest_decides():
    main, pool = iter([1.0] * 6), iter([10.0] * 3 + [25.0] * 3)
    host = HostSpeed(loops=(lambda: next(main), lambda: next(pool)), calibrate_seconds=0.0)
    host.fastest = (1.0, 10.0)
    assert host.read() == (1.0, 10.0) and host.at_full_speed((1.0, 10.0))
    assert host.read() == (1.0, 25.0) and host.slowdown((1.0, 25.0)) == pytest.approx(2.5)
    assert not host.at_full_speed((1.0, 25.0)) and 0 < PoolLoop()() < 0.1


def test_the_default_loops_read_the_timing_core_the_pool_and_the_caches():
    loops = HostSpeed().loops
    assert [type(loop) for loop in loops[1:]] == [PoolLoop, CacheLoop] and loops[0] is reference_loop
    assert loops[2].nbytes == 4 << 20 and 0 < loops[2]() < 0.1 and loops[2].buffer.numel() == 1 << 20


def test_rounds_the_other_threads_cores_ran_slow_are_set_aside_though_the_timing_core_ran_fast():
    """The timing thread's core stays at full speed; the pool loop reads half speed in stretches, and
    the model call (split over the pool) runs at half speed with it."""
    host = Host(every=4)
    loops = (lambda: 1e-5, host.loop)
    lat = measure_latency(host.call(2e-4), None, 1, warmup=2, max_seconds=0.4, min_seconds=0.3,
                          host=HostSpeed(loops=loops, calibrate_seconds=0.0), round_seconds=0.002)
    assert lat.median_ms == pytest.approx(0.2, rel=0.15) and lat.p90_ms < 0.3
    assert 0.3 < lat.noise["host_slow_fraction"] < 0.8


def test_rounds_at_half_speed_are_set_aside_and_counted():
    host = Host(every=4)
    lat = measure_latency(host.call(2e-4), None, 1, warmup=2, max_seconds=0.4, min_seconds=0.3,
                          host=speed(host), round_seconds=0.002)
    assert lat.median_ms == pytest.approx(0.2, rel=0.15) and lat.p90_ms < 0.3
    assert 0.3 < lat.noise["host_slow_fraction"] < 0.8 and lat.noise["host_full_speed"]


def test_a_paired_ratio_comes_from_full_speed_rounds_too():
    host = Host(every=3)
    lat = measure_paired(host.call(4e-4), None, host.call(2e-4), None, 1, warmup=2, max_seconds=0.3,
                         min_seconds=0.3, host=speed(host), round_seconds=0.002)
    assert lat.ratio_to_baseline == pytest.approx(2.0, rel=0.15)
    assert lat.baseline_median_ms == pytest.approx(0.2, rel=0.15) and lat.noise["host_slow_fraction"] > 0.2


def test_a_cell_the_host_ran_slow_throughout_waits_within_its_allowance_is_unstable_and_states_no_ratio():
    """Three visits in a row find the host slow (two, and one extra): the second extra is not made."""
    host = Host(slow_from=2)  # full speed while calibrating and for the first reading, then half
    timer = CellTimer(threads=1, sampler=_Quiet, speed=speed(host), min_seconds=0.0, max_seconds=0.05,
                      wait_seconds=0.05, wait_share=0.01)  # each visit timed 1 s (_Quiet) adds 0.01 s of waiting
    lat = timer.time(host.call(2e-4), None, 1, baseline=(host.call(1e-4), None))
    assert len(lat.visits) == 3 and lat.noise["host_wait_seconds"] == pytest.approx(0.05 + 2 * 0.01, abs=0.015)
    assert lat.stable is False and "host ran below its full speed for 100% of the cell" in lat.unstable_reason
    assert "2.00x their fastest" in lat.unstable_reason and lat.noise["host_full_speed"] is False
    assert "first waited 0.1 s in all for full speed" in lat.unstable_reason
    assert lat.noise["host_visits_skipped"] == 1 and "1 extra visit not made" in lat.unstable_reason
    assert lat.median_ms == pytest.approx(0.4, rel=0.2)  # the least slowed rounds are slow too, and it says so
    row = Row(method="rtn", config={}, task="t", runtime="torch-cpu", latency=[lat])
    base = Row(method="fp32", config={}, task="t", runtime="torch-cpu", latency=[lat])
    assert "not stated: unstable" in speed_claim(row, base, 1) and "host ran below" in speed_claim(row, base, 1)


class _Quiet:
    def start(self):
        pass

    def stop(self):
        from quantbench.measure.noise import Noise
        return Noise(1.0, 2, 0.0, 0.0, 0.0, None, None)


def counting(state: dict) -> type:
    """A quiet sampler that counts the visits started in ``state["visits"]``."""
    class Counting(_Quiet):
        def start(self):
            state["visits"] += 1

    return Counting


def slowed_while(slow):
    """A 0.2 ms model call and a host whose one loop reads it, both at half speed while ``slow()``."""
    return busy(2e-4, slow), HostSpeed(loops=(lambda: 2e-5 if slow() else 1e-5,), calibrate_seconds=0.0)


def test_rounds_are_judged_again_when_the_host_reads_faster_than_before():
    """The host reads half speed while calibrating and for 3 readings, then full speed: the first rounds,
    judged at full speed when timed, are set aside once the faster readings come."""
    from quantbench.measure.latency import time_alone

    calls = {"n": 0}

    def loop():
        calls["n"] += 1
        return 2e-5 if calls["n"] <= 1 + 3 * 3 else 1e-5  # calibration, then 3 readings of 3 calls

    host = HostSpeed(loops=(loop,), calibrate_seconds=0.0)
    visit = time_alone(lambda _: None, None, warmup=1, max_seconds=0.2, min_seconds=0.1, host=host,
                       round_seconds=0.001)
    assert visit.enough and 0 < len(visit.full) < len(visit.rounds)
    assert all(r.before == r.after == (1e-5,) for r in visit.full)


def test_calls_on_a_thread_pool_of_their_own_are_judged_without_torchs_pool_loop():
    pool_reads = []
    host = HostSpeed(loops=(lambda: 1e-5, lambda: pool_reads.append(1) or 1e-5), calibrate_seconds=0.0)
    timer = CellTimer(threads=2, sampler=_Quiet, speed=host, min_seconds=0.0, max_seconds=0.02)
    [own] = timer.time_cells([Cell(lambda _: None, None, 1, own_threads=True)])
    assert not pool_reads and own.noise["host_full_speed"]
    timer.time(lambda _: None, None, 1)
    assert pool_reads


def test_with_too_few_full_speed_rounds_the_numbers_come_from_the_least_slowed_quarter():
    """The loop reads 1.2x / 1.6x / 2x its fastest in turn (one of three rounds 'nearly' full speed), and
    the call runs as slowly as the loop: the cell has no full-speed round and measures the 1.2x ones."""
    levels = [1.2, 1.6, 2.0]
    state = {"reads": 0}

    def loop():
        state["reads"] += 1
        return 1e-5 * levels[(state["reads"] // 3) % 3]

    def run(_):
        end = time.perf_counter() + 2e-4 * levels[(state["reads"] // 3) % 3]
        while time.perf_counter() < end:
            pass

    host = HostSpeed(loops=(loop,), calibrate_seconds=0.0, slow_above=1.1)
    host.fastest = (1e-5,)
    lat = measure_latency(run, None, 1, warmup=2, max_seconds=0.1, min_seconds=0.05, host=host, round_seconds=0.001)
    assert lat.noise["host_full_speed"] is False and lat.noise["host_slow_fraction"] == 1.0
    assert lat.median_ms == pytest.approx(0.24, rel=0.15)  # all rounds: 0.32


@pytest.mark.parametrize("slow_visits, stable", [(2, True), (3, False)])
def test_a_cell_whose_first_visits_found_the_host_slow_is_visited_again_and_measured_from_its_full_speed_visits(
        slow_visits, stable):
    """The host (loop and call) runs at half speed for the first visits: two more visits are made, and
    the cell is measured from the full-speed ones; with only one of those, it is unstable and says so."""
    state = {"visits": 0}

    def slow() -> bool:
        return state["visits"] <= slow_visits

    run, host = slowed_while(slow)
    host.fastest = (1e-5,)
    lat = CellTimer(threads=1, sampler=counting(state), speed=host, min_seconds=0.0, max_seconds=0.04,
                    wait_seconds=0.0, give_up_after=9).time(run, None, 1)  # no waiting: the host's speed changes
    assert state["visits"] == 4 and [v["kept"] for v in lat.visits] == [i >= slow_visits for i in range(4)]
    assert lat.noise["host_visits_set_aside"] == slow_visits and lat.noise["host_slow_fraction"] > 0.4
    assert lat.stable is stable and lat.median_ms == pytest.approx(0.2, rel=0.15)
    assert stable or "host ran below its full speed" in lat.unstable_reason


@pytest.mark.parametrize("factors, kept", [((1.0, 1.7, 1.0), [True, False, True]),
                                           ((1.0, 1.15, 1.07), [True, False, True])])  # the faster pair of two
def test_a_visit_that_disagrees_with_the_others_is_set_aside_once_two_others_agree(factors, kept):
    """A visit runs the call slower while the host's loops read full speed (a slowdown no reading
    shows): a third visit is made, and the cell is measured from the fastest two that agree."""
    state = {"visits": 0}

    def run(_):
        end = time.perf_counter() + 2e-4 * factors[state["visits"] - 1]
        while time.perf_counter() < end:
            pass

    host = HostSpeed(loops=(lambda: 1e-5,), calibrate_seconds=0.0)
    timer = CellTimer(threads=1, sampler=counting(state), speed=host, min_seconds=0.0, max_seconds=0.04)
    lat = timer.time(run, None, 1)
    assert state["visits"] == 3 and [v["kept"] for v in lat.visits] == kept
    assert lat.stable and lat.median_ms == pytest.approx(0.2 * factors[2], rel=0.1)
    assert lat.noise["host_visits_set_aside"] == 1


def test_a_visit_waits_for_the_host_to_read_full_speed_before_it_starts():
    """The host (loop and call) runs at half speed for the first 0.15 s: the first visit waits for it
    instead of being timed slow, so the cell needs no extra visit and is stable."""
    fast_from = time.perf_counter() + 0.15

    def slow() -> bool:
        return time.perf_counter() < fast_from

    run, host = slowed_while(slow)
    host.fastest = (1e-5,)
    lat = CellTimer(threads=1, sampler=_Quiet, speed=host, min_seconds=0.0, max_seconds=0.04).time(run, None, 1)
    assert 0.1 < lat.noise["host_wait_seconds"] < 0.5 and len(lat.visits) == 2
    assert lat.stable and lat.noise["host_slow_fraction"] < 0.1 and lat.median_ms == pytest.approx(0.2, rel=0.15)


def test_a_cells_visits_are_judged_again_once_a_later_cell_of_the_row_finds_the_host_faster():
    """The host runs at half speed from the start (so its fastest reading is a slow one) through the first
    three visits (cell A, cell B, cell A): A's two visits agree at half speed, until B's second visit reads
    full speed. Judged again, A's visits are set aside, and A is measured from two more, at full speed."""
    state = {"visits": 0}

    def slow() -> bool:
        return state["visits"] <= 3

    run, host = slowed_while(slow)
    timer = CellTimer(threads=1, sampler=counting(state), speed=host, min_seconds=0.0, max_seconds=0.04,
                      wait_seconds=0.0)
    a, b = timer.time_cells([Cell(run, None, 1), Cell(run, None, 8)])
    assert [v["kept"] for v in a.visits] == [False, False, True, True] and a.stable
    assert a.median_ms == pytest.approx(0.2, rel=0.15) and a.noise["host_fastest_us"] == [pytest.approx(10.0)]


def test_cells_judged_before_the_host_ran_faster_are_timed_again_if_the_baseline_else_marked_unstable():
    """A run that begins in a slow stretch takes it for full speed: once the host reads 2x faster, the
    baseline row (its runner still loaded) is timed again at the end of the run, and another row's cell,
    whose model is gone, is marked unstable."""
    from torch import nn

    from quantbench.measure.bounds import MIN_BUFFER, HostBounds
    from quantbench.pipeline import RunTiming, settle_stale_latency
    from quantbench.spec import CompareSpec

    state = {"slow": True}
    run, host = slowed_while(lambda: state["slow"])

    timer = CellTimer(threads=1, sampler=_Quiet, speed=host, min_seconds=0.0, max_seconds=0.04)
    timer.bounds["cpu"] = HostBounds(bandwidth={MIN_BUFFER: 10.0}, peak={"float32": 100.0})
    base, other = (Row(method=m, config={}, task="t", runtime="torch-cpu", size_bytes=64,
                       details={"compute_dtype": "float32"}) for m in ("fp32", "rtn"))
    base.latency, other.latency = [timer.time(run, None, 1)], [timer.time(run, None, 1)]
    assert base.latency[0].stable and base.latency[0].median_ms == pytest.approx(0.4, rel=0.15)
    state["slow"] = False
    host.read()
    assert timer.stale(base.latency[0]) == (pytest.approx(2.0), "host")
    timing, spec = RunTiming(timer), CompareSpec(batch_sizes=(1,))
    for row, loaded in ((base, run), (other, None)):
        settle_stale_latency(row, loaded, nn.Linear(4, 4), Task(), spec, timing)
    assert base.latency[0].stable and base.latency[0].median_ms == pytest.approx(0.2, rel=0.15)
    assert "timed again at the end of the run" in base.notes[-1] and timer.stale(base.latency[0]) is None
    assert base.details["latency_timed_again"] == pytest.approx(2.0) and "latency_timed_again" not in other.details
    assert other.latency[0].stable is False and "later ran 2.00x faster" in other.latency[0].unstable_reason


def test_visits_do_not_wait_for_full_speed_while_other_processes_use_the_cores():
    """A CPU hog slows the host for good: the first visit waits its 0.05 s in vain; once its counters
    show the hog, later visits start at once, and the cell names the load."""
    class Busy(_Quiet):
        def stop(self):
            from quantbench.measure.noise import Noise
            return Noise(1.0, 2, 1.5, 0.0, 0.0, None, None)

    host = Host(slow_from=2)
    timer = CellTimer(threads=1, sampler=Busy, speed=speed(host), min_seconds=0.0, max_seconds=0.05,
                      wait_seconds=0.05, wait_share=1.0, give_up_after=9)
    lat = timer.time(host.call(2e-4), None, 1)
    assert len(lat.visits) == 4 and lat.noise["host_wait_seconds"] == pytest.approx(0.05, abs=0.015)
    assert lat.stable is False and "other processes used 1.50 of the 2 cores" in lat.unstable_reason


def test_after_three_slow_visits_in_a_row_visits_neither_wait_nor_run_on_nor_are_made_again_until_one_is_fast():
    """The host runs at half speed through a row's two cells (visits A, B, A, B): the first three wait and,
    short of full-speed rounds, run past their deadline; the fourth does neither, and no extra visit is
    made. Once the host is fast, a visit finds it so, and the next cell is timed as before."""
    state = {"slow": True}
    run, host = slowed_while(lambda: state["slow"])
    host.fastest = (1e-5,)
    spans = []

    class Clocked(_Quiet):
        def start(self):
            self.began = time.perf_counter()

        def stop(self):
            spans.append(time.perf_counter() - self.began)
            return super().stop()

    timer = CellTimer(threads=1, sampler=Clocked, speed=host, min_seconds=0.0, max_seconds=0.2, wait_seconds=0.05,
                      wait_share=1.0)  # a visit: 0.1 s, and 0.1 s more for full-speed rounds
    a, b = timer.time_cells([Cell(run, None, 1), Cell(run, None, 8)])
    assert len(a.visits) == len(b.visits) == 2 and timer.host_slow_throughout
    assert a.noise["host_visits_skipped"] == b.noise["host_visits_skipped"] == 2
    assert a.noise["host_wait_seconds"] == pytest.approx(0.1, abs=0.02)
    assert b.noise["host_wait_seconds"] == pytest.approx(0.05, abs=0.015)
    assert spans[3] < 0.75 * min(spans[:3])
    assert a.stable is False and "2 extra visits not made" in a.unstable_reason
    state["slow"] = False
    [c] = timer.time_cells([Cell(run, None, 1)])
    assert c.stable and c.noise["host_visits_skipped"] == 0 and not timer.host_slow_throughout


def test_a_cell_on_a_pool_of_its_own_is_judged_stale_against_its_own_loops_readings():
    """ONNX Runtime-style cells read the first loop alone (``HostSpeed.first_loop_only``): in a run of
    only such cells, a later faster reading there makes an earlier cell stale too."""
    state = {"slow": True}
    run, _ = slowed_while(lambda: state["slow"])
    host = HostSpeed(loops=(lambda: 2e-5 if state["slow"] else 1e-5, lambda: 1e-5), calibrate_seconds=0.0)
    timer = CellTimer(threads=2, sampler=_Quiet, speed=host, min_seconds=0.0, max_seconds=0.04)
    [lat] = timer.time_cells([Cell(run, None, 1, own_threads=True)])
    assert timer.stale(lat) is None
    state["slow"] = False
    host.first_loop_only().read()
    assert timer.stale(lat) == (pytest.approx(2.0), "host")


def test_a_loop_judged_between_calls_takes_its_full_speed_from_readings_between_timed_calls_only():
    """Like the cache loop after each call of a large model: it reads 1.6x its best apart from calls
    whenever a call came before. Calibration and waits do not set its fastest, so the rounds of a cell
    are at full speed; the other loop is judged against its fastest apart from calls too."""
    state = {"after_call": False}

    class AfterCalls:
        judged_between_calls = True

        def __call__(self):
            return 1.6e-5 if state["after_call"] else 1e-5

    host = HostSpeed(loops=(lambda: 1e-5, AfterCalls()), calibrate_seconds=0.0)
    assert host.wait_for_full_speed(1.0) < 1.0 and host.fastest == (1e-5, math.inf)
    state["after_call"] = True
    host.read()
    assert host.fastest == (1e-5, 1.6e-5) and host.at_full_speed(host.read())
    state["after_call"] = False
    host.read(between_calls=False)
    assert host.fastest == (1e-5, 1.6e-5)
    run = busy(1e-4, lambda: False)

    def called(_):
        state["after_call"] = True
        run(_)

    lat = CellTimer(threads=1, sampler=_Quiet, speed=host, min_seconds=0.0, max_seconds=0.04).time(called, None, 1)
    assert lat.stable and lat.noise["host_slow_fraction"] == 0.0
    assert CacheLoop.judged_between_calls and not getattr(PoolLoop(), "judged_between_calls", False)


def test_what_a_reading_costs_counts_the_loops_judged_between_calls_too():
    class Slow:
        judged_between_calls = True

        def __call__(self):
            time.sleep(0.002)
            return 0.002

    host = HostSpeed(loops=(lambda: 1e-5, Slow()), calibrate_seconds=0.01)
    host.read()
    assert host.read_seconds >= 3 * 0.002 and host.fastest[0] == 1e-5
