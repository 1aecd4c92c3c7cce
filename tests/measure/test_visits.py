"""A cell is timed in visits taken in turn with the row's other cells; visits that disagree mark the
cell unstable (issue 12: a host speed held for seconds, which no reading between rounds shows)."""
import time

import pytest

from quantbench.measure.cell import Cell, CellTimer
from quantbench.measure.noise import Noise, visits_disagree, worst
from quantbench.report.speed import speed_claim
from quantbench.results import Row


class Visits:
    """A sampler factory that counts the visits begun (each visit starts one sampler)."""

    def __init__(self):
        self.begun = 0

    def __call__(self):
        outer = self

        class Sampler:
            def start(self):
                outer.begun += 1

            def stop(self):
                return quiet()

        return Sampler()


def quiet(**noise) -> Noise:
    return Noise(**({"seconds": 0.1, "cores": 2, "other_cores": 0.0, "steal_fraction": 0.0, "run_queue_wait": 0.0,
                     "load_before": 0.1, "load_after": 0.1} | noise))


def busy(seconds_of):
    """A call that spins for ``seconds_of()`` seconds."""
    def run(_):
        end = time.perf_counter() + seconds_of()
        while time.perf_counter() < end:
            pass
    return run


def timer(sampler) -> CellTimer:
    return CellTimer(threads=1, sampler=sampler, speed=None, min_seconds=0.02, max_seconds=0.1)


def test_a_row_whose_speed_changes_between_visits_is_unstable_and_states_no_ratio():
    visits = Visits()
    row = busy(lambda: 2e-4 if visits.begun == 1 else 4e-4)  # the second visit runs the row at half speed
    lat = timer(visits).time(row, None, 1, baseline=(busy(lambda: 2e-4), None))
    assert visits.begun == 2 and [v["ratio_to_baseline"] for v in lat.visits] == [pytest.approx(1, rel=0.2),
                                                                                 pytest.approx(2, rel=0.2)]
    assert lat.stable is False and "its 2 visits, timed apart, disagree by" in lat.unstable_reason
    assert "ratios to the baseline" in lat.unstable_reason
    base = Row(method="fp32", config={}, task="t", runtime="torch-cpu", latency=[lat])
    claim = speed_claim(Row(method="rtn", config={}, task="t", runtime="torch-cpu", latency=[lat]), base, 1)
    assert "not stated: unstable" in claim and "visits" in claim


def test_visits_that_agree_leave_the_cell_stable_and_pool_their_rounds():
    lat = timer(Visits()).time(busy(lambda: 2e-4), None, 1, baseline=(busy(lambda: 1e-4), None))
    assert lat.stable is True and len(lat.visits) == 2 and lat.ratio_to_baseline == pytest.approx(2, rel=0.2)
    assert lat.repeats >= 2 * 3 and lat.rounds >= 2 * 3  # both visits' rounds (3 at least each)


def test_a_rows_cells_are_visited_in_turn():
    order = []

    def call(name):
        def run(_):
            if not order or order[-1] != name:
                order.append(name)
        return run

    cells = [Cell(call("batch 1"), None, 1), Cell(call("batch 8"), None, 8)]
    lats = timer(Visits()).time_cells(cells)
    assert order == ["batch 1", "batch 8", "batch 1", "batch 8"] and [l.batch_size for l in lats] == [1, 8]


def test_unpaired_visits_are_judged_by_their_medians():
    assert visits_disagree([{"median_ms": 1.0}, {"median_ms": 1.08}], 0.10) is None
    reason = visits_disagree([{"median_ms": 1.0}, {"median_ms": 1.3}], 0.10)
    assert "disagree by 30% (medians (ms) 1, 1.3)" in reason
    assert visits_disagree([{"median_ms": 1.0}], 0.10) is None


def test_a_cells_noise_is_the_worst_of_its_visits():
    noise = worst([quiet(other_cores=0.1, load_before=0.5, steal_fraction=None),
                   quiet(other_cores=0.9, run_queue_wait=0.3, load_after=2.0)])
    assert noise.other_cores == 0.9 and noise.run_queue_wait == 0.3 and noise.steal_fraction == 0.0
    assert noise.seconds == pytest.approx(0.2) and noise.load_before == 0.5 and noise.load_after == 2.0


def test_the_counters_reason_comes_before_the_visits_so_a_conclusion_names_the_load():
    from quantbench.measure.noise import instability

    reason = instability(quiet(other_cores=0.9), 1.1, threads=2, visits=[{"median_ms": 1.0}, {"median_ms": 2.0}],
                         host={"host_full_speed": False, "host_slow_fraction": 0.5, "host_slowdown": 1.8})
    assert reason.startswith("other processes used 0.90") and reason.index("host ran below") < reason.index("visits")
