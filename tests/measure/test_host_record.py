"""A run slow from start to end is judged against the host loops' fastest in earlier runs on this
machine since it booted (measure/hostrecord.py)."""
import json

import pytest

from quantbench.measure.cell import CellTimer
from quantbench.measure.hostrecord import FILE, HostRecord
from quantbench.measure.hostspeed import CacheLoop, HostSpeed, PoolLoop, reference_loop

LOOPS = (reference_loop, PoolLoop(), CacheLoop())


@pytest.fixture
def boot(tmp_path, monkeypatch):
    monkeypatch.setenv("QUANTBENCH_HOST_RECORD", "on")
    path = tmp_path / "boot_id"
    path.write_text("boot-a\n")
    return path


def test_a_record_is_per_boot_threads_and_loops_and_off_when_asked(tmp_path, boot, monkeypatch):
    record = HostRecord.load(tmp_path, LOOPS, 2, boot_id=boot)
    assert record.fastest is None and record.key.startswith("boot-a|threads=2|")
    assert record.key.endswith("reference_loop,PoolLoop,CacheLoop(4194304)")
    assert HostRecord.load(tmp_path, LOOPS, 2, boot_id=tmp_path / "missing") is None
    assert HostRecord.load(None, LOOPS, 2, boot_id=boot) is None
    monkeypatch.setenv("QUANTBENCH_HOST_RECORD", "off")
    assert HostRecord.load(tmp_path, LOOPS, 2, boot_id=boot) is None


def test_a_run_keeps_each_loops_fastest_and_drops_other_boots(tmp_path, boot):
    (tmp_path / FILE).write_text(json.dumps({"boot-old|x": {"fastest_s": [1.0], "when": ["then"]}}))
    HostRecord.load(tmp_path, LOOPS, 2, boot_id=boot).save((2e-5, 5e-6, 5e-5))
    HostRecord.load(tmp_path, LOOPS, 2, boot_id=boot).save((1e-5, 9e-6, 4e-5))
    record = HostRecord.load(tmp_path, LOOPS, 2, boot_id=boot)
    assert record.fastest == (1e-5, 5e-6, 4e-5) and list(json.loads((tmp_path / FILE).read_text())) == [record.key]
    assert HostRecord.load(tmp_path, LOOPS, 1, boot_id=boot).fastest is None  # another thread count
    (tmp_path / FILE).write_text("{not json")
    assert HostRecord.load(tmp_path, LOOPS, 2, boot_id=boot).fastest is None


def _judged(fastest_us: list[float]):
    from quantbench.measure.latency import Latency

    return Latency(1, 0.05, 0.04, 0.06, 100, 2e4, stable=True, noise={"host_fastest_us": fastest_us})


def test_a_cell_judged_against_readings_far_slower_than_earlier_runs_is_unstable_and_says_which_loop(tmp_path, boot):
    loops = (lambda: 1e-5, lambda: 1e-5)
    HostRecord.load(tmp_path, loops, 1, boot_id=boot).save((20e-6, 40e-6))
    timer = CellTimer(threads=1, speed=HostSpeed(loops=loops))
    timer.record = HostRecord.load(tmp_path, loops, 1, boot_id=boot)
    slow, near, first_loop_only = _judged([22.0, 80.0]), _judged([25.0, 50.0]), _judged([40.0])
    for lat in (slow, near, first_loop_only):
        timer.judge_against_record(lat)
    assert slow.stable is False and slow.noise["host_record_slowdown"] == pytest.approx(2.0)
    assert "no faster in this run than 2.00x their fastest in earlier runs" in slow.unstable_reason
    assert "<lambda>: 80.0 us against 40.0 us" in slow.unstable_reason
    assert near.stable and near.noise["host_record_slowdown"] == pytest.approx(1.25)
    assert first_loop_only.stable is False and first_loop_only.noise["host_record_slowdown"] == pytest.approx(2.0)


def test_a_comparison_on_a_host_slower_than_in_earlier_runs_marks_its_cells_unstable_and_keeps_the_record(
        small_spec, monkeypatch):
    """The record says the loops once ran 100x faster than they can: every latency cell is unstable,
    no speed is stated, and the record keeps the faster readings."""
    from pathlib import Path

    from quantbench.api import compare
    from quantbench.measure.hostrecord import BOOT_ID
    from quantbench.report.speed import speed_claim

    monkeypatch.setenv("QUANTBENCH_HOST_RECORD", "on")
    record = HostRecord.load(Path(small_spec.cache_dir), HostSpeed().loops, small_spec.resolved_threads())
    if record is None:
        pytest.skip(f"no boot id at {BOOT_ID}")
    record.fastest = None
    record.save((1e-8, 1e-8, 1e-8))
    small_spec.methods = "fp32,rtn"
    results = compare(small_spec)
    cells = [lat for row in results.rows for lat in row.latency]
    assert cells and all(lat.stable is False and "in earlier runs on this machine" in lat.unstable_reason
                         for lat in cells)
    fp32, rtn = results.rows
    assert "not stated: unstable" in speed_claim(rtn, fp32, 1)
    threads = small_spec.resolved_threads()
    assert HostRecord.load(Path(small_spec.cache_dir), HostSpeed().loops, threads).fastest == (1e-8,) * 3
