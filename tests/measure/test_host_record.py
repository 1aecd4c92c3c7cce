"""A run slow from start to end is judged against the host loops' fastest in earlier runs on this
machine since it booted (measure/hostrecord.py)."""
import json

import pytest

from quantbench.measure.cell import Cell, CellTimer
from quantbench.measure.hostrecord import FILE, GROSS, RECENT_RUNS, HostRecord
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
    assert record.key.endswith("reference_loop,PoolLoop,CacheLoop(4194304)|between-calls")
    assert HostRecord.load(tmp_path, LOOPS, 2, boot_id=tmp_path / "missing") is None
    assert HostRecord.load(None, LOOPS, 2, boot_id=boot) is None
    monkeypatch.setenv("QUANTBENCH_HOST_RECORD", "off")
    assert HostRecord.load(tmp_path, LOOPS, 2, boot_id=boot) is None


def test_a_run_keeps_each_loops_fastest_and_drops_other_boots(tmp_path, boot):
    (tmp_path / FILE).write_text(json.dumps({"boot-old|x": {"fastest_s": [1.0], "when": ["then"]}}))
    HostRecord.load(tmp_path, LOOPS, 2, boot_id=boot).save((2e-5, 5e-6, 5e-5), {"m|torch-cpu|b1": 0.03})
    HostRecord.load(tmp_path, LOOPS, 2, boot_id=boot).save((1e-5, 9e-6, 4e-5), {"m|torch-cpu|b1": 0.04,
                                                                                "m|torch-cpu|b8": 0.1})
    record = HostRecord.load(tmp_path, LOOPS, 2, boot_id=boot)
    assert record.fastest == (1e-5, 5e-6, 4e-5) and list(json.loads((tmp_path / FILE).read_text())) == [record.key]
    assert {k: ms for k, (ms, _) in record.baselines.items()} == {"m|torch-cpu|b1": 0.03, "m|torch-cpu|b8": 0.1}
    assert HostRecord.load(tmp_path, LOOPS, 1, boot_id=boot).fastest is None  # another thread count
    entries = json.loads((tmp_path / FILE).read_text())
    for recent in (5, [{"fastest_s": [1e-5, 5e-6, 4e-5], "baselines": {"m|torch-cpu|b1": "fast"}}]):
        entries[record.key]["recent"] = recent
        (tmp_path / FILE).write_text(json.dumps(entries))
        assert HostRecord.load(tmp_path, LOOPS, 2, boot_id=boot).recent == []
    (tmp_path / FILE).write_text("{not json")
    assert HostRecord.load(tmp_path, LOOPS, 2, boot_id=boot).fastest is None


def _judged(fastest_us: list[float]):
    from quantbench.measure.latency import Latency

    return Latency(1, 0.05, 0.04, 0.06, 100, 2e4, stable=True, noise={"host_fastest_us": fastest_us})


def test_a_cell_judged_against_readings_far_slower_than_earlier_runs_is_unstable_and_says_which_loop(tmp_path, boot):
    loops = (lambda: 1e-5, lambda: 1e-5)
    HostRecord.load(tmp_path, loops, 1, boot_id=boot).save((20e-6, 40e-6), {})
    timer = CellTimer(threads=1, speed=HostSpeed(loops=loops))
    timer.record = HostRecord.load(tmp_path, loops, 1, boot_id=boot)
    slow, near, first_loop_only = _judged([22.0, 80.0]), _judged([25.0, 50.0]), _judged([40.0])
    for lat in (slow, near, first_loop_only):
        timer.judge_against_record(lat)
    assert slow.stable is False and slow.noise["host_record_slowdown"] == pytest.approx(2.0)
    assert slow.noise["host_boot_slowdown"] == pytest.approx(2.0)
    assert "loops ran slower in this run than in earlier runs" in slow.unstable_reason
    assert "<lambda>: 80 us against 40 us usual (median of recent runs), 40 us fastest" in slow.unstable_reason
    assert "<lambda>: 22 us" not in slow.unstable_reason  # 1.1x: not the loop that was slow
    assert near.stable and near.noise["host_record_slowdown"] == pytest.approx(1.25)
    assert first_loop_only.stable is False and first_loop_only.noise["host_record_slowdown"] == pytest.approx(2.0)


