"""Grouping stored runs for the report: tasks, machines, runtimes as lines, old stores."""
import pytest

from quantbench.report.groups import group_entries, load_entries
from quantbench.sweep.store import Store


def record(key, spec, hardware="cpu @ a", quality=0.9, method="fp32"):
    row = {"method": method, "config": {"name": method}, "task": "tabular", "runtime": "torch-cpu",
           "quality": quality, "quality_ci": [quality - 0.05, min(1.0, quality + 0.05)], "size_bytes": 1000,
           "latency": [{"batch_size": 1, "median_ms": 0.1, "p10_ms": 0.09, "p90_ms": 0.2, "repeats": 30,
                        "throughput_per_s": 10000.0}]}
    return {"run_key": key, "run_id": key, "status": "ok", "error": None, "row": row, "hardware": hardware,
            "spec": {"task": "tabular", "dataset": "wine", "methods": method, "seed": 0, **spec},
            "config": {"name": method, "version": 1}, "env": {"host": hardware[-1]}, "finished_at": key}


def test_fields_a_store_predates_count_as_defaults_and_runtimes_become_lines(tmp_path):
    with Store(tmp_path / "old.sqlite") as old:
        old.put(record("a", {}))  # written before CompareSpec had 'runtime'
    with Store(tmp_path / "new.sqlite") as new:
        new.put(record("b", {"runtime": "torch-cpu", "seed": 1}, quality=0.8))
        new.put(record("c", {"runtime": "onnxruntime"}))
        new.put(record("d", {"dataset": "digits"}, hardware="gpu @ b"))
    groups = group_entries(load_entries([tmp_path / "old.sqlite", tmp_path / "new.sqlite"]))
    assert [(g.task, g.hardware) for g in groups] == [("tabular dataset=digits", "gpu @ b"),
                                                      ("tabular dataset=wine", "cpu @ a")]
    wine = groups[1]
    assert [line.method for line in wine.lines] == ["fp32 @torch-cpu", "fp32 @onnxruntime"]
    pooled = wine.lines[0]
    assert len(pooled.entries) == 2
    assert pooled.quality() == pytest.approx((0.85, 0.8, 0.9))  # mean, lowest, highest seed
