"""The baseline runs in every paired cell of a run, so its own calls read the host's speed where the
reference loops cannot: a visit in which it ran slower than its fastest is set aside, a cell whose
every visit found it slow is unstable, and a cell timed before it ran faster is stale."""
import re

import pytest
from torch import nn

from quantbench.measure.bounds import MIN_BUFFER, HostBounds
from quantbench.measure.cell import Cell, CellTimer
from quantbench.measure.hostspeed import HostSpeed
from quantbench.pipeline import RunTiming, _fill_latency, settle_stale_latency
from quantbench.results import Row
from quantbench.spec import CompareSpec

from .test_hostspeed import Task, _Quiet, busy, counting


def steady_timer(**kw) -> CellTimer:
    """A timer whose host loop always reads full speed: only the baseline's calls can show a slow host."""
    host = HostSpeed(loops=(lambda: 1e-5,), calibrate_seconds=0.0)
    return CellTimer(threads=1, speed=host, min_seconds=0.0, max_seconds=0.04, **kw)


def test_a_visit_whose_baseline_ran_slow_is_set_aside_though_the_host_loops_read_full_speed():
    """Visit 3 (the row's first) runs both sides at half speed: its ratio agrees with the others, but
    the baseline ran 2x slower than in its own cell, so it is set aside and the row visited again."""
    state = {"visits": 0}
    slow = lambda: state["visits"] == 3  # noqa: E731
    base, row = busy(2e-4, slow), busy(1e-4, slow)
    timer = steady_timer(sampler=counting(state))
    [fp32] = timer.time_cells([Cell(base, None, 1, reference="rt")])
    [lat] = timer.time_cells([Cell(row, None, 1, baseline=(base, None), reference="rt")])
    assert fp32.stable and state["visits"] == 5 and [v["kept"] for v in lat.visits] == [False, True, True]
    assert lat.stable and lat.median_ms == pytest.approx(0.1, rel=0.15)
    assert lat.noise["baseline_slowdown"] == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize("slow_from", [3, 4])
def test_a_cell_whose_baseline_ran_slow_in_all_visits_but_one_is_unstable_and_says_why(slow_from):
    """The baseline's own cell takes visits 1 and 2; from visit ``slow_from`` on both sides run at half
    speed, so the row has at most one full-speed visit of its four."""
    state = {"visits": 0}
    slow = lambda: state["visits"] >= slow_from  # noqa: E731
    base, row = busy(2e-4, slow), busy(1e-4, slow)
    timer = steady_timer(sampler=counting(state))
    timer.time_cells([Cell(base, None, 1, reference="rt")])
    [lat] = timer.time_cells([Cell(row, None, 1, baseline=(base, None), reference="rt")])
    assert len(lat.visits) == 4 and lat.stable is False and lat.ratio_to_baseline == pytest.approx(0.5, rel=0.15)
    slow_visits = 6 - slow_from + 1
    assert lat.noise["baseline_slow_visits"] == slow_visits
    assert f"in {slow_visits} of its visits by the baseline" in lat.unstable_reason
    slower = re.search(r"by the baseline run beside it \(at ([0-9.]+)x its fastest", lat.unstable_reason)
    assert slower and float(slower.group(1)) == pytest.approx(2.0, rel=0.15)


def test_cells_timed_before_the_baseline_ran_faster_are_timed_again_or_marked_unstable():
    """fp32 and rtn are timed while the host is slow (in a way its loops miss), gptq after: beside gptq,
    fp32 runs 2x faster. fp32, still loaded, is timed again; rtn, gone, is marked unstable."""
    state = {"slow": True}
    base, row = busy(2e-4, lambda: state["slow"]), busy(1e-4, lambda: state["slow"])
    timer = steady_timer(sampler=_Quiet)
    timer.bounds["cpu"] = HostBounds(bandwidth={MIN_BUFFER: 10.0}, peak={"float32": 100.0})
    timing, spec, fp32 = RunTiming(timer), CompareSpec(batch_sizes=(1,)), nn.Linear(4, 4)
    rows = [Row(method=m, config={}, task="t", runtime="rt", size_bytes=64, details={"compute_dtype": "float32"})
            for m in ("fp32", "rtn", "gptq")]
    for r, run in zip(rows, (base, row, row)):
        state["slow"] = r.method != "gptq"
        _fill_latency(r, run, fp32, Task(), spec, timing)
        timing.baselines.setdefault("rt", base)
    assert all(r.latency[0].stable for r in rows)
    for r in rows:
        settle_stale_latency(r, base if r.is_baseline else None, fp32, Task(), spec, timing)
    fp32_row, rtn, gptq = rows
    assert fp32_row.latency[0].median_ms == pytest.approx(0.2, rel=0.15) and fp32_row.latency[0].stable
    assert fp32_row.details["latency_timed_again"] == pytest.approx(2.0, rel=0.15)
    assert "the baseline, beside later rows, later ran" in fp32_row.notes[-1]
    assert rtn.latency[0].stable is False and "the baseline later ran" in rtn.latency[0].unstable_reason
    assert gptq.latency[0].stable and "latency_timed_again" not in gptq.details
