import math

import pytest
import torch

from quantbench.measure.accuracy import agreement, wilson_interval
from quantbench.measure.latency import measure_latency, summarize
from quantbench.measure.size import bits_per_parameter, tensor_bytes, weight_bytes


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(90, 100)
    assert lo == pytest.approx(0.8256, abs=1e-3) and hi == pytest.approx(0.9448, abs=1e-3)
    lo, hi = wilson_interval(100, 100)
    assert hi == 1.0 and 0.96 < lo < 0.97
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_agreement():
    assert agreement(torch.tensor([1, 2, 3, 4]), torch.tensor([1, 2, 0, 4])) == 0.75


def test_summarize_percentiles_and_throughput():
    lat = summarize([i / 1000 for i in range(1, 101)], batch_size=10)
    assert lat.median_ms == pytest.approx(50.5)
    assert lat.p10_ms < lat.median_ms < lat.p90_ms
    assert lat.throughput_per_s == pytest.approx(10 / 0.0505)


def test_measure_latency_runs_the_callable_and_reports_a_distribution():
    calls = []
    lat = measure_latency(lambda x: calls.append(len(x)), torch.zeros(4, 3), 4, warmup=2, min_repeats=10, max_seconds=0.2)
    assert lat.repeats >= 10 and len(calls) == lat.repeats + 2 and set(calls) == {4}


def test_bits_per_parameter():
    assert bits_per_parameter(1000, 1000) == 8.0


def test_tensor_bytes_counts_inner_tensors_of_subclasses():
    from torch.testing._internal.two_tensor import TwoTensor

    assert tensor_bytes(torch.zeros(4, 4, dtype=torch.bfloat16)) == 32
    assert tensor_bytes(TwoTensor(torch.zeros(4, 4, dtype=torch.bfloat16), torch.zeros(4, 4, dtype=torch.bfloat16))) == 64
    assert tensor_bytes(None) == 0


def test_weight_bytes_skips_tables_only_embeddings_read_and_counts_a_tied_table_once():
    embed, head = torch.nn.Embedding(100, 8), torch.nn.Linear(8, 100, bias=False)
    model = torch.nn.Sequential(embed, torch.nn.Linear(8, 8), head)
    assert weight_bytes(model) == 4 * (8 * 8 + 8 + 8 * 100)  # the table is looked up: not counted
    head.weight = embed.weight  # tied: the head reads the whole table on every token
    assert weight_bytes(model) == 4 * (8 * 8 + 8 + 100 * 8)
    assert weight_bytes(torch.nn.Sequential(embed)) == 0


def test_peak_memory_counts_what_the_load_allocates_and_is_none_without_a_resettable_peak(tmp_path):
    from quantbench.measure.memory import peak_memory_bytes

    allocate = "y = bytearray(64_000_000); y[::4096] = b'x' * len(y[::4096])"  # touch every page
    grown = peak_memory_bytes(tmp_path, [1], 1, imports="x = None", load_and_run=allocate)
    assert 60e6 < grown < 80e6
    no_reset = ("import builtins\n_open = builtins.open\n"
                "def _refuse(p, *a, **k):\n"
                "    if p == '/proc/self/clear_refs': raise PermissionError(p)\n"
                "    return _open(p, *a, **k)\n"
                "builtins.open = _refuse")
    assert peak_memory_bytes(tmp_path, [1], 1, imports=no_reset, load_and_run=allocate) is None
