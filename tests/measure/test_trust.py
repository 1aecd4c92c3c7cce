"""Latency you can trust: paired timing, the noise detector, conclusions only from stable cells, the
bound from the loaded artifact's bytes, and slowdowns explained (issue 12)."""
import time

import pytest
import torch

from quantbench.measure.cell import CellTimer
from quantbench.measure.latency import Latency, measure_paired
from quantbench.measure.noise import Noise, ProcSampler, instability
from quantbench.results import Row
from quantbench.report.speed import speed_claim


class FakeSampler:
    """Reports what it is told: the detector must judge from these numbers alone."""

    def __init__(self, **noise):
        self.noise = {"seconds": 1.0, "cores": 2, "other_cores": 0.0, "steal_fraction": 0.0, "run_queue_wait": 0.0,
                      "load_before": 0.1, "load_after": 0.1} | noise

    def start(self):
        pass

    def stop(self):
        return Noise(**self.noise)


@pytest.mark.parametrize("noise, reason", [
    ({"other_cores": 0.9}, "other processes used 0.90 of the 2 cores"),
    ({"steal_fraction": 0.2}, "hypervisor stole 20%"),
    ({"run_queue_wait": 0.4}, "waited 0.40 s per second for a free core"),
])
def test_the_detector_marks_a_cell_unstable_from_a_sampler_showing_contention(noise, reason):
    timer = CellTimer(threads=2, sampler=lambda: FakeSampler(**noise), speed=None, min_seconds=0.0, max_seconds=0.05)
    lat = timer.time(lambda x: x + 1, torch.zeros(4), 4)
    assert lat.stable is False and reason in lat.unstable_reason
    quiet = CellTimer(threads=2, sampler=FakeSampler, speed=None, min_seconds=0.0,
                      max_seconds=0.05).time(lambda x: x + 1, torch.zeros(4), 4)
    assert quiet.noise["other_cores"] == 0.0 and reason not in (quiet.unstable_reason or "")  # a tiny call may
    # still spread or differ between visits on a real clock; the sampler's reasons are what is judged here


def test_other_processes_on_cores_this_run_leaves_idle_do_not_count_but_a_wide_spread_does():
    busy_other_core = Noise(1.0, 2, 0.95, 0.0, 0.0, None, None)
    assert instability(busy_other_core, 1.1, threads=1) is None
    assert "other processes" in instability(busy_other_core, 1.1, threads=2)
    assert "spread p90/p10 = 3.00" in instability(None, 3.0, threads=1)


def test_the_proc_sampler_sees_another_process_burn_a_core():
    import subprocess
    import sys

    sampler = ProcSampler()
    hog = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 1.0\nwhile time.time() < end: pass"])
    try:
        time.sleep(0.2)
        sampler.start()
        time.sleep(0.6)
        noise = sampler.stop()
    finally:
        hog.wait()
    assert noise.other_cores > 0.5 and noise.seconds == pytest.approx(0.6, abs=0.1)


def test_paired_timing_measures_the_ratio_round_by_round():
    slow, fast = (lambda x: time.sleep(0.002)), (lambda x: time.sleep(0.001))
    lat = measure_paired(slow, None, fast, None, 1, warmup=1, max_seconds=0.5, min_rounds=6, round_seconds=0.004)
    assert 1.5 < lat.ratio_to_baseline < 2.3 and lat.ratio_ci[0] <= lat.ratio_to_baseline <= lat.ratio_ci[1]
    assert lat.rounds >= 6 and lat.baseline_median_ms == pytest.approx(1.1, abs=0.4)


def _row(method, ratio=None, ci=None, stable=True, reason=None, **details):
    lat = Latency(1, 1.0, 0.9, 1.1, 30, 1000.0, stable=stable, unstable_reason=reason, ratio_to_baseline=ratio,
                  ratio_ci=ci, bound_ms=0.1, bound_by="memory", fraction_of_bound=0.1)
    return Row(method=method, config={}, task="t", runtime="torch-cpu", latency=[lat], details=details)


def test_a_speed_ratio_is_stated_only_from_stable_cells_whose_interval_excludes_one():
    base = _row("fp32", compute_dtype="float32")
    assert "2.00x faster [1.82-2.22]" in speed_claim(_row("rtn", 0.5, [0.45, 0.55]), base, 1)
    assert "no measurable difference" in speed_claim(_row("rtn", 0.98, [0.9, 1.05]), base, 1)
    unstable = speed_claim(_row("rtn", 0.5, [0.45, 0.55], stable=False, reason="other processes used 1.00"), base, 1)
    assert "not stated: unstable, rerun on an idle machine" in unstable and "faster" not in unstable
    shaky_base = _row("fp32", stable=False, reason="samples spread")
    assert "faster" not in speed_claim(_row("rtn", 0.5, [0.45, 0.55]), shaky_base, 1)


