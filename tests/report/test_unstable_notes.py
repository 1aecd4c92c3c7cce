"""The table says, per row, which latency cells were unstable and the kinds of reason they give; each
cell's reason in full stays in results.json/csv."""
from quantbench.measure.cell import CellTimer, Stale
from quantbench.measure.latency import Latency
from quantbench.measure.noise import UNSTABLE_KINDS, Noise, instability, unstable_kinds
from quantbench.report.table import EXPLANATION, _notes
from quantbench.results import Row


def _cell(batch_size: int, reason: str | None) -> Latency:
    return Latency(batch_size, 0.05, 0.04, 0.06, 100, 2e4, stable=reason is None, unstable_reason=reason)


def _every_reason() -> list[str]:
    """A reason of each kind, as the code that marks cells gives them."""
    busy = Noise(1.0, 2, 1.5, 0.5, 0.9, None, None)
    slow_host = {"host_full_speed": False, "host_slow_fraction": 0.5, "host_slowdown": 1.5}
    reasons = [instability(busy, 3.0, 2, host=slow_host, visits=[{"median_ms": 1.0}, {"median_ms": 2.0}])]
    timer = CellTimer(threads=1)
    for stale in (Stale(1.5, "host"), Stale(1.5, "baseline")):
        lat = _cell(1, None)
        timer.mark_stale(lat, stale)
        reasons.append(lat.unstable_reason)
    return reasons + ["the host's reference loops ran slower in this run than in earlier runs on this machine"]


def test_every_reason_a_cell_is_marked_unstable_for_is_of_a_kind():
    kinds = [kind for reason in _every_reason() for kind in unstable_kinds(reason)]
    assert set(kinds) == set(UNSTABLE_KINDS.values())
    assert unstable_kinds("a reason of a new kind") == ["a reason of a new kind"]


def test_the_table_names_each_rows_unstable_cells_and_their_kinds_of_reason_once():
    busy = instability(Noise(1.0, 2, 1.5, 0.0, 0.0, None, None), 3.0, 2)
    rows = [Row(method="fp32", config={}, task="t", runtime="torch-cpu", latency=[_cell(1, None), _cell(256, busy)]),
            Row(method="rtn", config={}, task="t", runtime="torch-cpu",
                latency=[_cell(1, busy), _cell(256, busy + "; rerun now")])]
    text = "\n".join(_notes(rows)) + "\n"
    assert "fp32: latency at batch 256 unstable: other processes used the cores, samples spread" in text
    assert "rtn: latency at batch 1, 256 unstable: other processes used the cores, samples spread\n" in text
    assert "1.50 of the 2 cores" not in text and "rerun now" not in text
    assert "each cell's full reason is its unstable_reason in results.json/csv" in EXPLANATION
