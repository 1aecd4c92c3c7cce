"""Grouping stored runs for the report: tasks, machines, runtimes as lines, old stores."""
import re

import pytest

from quantbench.report.groups import group_entries, load_entries
from quantbench.report.html import tradeoff_svg
from quantbench.sweep.store import Store


def record(key, spec, hardware="cpu @ a", quality=0.9, method="fp32", status="ok"):
    row = {"method": method, "config": {"name": method}, "task": "tabular", "runtime": spec.get("runtime", "torch-cpu"),
           "quality": quality, "quality_ci": [quality - 0.05, min(1.0, quality + 0.05)], "size_bytes": 1000,
           "latency": [{"batch_size": 1, "median_ms": 0.1, "p10_ms": 0.09, "p90_ms": 0.2, "repeats": 30,
                        "throughput_per_s": 10000.0}]}
    return {"run_key": key, "run_id": key, "status": status, "error": None, "row": row if status == "ok" else None,
            "hardware": hardware, "spec": {"task": "tabular", "dataset": "wine", "methods": method, "seed": 0, **spec},
            "config": {"name": method, "version": 1}, "env": {"host": hardware[-1]}, "finished_at": key}


@pytest.fixture
def groups(tmp_path):
    with Store(tmp_path / "old.sqlite") as old:
        old.put(record("a", {}))  # written before CompareSpec had 'runtime'
    with Store(tmp_path / "new.sqlite") as new:
        new.put(record("b", {"runtime": "torch-cpu", "seed": 1}, quality=0.8))
        new.put(record("c", {"runtime": "onnxruntime"}))
        new.put(record("e", {"runtime": "onnxruntime", "seed": 1}, status="failed"))  # stored no row
        new.put(record("d", {"dataset": "digits", "hidden": [16, 16], "memory": False}, hardware="gpu @ b"))
    return group_entries(load_entries([tmp_path / "old.sqlite", tmp_path / "new.sqlite"]))


def test_fields_a_store_predates_count_as_defaults_and_runtimes_become_lines(groups):
    assert [(g.task, g.hardware) for g in groups] == [
        ("tabular dataset=digits hidden=16x16 memory=false", "gpu @ b"),  # spelled as in run ids
        ("tabular dataset=wine hidden=512x512 memory=true", "cpu @ a")]
    wine = groups[1]
    assert [line.method for line in wine.lines] == ["fp32", "fp32@onnxruntime"]
    assert [line.method for line in wine.lines] == [line.rows[0].label for line in wine.lines]  # one naming rule
    assert [len(line.rows) for line in wine.lines] == [2, 1] and [e.run_id for e in wine.failed] == ["e"]
    pooled = wine.lines[0]
    assert len(pooled.entries) == 2
    assert pooled.quality() == pytest.approx((0.85, 0.8, 0.9))  # mean, lowest, highest seed


def test_html_plot_is_the_comparison_plot_with_runtime_markers_and_legend(groups):
    svg = tradeoff_svg(groups[1])
    assert svg.startswith("<svg") and svg.count("<svg") == 1  # both panels in one figure, as in the PNG
    texts = [t.strip() for t in re.findall(r">([^<>]+)<", svg)]  # text stays text (svg.fonttype none)
    assert texts.count("Pareto front (circled)") == texts.count("torch-cpu") == texts.count("onnxruntime") == 2
    assert "tabular dataset=wine hidden=512x512 memory=true on cpu @ a" in texts


def test_a_plugin_task_is_headed_without_the_options_it_does_not_read(tmp_path):
    plugin = "tasks/mine.py:build"  # reads only its seed: no dataset, no hidden widths
    with Store(tmp_path / "s.sqlite") as store:
        store.put(record("a", {"dataset": "wine", "hidden": [16]}))
        store.put(record("b", {"dataset": "digits"}))
        store.put(record("c", {"task": plugin, "seed": 1}))  # dataset wine and hidden 512x512 by default
        store.put(record("d", {"task": "cnn"}))
    labels = [g.task for g in group_entries(load_entries([tmp_path / "s.sqlite"]))]
    assert sorted(labels) == ["cnn", "tabular dataset=digits hidden=512x512", "tabular dataset=wine hidden=16",
                              plugin]
