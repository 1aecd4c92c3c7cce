"""The calls a user needs: ``compare(spec)`` runs every method and returns the results."""
import contextlib
import tempfile
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import methods  # noqa: F401  (registers the methods)
from .checks import check_spec
from .config import duplicate_method_notes, parse_methods
from .env import capture_env
from .measure.cell import CellTimer
from .measure.hostrecord import model_identity
from .measure.phases import Phases
from .pipeline import RunTiming, measure_method, reference_of, settle_stale_latency
from .report.files import write_outputs
from .results import BASELINE, Results
from .errors import UserError
from .kernels.int8_engine import choose_int8_engine
from .runtimes import RUNTIMES
from .spec import CompareSpec
from .tasks import build_task
from .tasks.train import default_cache_dir, trained_fp32


def compare(spec: CompareSpec) -> Results:
    """Train (or load) the FP32 model, then quantize, save, reload and measure each method."""
    check_spec(spec)  # options that need no data: seed, folders, --target without --data
    chosen = parse_methods(spec.methods) if spec.methods else None  # a typo fails before anything loads
    runtimes = deployment_runtimes(spec.runtime, spec.runtime_options())
    threads = spec.resolved_threads()
    torch.set_num_threads(threads)
    env = capture_env(threads)  # before our own work raises the load average
    phases = Phases()
    with phases.phase("task (data, fp32 model)"):
        task = build_task(spec.task, **spec.task_options())
        configs = chosen or parse_methods(task.default_methods)
        fp32, train_info = trained_fp32(task, spec.seed, Path(spec.cache_dir) if spec.cache_dir else None,
                                        spec.progress)
    with phases.phase("fp32 reference outputs"):
        reference = task.reference(fp32)
    ctx = methods.Context(task=task, seed=spec.seed, progress=spec.progress, release_dense=True)
    runs = [(config, rt) for config in configs for rt in runtimes]
    timing = RunTiming(CellTimer(threads, record_folder=Path(spec.cache_dir) if spec.cache_dir else default_cache_dir(),
                                 model=model_identity(task.name, task.description, spec.task_options(), fp32)))
    with _artifact_dir(spec.out) as artifacts:
        rows = _measure_rows(runs, fp32, ctx, reference, spec, Path(artifacts), timing, phases)
    env["bounds"] = [host.measured() for host in timing.timer.bounds.values()]
    env["run"] = phases.summary()
    task_info = {"name": task.name, "description": task.description,
                 "notes": task.notes + duplicate_method_notes(spec.methods or "fp32"),
                 "fp32_training": vars(train_info), "spec": _spec_dict(spec)}
    task_info |= {"identity": getattr(task, "identity", None) or {}}
    results = Results(env=env | {"int8_engine": choose_int8_engine()}, task=task_info, rows=rows)
    if spec.out:
        write_outputs(results, Path(spec.out))
    return results


def _measure_rows(runs: list, fp32, ctx, reference, spec: CompareSpec, artifacts: Path, timing: RunTiming,
                  phases: Phases) -> list:
    """Every (config, runtime) row, baselines first, each a phase of the run; a quantization is kept only
    while the next row reuses it, so at most one quantized model is in memory."""
    order = baselines_first(runs)
    bar = tqdm(order, desc="methods", disable=not spec.progress, leave=False, unit="row")
    measured = {}
    for position, (index, (config, rt)) in enumerate(bar):
        bar.set_postfix_str(f"{config.label()} @ {rt.name}")
        reused = position + 1 < len(order) and order[position + 1][1][0] == config
        with phases.phase(f"{config.label()} @ {rt.name}") as phase:
            row = measure_method(config, fp32, ctx, rt, reference, spec, artifacts, timing, keep_quantized=reused)
            _export(row, artifacts, task=ctx.task, folder=spec.export)
        row.details["process_peak_rss_bytes"] = phase["peak_rss_bytes"]
        measured[index] = row
    with phases.phase("latency judged against the run's full speed"):
        for row in measured.values():
            settle_stale_latency(row, timing.baselines.get(row.runtime) if row.is_baseline else None, fp32,
                                 ctx.task, spec, timing)
            for lat in row.latency:
                timing.timer.judge_against_record(lat, reference_of(row, timing))
            for entry in row.generation:
                timing.timer.judge_generation_against_record(entry)
        timing.timer.save_record()
    timing.baselines.clear()
    return [measured[i] for i in range(len(runs))]


def baselines_first(runs: list) -> list:
    """``(index, run)`` pairs with each runtime's fp32 row first, so that every later row there is
    timed paired with it; rows are reported in the requested order (by index)."""
    return sorted(enumerate(runs), key=lambda item: item[1][0].label() != BASELINE)


def deployment_runtimes(names: str, options: dict | None = None) -> list:
    """'torch-cpu', 'onnxruntime,torch-cpu' or 'all' (every runtime available here);
    ``options`` maps a runtime name to its constructor arguments."""
    def make(name):
        return RUNTIMES.get(name)(**(options or {}).get(name, {}))

    if names == "all":
        return [rt for rt in map(make, RUNTIMES.names()) if rt.unavailable_reason() is None]
    chosen = [make(n) for n in dict.fromkeys(n.strip() for n in names.split(",") if n.strip())]
    for rt in chosen:
        reason = rt.unavailable_reason()
        if reason:
            raise UserError(f"runtime '{rt.name}' is not available here: {reason}")
    return chosen


def _artifact_dir(out: str | None):
    if out is None:
        return tempfile.TemporaryDirectory(prefix="quantbench-")
    path = Path(out) / "artifacts"
    path.mkdir(parents=True, exist_ok=True)
    return contextlib.nullcontext(path)


def _export(row, artifacts: Path, task, folder: str | None) -> None:
    """``--export``: the row's artifact as folders other tools load (``export/``), written while it exists."""
    if folder:
        from .export.rows import export_row

        export_row(row, artifacts, task, Path(folder))


def _spec_dict(spec: CompareSpec) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in vars(spec).items()}
