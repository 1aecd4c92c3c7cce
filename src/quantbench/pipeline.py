"""One row: quantize, save the artifact, load it back, and measure everything on it."""
import re
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .config import MethodConfig
from .measure.bounds import count_macs
from .measure.cell import Cell, CellTimer
from .measure.size import artifact_bytes, bits_per_parameter, count_parameters, weight_bytes
from .errors import Unsupported
from .methods import Context
from .results import Row
from .measure.runner import timed_call
from .spec import CompareSpec


@dataclass
class RunTiming:
    """What the latency cells of one comparison share: the timer (threads, host bounds, noise limits),
    each runtime's loaded fp32 row that later rows there are paired with (one dense copy per runtime,
    kept while the run lasts), and the fp32 model's multiply-adds per batch size."""

    timer: CellTimer
    baselines: dict = field(default_factory=dict)  # runtime name -> runner of its fp32 row
    macs: dict = field(default_factory=dict)  # batch size -> multiply-adds of one call

    def macs_at(self, fp32: nn.Module, task, batch_size: int) -> int:
        if batch_size not in self.macs:
            self.macs[batch_size] = count_macs(fp32, task.latency_input(batch_size))
        return self.macs[batch_size]



def measure_method(config: MethodConfig, fp32: nn.Module, ctx: Context, runtime, reference, spec: CompareSpec,
                   artifacts: Path, timing: RunTiming | None = None, keep_quantized: bool = True) -> Row:
    """A complete row, or a row that records why it failed; never raises for the method's sake. With a
    ``timing`` whose baselines hold this runtime's fp32 row, latency is paired with it; an fp32 row
    measured here becomes that baseline. Without ``keep_quantized`` (no later row reuses this
    quantization) the quantized model is dropped once its artifact is written, before the row loads it."""
    row = Row(method=config.label(), config=config.to_dict(), task=ctx.task.name, runtime=runtime.name)
    timing = timing or RunTiming(CellTimer(spec.resolved_threads()))
    try:
        _fill_row(row, config, fp32, ctx, runtime, reference, spec, artifacts, timing, keep_quantized)
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


def _fill_row(row: Row, config, fp32, ctx: Context, runtime, reference, spec: CompareSpec, artifacts: Path,
              timing: RunTiming, keep_quantized: bool) -> None:
    try:
        realized = realize_row(config, fp32, ctx, runtime, artifact_stem(artifacts, row))
    finally:
        if not keep_quantized:
            ctx.forget()
    row.kernel, row.notes, row.details = realized.kernel, realized.notes, realized.details
    row.details["compute_dtype"] = realized.compute_dtype
    row.quantize_seconds = realized.quantize_seconds
    run = _load(runtime, realized.path, ctx.task, fp32 if row.is_baseline else None, row)
    _fill_quality(row, ctx.task.evaluate(run, reference))
    _fill_size(row, [realized.path, *realized.extra_files], fp32)
    _fill_latency(row, run, fp32, ctx.task, spec, timing)
    _fill_generation(row, run, ctx.task, spec, timing)
    if row.is_baseline:
        timing.baselines[runtime.name] = run
    if spec.memory:
        row.peak_memory_bytes = runtime.peak_memory(realized.path, ctx.task, max(spec.batch_sizes),
                                                    spec.resolved_threads())
        if row.peak_memory_bytes is None:
            row.notes.append("peak memory not measured: this system has no resident-memory high-water mark that can "
                             "be reset after the imports (Linux's /proc/self/clear_refs)")


def _load(runtime, path: Path, task, into: nn.Module | None, row: Row):
    """The row's artifact loaded by its runtime; the baseline's dense artifact streamed ``into`` the fp32
    model where the runtime can (``load_into``), so that the run holds one dense copy, not two."""
    shared = runtime.load_into(path, task, into) if into is not None and hasattr(runtime, "load_into") else None
    if shared is None:
        return runtime.load(path, task)
    row.notes.append("the baseline runs the task's model with its every tensor replaced by the artifact's, read "
                     "from the file one at a time: later rows quantize that same copy (one dense copy in memory)")
    return shared


