"""One row: quantize, save the artifact, load it back, and measure everything on it."""
import re
import time
import traceback
from pathlib import Path

import torch
from torch import nn

from .config import MethodConfig
from .measure.accuracy import agreement, predict, wilson_interval
from .measure.latency import batch_of, measure_latency
from .measure.memory import peak_memory_bytes
from .measure.size import artifact_bytes, bits_per_parameter, count_weights
from .methods import Context, Unsupported, apply_method
from .results import Row
from .spec import CompareSpec


def measure_method(config: MethodConfig, fp32: nn.Module, ctx: Context, reference: torch.Tensor,
                   spec: CompareSpec, artifacts: Path) -> Row:
    """A complete row, or a row that records why it failed; never raises for the method's sake."""
    row = Row(method=config.label(), config=config.to_dict(), task=ctx.task.name, runtime=ctx.runtime.name)
    try:
        _fill_row(row, config, fp32, ctx, reference, spec, artifacts)
    except Unsupported as e:
        row.status, row.error = "unsupported", str(e)
    except Exception as e:  # a failed method is data; the comparison goes on
        row.status, row.error = "failed", f"{type(e).__name__}: {e}"
        row.details["traceback"] = traceback.format_exc(limit=6)
    return row


def _fill_row(row: Row, config, fp32, ctx: Context, reference, spec: CompareSpec, artifacts: Path) -> None:
    start = time.perf_counter()
    quantized = apply_method(config, fp32, ctx)
    row.quantize_seconds = time.perf_counter() - start
    row.kernel, row.notes, row.details = quantized.kernel, quantized.notes, quantized.details
    path = ctx.runtime.save(quantized.module, ctx.task.example_input, artifacts / f"{_file_name(row.method)}.pt")
    run = ctx.runtime.load(path)
    _fill_quality(row, run, ctx, reference)
    _fill_size(row, path, fp32)
    x = ctx.task.splits.x_test
    row.latency = [measure_latency(run, batch_of(x, b)) for b in spec.batch_sizes]
    if spec.memory:
        shape = [max(spec.batch_sizes), *x.shape[1:]]
        row.peak_memory_bytes = peak_memory_bytes(path, shape, spec.resolved_threads(), ctx.runtime.engine)


def _fill_quality(row: Row, run, ctx: Context, reference: torch.Tensor) -> None:
    splits = ctx.task.splits
    pred = predict(run, splits.x_test)
    correct = int((pred == splits.y_test).sum())
    row.n_samples = len(splits.y_test)
    row.accuracy = row.quality = correct / row.n_samples
    row.accuracy_ci = row.quality_ci = list(wilson_interval(correct, row.n_samples))
    row.agreement = agreement(pred, reference)


def _fill_size(row: Row, path: Path, fp32: nn.Module) -> None:
    row.size_bytes = artifact_bytes(path)
    row.n_params, _ = count_weights(fp32)
    row.bits_per_param = bits_per_parameter(row.size_bytes, row.n_params)


def _file_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", label)
