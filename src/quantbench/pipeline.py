"""One row: quantize, save the artifact, load it back, and measure everything on it."""
import re
import traceback
from pathlib import Path

from torch import nn

from .config import MethodConfig
from .measure.latency import measure_latency
from .measure.size import artifact_bytes, bits_per_parameter, count_parameters
from .errors import Unsupported
from .methods import Context
from .results import Row
from .measure.runner import timed_call
from .spec import CompareSpec


def measure_method(config: MethodConfig, fp32: nn.Module, ctx: Context, runtime, reference, spec: CompareSpec,
                   artifacts: Path) -> Row:
    """A complete row, or a row that records why it failed; never raises for the method's sake."""
    row = Row(method=config.label(), config=config.to_dict(), task=ctx.task.name, runtime=runtime.name)
    try:
        _fill_row(row, config, fp32, ctx, runtime, reference, spec, artifacts)
    except Unsupported as e:
        row.status, row.error = "unsupported", str(e)
    except Exception as e:  # a failed method is data; the comparison goes on
        row.status, row.error = "failed", f"{type(e).__name__}: {e}"
        row.details["traceback"] = traceback.format_exc(limit=6)
    return row


def realize_row(config: MethodConfig, fp32: nn.Module, ctx: Context, runtime, stem: Path):
    """Quantize ``fp32`` as ``config`` says with the handler for ``runtime``, check that the runtime can
    run the format, and write its artifact at ``stem``: the row's ``Realized``."""
    quantized, seconds = ctx.for_row(runtime, stem).quantize(config, fp32)
    reason = runtime.supports(quantized)
    if reason:
        raise Unsupported(f"{config.label()} on {runtime.name}: {reason}")
    realized = runtime.realize(quantized, ctx.task, stem)
    realized.quantize_seconds = seconds
    return realized


def _fill_row(row: Row, config, fp32, ctx: Context, runtime, reference, spec: CompareSpec, artifacts: Path) -> None:
    realized = realize_row(config, fp32, ctx, runtime, artifact_stem(artifacts, row))
    row.kernel, row.notes, row.details = realized.kernel, realized.notes, realized.details
    row.quantize_seconds = realized.quantize_seconds
    run = runtime.load(realized.path, ctx.task)
    _fill_quality(row, ctx.task.evaluate(run, reference))
    _fill_size(row, [realized.path, *realized.extra_files], fp32)
    row.latency = [measure_latency(*timed_call(run, ctx.task.latency_input(b)), b) for b in spec.batch_sizes]
    if spec.memory:
        row.peak_memory_bytes = runtime.peak_memory(realized.path, ctx.task, max(spec.batch_sizes),
                                                    spec.resolved_threads())
        if row.peak_memory_bytes is None:
            row.notes.append("peak memory not measured: this system has no resident-memory high-water mark that can "
                             "be reset after the imports (Linux's /proc/self/clear_refs)")


def _fill_quality(row: Row, quality) -> None:
    row.metric, row.quality, row.quality_ci = quality.metric, quality.value, quality.ci
    row.higher_is_better, row.n_samples, row.agreement = quality.higher_is_better, quality.n_samples, quality.agreement
    row.accuracy = quality.accuracy
    row.accuracy_ci = quality.ci if quality.accuracy is not None else None
    row.details.update(quality.extra)


def _fill_size(row: Row, paths: list[Path], fp32: nn.Module) -> None:
    row.size_bytes = artifact_bytes(paths)
    row.n_params = count_parameters(fp32)
    row.bits_per_param = bits_per_parameter(row.size_bytes, row.n_params)


def _file_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", label)


def artifact_stem(artifacts: Path, row: Row) -> Path:
    """Where ``row``'s artifact is written in ``artifacts`` (its runtime adds the suffix)."""
    return artifacts / _file_name(f"{row.method}@{row.runtime}")