def _fill_latency(row: Row, run, fp32: nn.Module, task, spec: CompareSpec, timing: RunTiming) -> None:
    """One cell per batch size, paired with the runtime's fp32 row when there is one, each with its bound."""
    baseline = None if row.is_baseline else timing.baselines.get(row.runtime)
    reference = reference_of(row, timing)
    row.details["weight_bytes_read"] = bytes_read = bytes_read_per_call(run, row.size_bytes)
    cells = []
    for b in spec.batch_sizes:
        batch = task.latency_input(b)
        paired = timed_call(baseline, batch) if baseline is not None else None
        cells.append(Cell(*timed_call(run, batch), b, baseline=paired, own_threads=getattr(run, "own_threads", False),
                          reference=reference))
    row.latency = timing.timer.time_cells(cells)
    for lat in row.latency:
        timing.timer.set_bound(lat, bytes_read, timing.macs_at(fp32, task, lat.batch_size),
                               row.details["compute_dtype"], getattr(run, "device", "cpu"))


def settle_stale_latency(row: Row, run, fp32: nn.Module, task, spec: CompareSpec, timing: RunTiming) -> None:
    """Cells timed at a speed the run later beat (``CellTimer.stale``: the host's loops or the baseline ran
    faster later, as when a run begins in a slow stretch taken for full speed): a baseline row's, whose
    runner ``run`` is still loaded, are timed again; another row's, whose model is gone, are marked unstable."""
    stale = [(lat, found) for lat in row.latency if (found := timing.timer.stale(lat, reference_of(row, timing)))]
    if not stale:
        return
    if run is not None:
        _fill_latency(row, run, fp32, task, spec, timing)
        found = max(found for _, found in stale)
        row.details["latency_timed_again"] = found.faster
        what = "the host's reference loops" if found.by == "host" else "the baseline, beside later rows,"
        row.notes.append(f"latency timed again at the end of the run: {what} later ran {found.faster:.2f}x faster "
                         "than in its first timing")
        return
    for lat, found in stale:
        timing.timer.mark_stale(lat, found)


def reference_of(row: Row, timing: RunTiming) -> str | None:
    """The baseline the row's cells time (fp32) or are paired with: its runtime, if that has an fp32 row."""
    return row.runtime if row.is_baseline or row.runtime in timing.baselines else None


def _fill_generation(row: Row, run, task, spec: CompareSpec, timing: RunTiming) -> None:
    """Prefill and decode speed at each decode batch size, for tasks that generate text (their
    ``generation_prompt``); every row, fp32 included, the same way (measure/generation.py)."""
    if spec.decode_tokens == 0 or not hasattr(task, "generation_prompt"):
        return
    from .measure.generation import GenerationBudget, generation_entries

    row.generation = generation_entries(run, task.generation_prompt, spec.prompt_tokens, spec.decode_tokens,
                                        spec.decode_batch_sizes, timing.timer, row.details["weight_bytes_read"],
                                        GenerationBudget(max_seconds=spec.decode_seconds))


def bytes_read_per_call(run, artifact_size: int) -> int:
    """Bytes of weights a call reads, from the loaded model as it holds them (packed codes count
    packed, weights dequantized at load count dense): the runner's ``weight_bytes`` where it says,
    else its eager module's tensors, else (frozen TorchScript, ONNX graphs) the artifact's bytes."""
    said = getattr(run, "weight_bytes", None)
    if said:
        return said
    module = getattr(run, "module", None)
    counted = weight_bytes(module) if isinstance(module, nn.Module) and not _is_script(module) else 0
    return counted or artifact_size


def _is_script(module: nn.Module) -> bool:
    return isinstance(module, torch.jit.ScriptModule)


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