def test_an_explained_slowdown_names_the_layer_that_fell_back_to_dense():
    base = _row("fp32", compute_dtype="float32")
    slower = _row("rtn", 1.4, [1.3, 1.5], compute_dtype="bfloat16", dense_lowbit_layers=["net.2"])
    claim = speed_claim(slower, base, 1)
    assert "1.40x slower" in claim and "layers that fell back to dense: net.2" in claim
    assert "cast float32 -> bfloat16" in claim


def test_the_bound_uses_the_loaded_artifacts_packed_bytes(tmp_path):
    """An int4 row's bytes read per call (and so its memory bound) are about 1/8 of fp32's."""
    from quantbench.config import parse_methods
    from quantbench.methods import Context
    from quantbench.pipeline import bytes_read_per_call, realize_row
    from quantbench.runtimes import TorchCPU
    from quantbench.tasks import build_task

    task = build_task("tabular", dataset="digits", hidden=(1024, 1024), seed=0)
    torch.manual_seed(0)
    model, runtime, ctx = task.build_model().eval(), TorchCPU(), Context(task, progress=False)
    rows = {name: realize_row(parse_methods(name)[0], model, ctx, runtime, tmp_path / name) for name in ("fp32", "rtn")}
    read = {name: bytes_read_per_call(runtime.load(r.path, task), r.path.stat().st_size) for name, r in rows.items()}
    assert 0.10 < read["rtn"] / read["fp32"] < 0.2
    assert bytes_read_per_call(runtime.load(rows["rtn"].path, task), 1) == read["rtn"]  # counted on the loaded model
    timer = CellTimer(threads=1)
    timer.bounds["cpu"] = FixedBounds()
    bounds = {}
    for name in read:
        lat = Latency(1, 1.0, 0.9, 1.1, 30, 1000.0)
        timer.set_bound(lat, read[name], macs=64 * 1024, dtype="float32")
        bounds[name] = lat.bound_ms
    assert bounds["rtn"] / bounds["fp32"] == pytest.approx(read["rtn"] / read["fp32"])


class FixedBounds:
    """A host whose bandwidth and peak are known, so that the bound follows the bytes alone."""

    def bandwidth_gbs(self, nbytes):
        return 20.0

    def peak_gops(self, dtype):
        return 100.0


def test_a_bound_probe_run_while_the_cores_were_busy_is_recorded_and_warned_about():
    from quantbench.measure.bounds import HostBounds
    from quantbench.report.table import contended_bounds_warning

    busy = HostBounds(sampler=lambda: FakeSampler(other_cores=0.9), threads=2)
    assert busy.bandwidth_gbs(1 << 20) > 0 and busy.peak_gops("float32") > 0
    measured = busy.measured()
    assert set(measured["contended"]) == {"bandwidth 1048576 B", "float32 GEMM"}
    assert "other processes used 0.90 of the 2 cores" in measured["contended"]["float32 GEMM"]
    warning = contended_bounds_warning({"bounds": [measured]})
    assert "bandwidth 1048576 B, float32 GEMM probe(s) ran while the machine was busy" in warning
    quiet = HostBounds(sampler=FakeSampler, threads=2)
    quiet.peak_gops("float32")
    assert quiet.measured()["contended"] == {} and contended_bounds_warning({"bounds": [quiet.measured()]}) is None


def test_a_bound_probe_waits_for_the_hosts_full_speed_and_one_begun_slow_is_warned_about(monkeypatch):
    """The host's one loop reads full speed after its first 3 slow readings (the probe waits them out),
    and slow for good once ``slow`` is set: only the probe taken then is kept as contended."""
    from quantbench.measure import bounds
    from quantbench.measure.bounds import HostBounds
    from quantbench.measure.hostspeed import HostSpeed

    monkeypatch.setattr(bounds, "PROBE_WAIT_SECONDS", 0.2)
    state = {"reads": 0, "slow": False}

    def loop():
        state["reads"] += 1
        return 3e-5 if state["slow"] or state["reads"] <= 3 else 1e-5

    speed = HostSpeed(loops=(loop,), calibrate_seconds=0.0)
    speed.fastest = (1e-5,)
    host = HostBounds(sampler=FakeSampler, threads=2, speed=speed)
    host.peak_gops("float32")
    assert host.contended == {} and state["reads"] > 9  # waited past the slow readings, then 3 fast
    state["slow"] = True
    host.bandwidth_gbs(1 << 20)
    assert set(host.contended) == {"bandwidth 1048576 B"}
    said = host.contended["bandwidth 1048576 B"]
    assert "the host's reference loops did not read full speed (within 1.3x their fastest in this run) three " \
           "times in a row in the 0.2 s before it" in said