def test_the_usual_speed_follows_a_host_slower_for_good_but_the_fastest_since_boot_still_catches_a_gross_slowdown(
        tmp_path, boot):
    """One fast run, then runs 1.25x slower: after two of them the usual is the slower speed, and a run
    at 1.35x the fast one passes; one at 1.68x its fastest does not, even when the usual is 1.55x. Old
    records, without recent runs, are judged by the fastest alone."""
    loops = (lambda: 1e-5,)
    timer = CellTimer(threads=1, speed=HostSpeed(loops=loops))
    HostRecord.load(tmp_path, loops, 1, boot_id=boot).save((40e-6,), {"m|torch-cpu|b1": 0.02})
    for runs in range(1, RECENT_RUNS + 2):
        timer.record = HostRecord.load(tmp_path, loops, 1, boot_id=boot)
        lat = _judged([54.0])
        timer.judge_against_record(lat)
        assert lat.stable is (runs > 2), runs  # the median of 1.0, 1.25, 1.25 is 1.25
        assert lat.noise["host_boot_slowdown"] == pytest.approx(54 / 40)
        timer.record.save((50e-6,), {"m|torch-cpu|b1": 0.025})
    record = HostRecord.load(tmp_path, loops, 1, boot_id=boot)
    assert len(record.recent) == RECENT_RUNS and record.fastest == (40e-6,)
    assert record.baseline_slowdown("m|torch-cpu|b1", 0.03).usual == pytest.approx(0.03 / 0.025)
    assert record.baseline_slowdown("m|torch-cpu|b1", 0.03).fastest == pytest.approx(0.03 / 0.02)
    for _ in range(3):  # the usual becomes 1.55x the fastest
        HostRecord.load(tmp_path, loops, 1, boot_id=boot).save((62e-6,), {})
    timer.record, gross, near = (HostRecord.load(tmp_path, loops, 1, boot_id=boot),
                                 _judged([40 * GROSS * 1.05]), _judged([40 * GROSS * 0.95]))
    timer.judge_against_record(gross)
    timer.judge_against_record(near)
    assert gross.noise["host_record_slowdown"] < 1.3 and gross.noise["host_boot_slowdown"] > GROSS
    assert gross.stable is False and "62 us usual" in gross.unstable_reason and near.stable
    entries = json.loads((tmp_path / FILE).read_text())
    for entry in entries.values():
        del entry["recent"]
    (tmp_path / FILE).write_text(json.dumps(entries))
    timer.record, old = HostRecord.load(tmp_path, loops, 1, boot_id=boot), _judged([54.0])
    timer.judge_against_record(old)
    assert old.stable and "host_record_slowdown" not in old.noise and old.noise["host_boot_slowdown"] > 1.3


def test_a_baseline_that_never_ran_near_its_fastest_in_earlier_runs_marks_its_batch_sizes_cells_unstable(
        tmp_path, boot):
    loops = (lambda: 1e-5,)
    HostRecord.load(tmp_path, loops, 1, boot_id=boot).save((1e-5,), {"m|torch-cpu|b1": 0.026, "m|torch-cpu|b8": 0.1})
    timer = CellTimer(threads=1, speed=HostSpeed(loops=loops), model="m")
    timer.record = HostRecord.load(tmp_path, loops, 1, boot_id=boot)
    timer.baseline_fastest = {("torch-cpu", 1): 0.05, ("torch-cpu", 8): 0.125}
    slow, near, unpaired = _judged([10.0]), _judged([10.0]), _judged([10.0])
    near.batch_size = 8
    timer.judge_against_record(slow, "torch-cpu")
    timer.judge_against_record(near, "torch-cpu")
    timer.judge_against_record(unpaired)
    assert slow.stable is False and slow.noise["baseline_record_slowdown"] == pytest.approx(0.05 / 0.026)
    assert "the baseline ran slower in this run than in earlier runs" in slow.unstable_reason
    assert "0.05 ms against 0.026 ms usual (median of recent runs), 0.026 ms fastest" in slow.unstable_reason
    assert near.stable and near.noise["baseline_record_slowdown"] == pytest.approx(1.25)
    assert unpaired.stable and "baseline_record_slowdown" not in unpaired.noise


def test_a_comparison_on_a_host_slower_than_in_earlier_runs_marks_its_cells_unstable_and_keeps_the_record(
        small_spec, monkeypatch):
    """After a first run, the record is made to say that the loops and fp32 once ran 100x faster than
    they can: every latency cell of the next run is unstable for both, no speed is stated, and the record
    keeps the faster numbers."""
    from pathlib import Path

    from quantbench.api import compare
    from quantbench.measure.hostrecord import BOOT_ID
    from quantbench.report.speed import speed_claim

    monkeypatch.setenv("QUANTBENCH_HOST_RECORD", "on")
    folder, threads = Path(small_spec.cache_dir) / "record", small_spec.resolved_threads()
    small_spec.cache_dir, small_spec.methods, small_spec.batch_sizes = str(folder), "fp32,rtn", (1,)
    if HostRecord.load(folder, HostSpeed().loops, threads) is None:
        pytest.skip(f"no boot id at {BOOT_ID}")
    compare(small_spec)
    entries = json.loads((folder / FILE).read_text())
    [entry] = entries.values()
    entry["fastest_s"] = [f / 100 for f in entry["fastest_s"]]
    entry["baselines"] = {k: [ms / 100, when] for k, (ms, when) in entry["baselines"].items()}
    [run] = entry["recent"]
    run["fastest_s"], run["baselines"] = entry["fastest_s"], {k: ms for k, (ms, _) in entry["baselines"].items()}
    assert len(entry["baselines"]) == len(small_spec.batch_sizes)
    (folder / FILE).write_text(json.dumps(entries))
    results = compare(small_spec)
    cells = [lat for row in results.rows for lat in row.latency]
    assert cells and all(lat.stable is False for lat in cells)
    assert all("loops ran slower in this run than in earlier runs" in lat.unstable_reason for lat in cells)
    assert all("the baseline ran slower in this run than in earlier runs" in lat.unstable_reason for lat in cells)
    fp32, rtn = results.rows
    assert "not stated: unstable" in speed_claim(rtn, fp32, 1)
    record = HostRecord.load(folder, HostSpeed().loops, threads)
    assert record.fastest == tuple(entry["fastest_s"])
    assert {k: ms for k, (ms, _) in record.baselines.items()} == {k: ms for k, (ms, _) in entry["baselines"].items()}


def test_the_record_keeps_only_baseline_visits_that_no_other_process_shared_the_cores_in(tmp_path, boot):
    """fp32 at batch 1 is timed quiet, at batch 8 while another process uses a core: this run is judged by
    both, but the record keeps batch 1 alone, so that a loaded run does not make the usual slower."""
    from quantbench.measure.noise import Noise

    from .test_hostspeed import busy

    state = {"loaded": False}

    class Sampler:
        def start(self):
            pass

        def stop(self):
            return Noise(1.0, 2, 1.5 if state["loaded"] else 0.0, 0.0, 0.0, None, None)

    loops = (lambda: 1e-5,)
    timer = CellTimer(threads=1, sampler=Sampler, speed=HostSpeed(loops=loops, calibrate_seconds=0.0),
                      min_seconds=0.0, max_seconds=0.04, model="m", record_folder=tmp_path)
    timer.record = HostRecord.load(tmp_path, loops, 1, boot_id=boot)
    base = busy(2e-4, lambda: False)
    timer.time_cells([Cell(base, None, 1, reference="rt")])
    state["loaded"] = True
    timer.time_cells([Cell(base, None, 8, reference="rt")])
    assert set(timer.baseline_fastest) == {("rt", 1), ("rt", 8)}
    timer.save_record()
    record = HostRecord.load(tmp_path, loops, 1, boot_id=boot)
    assert set(record.baselines) == {"m|rt|b1"} and set(record.recent[-1]["baselines"]) == {"m|rt|b1"}
