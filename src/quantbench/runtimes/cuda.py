"""PyTorch on an NVIDIA GPU (``--runtime cuda``): eager modules in bf16 (or fp16, option ``dtype``)
and the low-bit CUDA kernels of torch and torchao. What each method means here:

- ``fp32``: the baseline, the fp32 model cast to the runtime dtype (bf16 by default: the CUDA
  baseline is half precision), dense cuBLAS GEMMs. Artifact: the cast state dict (``.pth``).
- ``ptq-dynamic``: torchao ``Int8DynamicActivationInt8WeightConfig``: int8 weights (torchao's own
  symmetric quantizer, per channel or per tensor as ``per_channel`` says), activations quantized
  per token (per tensor) at run time, ``torch._int_mm`` (cuBLAS int8). cuBLAS refuses fewer than
  17 rows, and torchao then multiplies in fp32: the kernel string says so.
- ``fp8``: torchao ``Float8DynamicActivationFloat8WeightConfig`` (e4m3, per-row scales,
  ``torch._scaled_mm``; sm89+). For both, linear layers whose sizes the kernel cannot take
  (multiples of 8 for int8, 16 for fp8) stay in the runtime dtype and the row says which.
  Artifact: the state dict holding torchao's quantized tensors (``.pth``, torch.save).
- ``ptq-static``, ``qat``: unsupported: torch.ao's static int8 models run on CPU engines only.
- ``rtn``, ``gptq``: the quantbench integers, never re-quantized: the same weights as the torch-cpu
  row (quantized once per method, same ``lowbit_sha256``) in the same safetensors artifact format.
  2/3/4-bit codes run in torch's int4 "tinygemm" kernel (``aten._weight_int4pack_mm``, the kernel
  of torchao's tensor-core-tiled int4 layout; sm80+, bf16): a tinygemm group size (32..256) must
  divide quantbench's group size and K; act-order GPTQ gets a column gather before the kernel.
  8-bit codes run as int8 weight-only: per-row grids
  (``group_size=-1``) as int8 cast + cuBLAS with the scale (and zero-point term) on the output (torchao
  ``Int8WeightOnlyConfig``'s eager path), other grids dequantized on every call (its per-group
  path). See ``weight_only.py`` for the layouts and the zero-point conversion.

Every model is rebuilt from its artifact at load (the task's architecture with parameters on
"meta", then the artifact's tensors placed on the GPU) and runs eagerly (``compile=True``:
``torch.compile`` for every row).
A runner takes host tensors and returns float32 host tensors (for quality); latency times only the
forward on inputs already on the GPU, plus a synchronize (``CudaRunner.prepare`` / ``run_prepared``).
Peak memory is ``torch.cuda.max_memory_allocated`` growth while loading and running one batch.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import gc
import importlib.metadata
import logging
import time
import warnings
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from torch import nn

from ..errors import UserError
from ..tasks.skeleton import build_skeleton, place_state
from .base import RUNTIMES, Realized, Runner
from .cuda_kernels import DTYPE_KINDS, INSTALL_HINT, INT_MM_MIN_ROWS, kernel_unavailable_reason, sm
from .weight_only import (TinygemmLinear, check_tinygemm, tinygemm_plan, tinygemm_refusal, tinygemm_weight,
                          weight_only_module)

STATE_FORMAT = "quantbench-cuda-state-v1"
_TINYGEMM_CHECK_TOLERANCE = 0.02
LATENCY_NOTE = ("latency on cuda: the batch is placed on the GPU before the clock starts; each timed call is the "
                "forward plus a synchronize, its output left on the GPU")


@dataclass(frozen=True)
class Target:
    """Where and how rows run: device, compute dtype, GPU capability and the torchao installed."""

    device: torch.device
    dtype: torch.dtype
    capability: tuple[int, int] | None
    torchao: str | None
    gpu: str
    compile: bool = False

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")

    @property
    def dense_kind(self) -> str:
        return DTYPE_KINDS[self.dtype_name]

    def reason(self, kind: str) -> str | None:
        return kernel_unavailable_reason(kind, self.capability, self.torchao, self.dtype_name)

    def details(self) -> dict:
        return {"gpu": self.gpu, "capability": sm(self.capability) if self.capability else None,
                "torch": torch.__version__, "torch_cuda": torch.version.cuda, "torchao": self.torchao,
                "dtype": self.dtype_name, "compile": self.compile}


@RUNTIMES.register("cuda")
@dataclass
class TorchCUDA:
    """``dtype``: the baseline precision and the activations' dtype (bfloat16 or float16);
    ``compile``: torch.compile every row."""

    name: str = "cuda"
    dtype: str = "bfloat16"
    compile: bool = False

    def __post_init__(self):
        if self.dtype not in DTYPE_KINDS:
            raise UserError(f"cuda: dtype must be one of {', '.join(DTYPE_KINDS)}, got {self.dtype!r}")

    def unavailable_reason(self) -> str | None:
        return cuda_unavailable_reason()

    def describe(self) -> str:
        target = self.target()
        kinds = [target.dense_kind, "int8-weight-only", "int4-weight-only", "int8-dynamic", "fp8"]
        reasons = {kind: target.reason(kind) for kind in kinds}
        ok = [kind for kind, why in reasons.items() if why is None]
        lacking = [f"{kind} ({why})" for kind, why in reasons.items() if why is not None]
        more = torch.cuda.device_count() - 1
        return (f"torch {torch.__version__} (CUDA {torch.version.cuda}), {target.gpu} "
                f"({sm(target.capability)}){f' and {more} more GPU(s); rows run on {target.device}' if more else ''}"
                f", torchao {target.torchao or 'not installed'}; kernels: {', '.join(ok) or 'none'}"
                + (f"; unsupported here: {'; '.join(lacking)}" if lacking else ""))

    def target(self) -> Target:
        index = torch.cuda.current_device()
        return Target(torch.device("cuda", index), getattr(torch, self.dtype),
                      tuple(torch.cuda.get_device_capability(index)), torchao_version(),
                      torch.cuda.get_device_name(index), self.compile)

    def realize(self, config, fp32: nn.Module, ctx, stem: Path) -> Realized:
        return realize(config, fp32, ctx, stem, self.target())

    def load(self, path: Path, task) -> Runner:
        target = self.target()
        return CudaRunner(load_module(path, task, target), target)

    def peak_memory(self, path: Path, task, batch_size: int, threads: int) -> int | None:
        target = self.target()
        free_cached(target.device)
        torch.cuda.reset_peak_memory_stats(target.device)
        base = torch.cuda.memory_allocated(target.device)
        runner = self.load(path, task)
        runner.run_prepared(runner.prepare(task.latency_input(batch_size)))
        peak = torch.cuda.max_memory_allocated(target.device) - base
        del runner
        free_cached(target.device)
        return int(peak)


def cuda_unavailable_reason() -> str | None:
    """None when torch can run CUDA kernels here, else why not (the torch build, the GPU)."""
    if getattr(torch.version, "hip", None):
        return f"this torch build ({torch.__version__}) is for ROCm; the cuda runtime needs an NVIDIA CUDA build"
    if torch.version.cuda is None:
        return f"this torch build ({torch.__version__}) has no CUDA support (install a CUDA build of torch, " \
               f"then {INSTALL_HINT})"
    if not torch.cuda.is_available():
        return f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU"
    return None


def torchao_version() -> str | None:
    try:
        return importlib.metadata.version("torchao")
    except importlib.metadata.PackageNotFoundError:
        return None


# --- realize: one function per method ----------------------------------------------------------


def realize(config, fp32: nn.Module, ctx, stem: Path, target: Target) -> Realized:
    from ..methods import Unsupported

    build = _REALIZERS.get(config.name)
    if build is None:
        raise Unsupported(f"method '{config.name}' has no CUDA path")
    realized = build(config, fp32, ctx, stem, target)
    if target.compile:
        realized.kernel += " + torch.compile"
    realized.notes.append(LATENCY_NOTE)
    realized.details["cuda"] = target.details()
    return realized


def _require(target: Target, kind: str) -> None:
    from ..methods import Unsupported

    reason = target.reason(kind)
    if reason:
        raise Unsupported(f"{kind} on cuda: {reason}")


def _dense(config, fp32, ctx, stem, target: Target) -> Realized:
    _require(target, target.dense_kind)
    model = _to_target(copy.deepcopy(fp32), target)
    path = save_state(model, stem, target, "dense")
    note = (f"the CUDA baseline is half precision: the fp32 model cast to {target.dtype_name} (weights, activations "
            f"and outputs); other rows on this runtime compare with it")
    return Realized(path, f"torch CUDA {target.dense_kind} dense (cuBLAS)", 0.0, [note])


def _static(config, fp32, ctx, stem, target: Target) -> Realized:
    from ..methods import Unsupported

    raise Unsupported(f"{config.name} on cuda: torch.ao's static int8 models (FX-converted, fbgemm/qnnpack kernels) "
                      f"run on CPU engines only; on CUDA use ptq-dynamic (torchao) or rtn/gptq (weight-only)")


def _dynamic(config, fp32, ctx, stem, target: Target) -> Realized:
    from ..methods import Unsupported

    kind = "fp8" if config.name == "fp8" else "int8-dynamic"
    _require(target, kind)
    recipe = torchao_recipe(kind, config.per_channel, target)
    model = _to_target(copy.deepcopy(fp32), target)
    chosen, kept = _layers_for(model, recipe.multiple)
    if not chosen:
        raise Unsupported(f"{kind} on cuda: no nn.Linear layer with in/out features that are multiples of "
                          f"{recipe.multiple}")
    start = time.perf_counter()
    with quiet_torchao():
        from torchao.quantization import quantize_

        quantize_(model, recipe.config, filter_fn=lambda module, fqn: fqn in chosen)
    synchronize(target.device)
    seconds = time.perf_counter() - start
    untouched = [name for name in chosen if not _is_subclass(model.get_submodule(name).weight)]
    if untouched:
        raise RuntimeError(f"torchao left {', '.join(untouched[:5])} unquantized")
    path = save_state(model, stem, target, kind)
    notes = recipe.notes + ([f"kept {target.dtype_name} ({recipe.why_kept}): {', '.join(kept)}"] if kept else [])
    details = {"torchao_config": type(recipe.config).__name__, "quantized_layers": len(chosen),
               "kept_layers": kept} | recipe.details
    return Realized(path, recipe.kernel, seconds, notes, details)


def _lowbit(config, fp32, ctx, stem, target: Target) -> Realized:
    from ..methods import Unsupported

    kind = "int8-weight-only" if config.bits == 8 else "int4-weight-only"
    _require(target, kind)
    quantized, seconds = ctx.quantize(config, fp32)
    for name, lw in quantized.packed.items():
        why = None if config.bits == 8 else tinygemm_refusal(lw)
        if why:
            raise Unsupported(f"{config.label()} on cuda ({kind}): layer {name}: {why}")
    path = ctx.runtime.save(quantized, ctx.task, stem)
    kernel, notes = _lowbit_kernel(config.bits, quantized.packed, target)
    return Realized(path, kernel, seconds, quantized.notes + notes, dict(quantized.details))


def _lowbit_kernel(bits: int, packed: dict, target: Target) -> tuple[str, list[str]]:
    """The kernel string and notes of a cuda rtn/gptq row holding ``packed`` (every layer representable)."""
    if bits == 8:
        if all(lw.n_groups == 1 for lw in packed.values()):
            kernel = (f"int8 weight-only, per-row scales: int8 cast to {target.dense_kind} + cuBLAS mm "
                      f"(torchao Int8WeightOnlyConfig's eager path; asymmetric grids add a zero-point term)")
        else:
            kernel = (f"int8 weight-only, grouped grid: weights dequantized to {target.dense_kind} "
                      f"on every call + cuBLAS mm (torchao's per-group int8 path)")
        return kernel, ["quantbench's 8-bit codes as int8 (q - 128) with their scales and zero points, as they are"]
    plans = {name: tinygemm_plan(lw) for name, lw in packed.items()}  # (tinygemm group size, permutation)
    groups = "/".join(map(str, sorted({tile for tile, _ in plans.values()})))
    gathered = [name for name, (_, perm) in plans.items() if perm is not None]
    kernel = f"tinygemm int4 weight-only (aten._weight_int4pack_mm), bf16 activations, tinygemm groups of {groups}"
    kernel += ", act-order column gather" if gathered else ""
    notes = [f"quantbench's {bits}-bit codes and integer zero points z in tinygemm's layout as they are: "
             f"dequant (q - 8) * s + zero with zero = s * (8 - z); scales and zeros rounded to bf16 "
             f"(at most ~0.06 of a quantization step)"]
    if bits < 4:
        notes.append(f"{bits}-bit codes stored in 4-bit containers (no {bits}-bit CUDA kernel): int4 memory and speed")
    if gathered:
        notes.append(f"act-order groups: the input columns of {', '.join(gathered)} are gathered into group order "
                     f"before the kernel (same integers, permuted along K)")
    return kernel, notes


_REALIZERS = {"fp32": _dense, "ptq-dynamic": _dynamic, "fp8": _dynamic, "ptq-static": _static, "qat": _static,
              "rtn": _lowbit, "gptq": _lowbit}


# --- torchao configs ----------------------------------------------------------------------------


@dataclass
class TorchaoRecipe:
    config: object
    multiple: int
    kernel: str
    notes: list[str]
    why_kept: str
    details: dict


def torchao_recipe(kind: str, per_channel: bool, target: Target) -> TorchaoRecipe:
    """The torchao config for ``kind`` ('int8-dynamic' or 'fp8'), and how to describe its row."""
    from ..methods import Unsupported

    with quiet_torchao():
        from torchao.quantization import PerRow, PerTensor

        if kind == "int8-dynamic":
            from torchao.quantization import Int8DynamicActivationInt8WeightConfig as cls
        else:
            from torchao.quantization import Float8DynamicActivationFloat8WeightConfig as cls
    names = {f.name for f in fields(cls)}
    row = per_channel and (kind == "int8-dynamic" or target.dtype == torch.bfloat16)
    options = {"granularity": PerRow() if row else PerTensor(), "set_inductor_config": False}
    if "granularity" not in names and not row:
        raise Unsupported(f"torchao {target.torchao} has no per-tensor option for {cls.__name__}")
    if kind == "fp8":
        options["kernel_preference"] = _torch_kernel_preference()
    config = cls(**{k: v for k, v in options.items() if k in names and v is not None})
    scales = "per-row" if row else "per-tensor"
    if kind == "int8-dynamic":
        small = int_mm_accepts_small_rows(target.device)
        kernel = f"torchao {target.torchao} int8 dynamic act x int8 weight, {scales} scales " \
                 f"(torch._int_mm, cuBLAS int8)"
        if small is False:
            kernel += f"; batches of < {INT_MM_MIN_ROWS} rows: torchao's fp32 matmul fallback " \
                      f"(torch._int_mm refuses them)"
        notes = [f"torchao's own int8 quantizer (symmetric weights in [-128, 127], {scales}; not the torch-cpu row's "
                 f"integers); activations quantized {'per token' if row else 'per tensor'} at run time"]
        syncs = _torchao_int_mm_formats_input()
        if syncs:
            notes.append("torchao's eager int8 matmul (torchao.kernel.intmm.safe_int_mm) formats its input tensor "
                         "(input.__repr__()) on every call: a device-to-host synchronization inside the forward, "
                         "included in eager latency (torch.compile traces it away)")
        return TorchaoRecipe(config, 8, kernel, notes, "torch._int_mm needs in/out features that are multiples of 8; "
                             "torchao would multiply them on the CPU",
                             {"int_mm_small_rows": small, "host_sync_in_forward": syncs})
    preference = "torch._scaled_mm, cuBLAS fp8" if "kernel_preference" in names else "torchao's default fp8 GEMM"
    kernel = f"torchao {target.torchao} float8 e4m3 dynamic act x e4m3 weight, {scales} scales ({preference})"
    notes = [f"torchao float8: weights and activations in e4m3 with {scales} scales computed by torchao"
             + ("" if row or not per_channel else "; per-tensor because per-row fp8 needs bf16 weights")]
    return TorchaoRecipe(config, 16, kernel, notes, "fp8 GEMMs need in/out features that are multiples of 16; "
                         "torchao would leave them unquantized", {})


def _torch_kernel_preference():
    try:
        from torchao.quantization.quantize_.common import KernelPreference
    except ImportError:
        return None
    return KernelPreference.TORCH


def _torchao_int_mm_formats_input() -> bool:
    """Whether torchao's eager int8 matmul calls ``input.__repr__()`` (seen in torchao 0.18's
    ``safe_int_mm``), which copies the tensor to the host."""
    import inspect

    try:
        with quiet_torchao():
            from torchao.kernel.intmm import safe_int_mm
        return "__repr__" in inspect.getsource(safe_int_mm)
    except (ImportError, OSError, TypeError):
        return False


def int_mm_accepts_small_rows(device: torch.device) -> bool | None:
    """Whether ``torch._int_mm`` takes a 1-row problem on this GPU (None: not a GPU, or unclear)."""
    if device.type != "cuda":
        return None
    try:
        torch._int_mm(torch.zeros(1, 32, dtype=torch.int8, device=device),
                      torch.zeros(32, 32, dtype=torch.int8, device=device))
    except RuntimeError as e:
        return False if "greater than 16" in str(e) else None
    return True


def _layers_for(model: nn.Module, multiple: int) -> tuple[set[str], list[str]]:
    """Linear layers whose in/out features are multiples of ``multiple``, and the names of the others."""
    chosen, kept = set(), []
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            fits = module.in_features % multiple == 0 and module.out_features % multiple == 0
            (chosen.add(name) if fits else kept.append(name))
    return chosen, kept


@contextlib.contextmanager
def quiet_torchao():
    """Importing and applying torchao logs about optional native libraries and torch.compile
    registrations; none of it is about the user's model."""
    loggers = [logging.getLogger(name) for name in ("torchao", "torch.utils._pytree")]
    levels = [log.level for log in loggers]
    for log in loggers:
        log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for log, level in zip(loggers, levels):
            log.setLevel(level)


# --- artifacts ----------------------------------------------------------------------------------


def save_state(model: nn.Module, stem: Path, target: Target, kind: str) -> Path:
    """The model's tensors as they sit on the GPU (dense or torchao-quantized), one torch.save file."""
    path = stem.with_suffix(".pth")
    torch.save({"format": STATE_FORMAT, "kind": kind, "dtype": target.dtype_name, "state": model.state_dict()}, path)
    return path


def load_module(path: Path, task, target: Target) -> nn.Module:
    """The task's model architecture (a skeleton: parameters on meta, no weights read) holding the
    artifact's tensors on ``target.device``."""
    model = build_skeleton(task.build_model)
    if Path(path).suffix == ".safetensors":
        from ..methods.lowbit.artifact import fill_lowbit, read_lowbit

        model = fill_lowbit(model, *read_lowbit(path), make_layer=functools.partial(_gpu_layer, target=target),
                            device=target.device, dtype=target.dtype)
    else:
        with quiet_torchao():
            saved = torch.load(path, map_location=target.device, weights_only=False)  # our own file
        if not isinstance(saved, dict) or saved.get("format") != STATE_FORMAT:
            raise ValueError(f"{path} is not a {STATE_FORMAT} artifact")
        place_state(model, saved["state"], target.device, target.dtype)
        model = model.eval().requires_grad_(False)
    return torch.compile(model) if target.compile else model


def _gpu_layer(name: str, lw, bias: torch.Tensor | None, target: Target) -> nn.Module:
    """The module that runs a quantized layer's integers on the GPU (``fill_lowbit``'s ``make_layer``);
    on a GPU, tinygemm's weights are checked against quantbench's before the row runs."""
    if lw.bits == 8:
        return weight_only_module(lw, bias, target.device)
    tw = tinygemm_weight(lw)
    module = TinygemmLinear(tw, bias, target.device)
    if target.device.type == "cuda":
        error = check_tinygemm(module, tw)
        if error > _TINYGEMM_CHECK_TOLERANCE:
            raise RuntimeError(f"tinygemm layout check failed for {name}: the kernel's weights differ from "
                               f"quantbench's by {error:.3f} of max|W|")
    return module


def _to_target(model: nn.Module, target: Target) -> nn.Module:
    return model.to(device=target.device, dtype=target.dtype).eval().requires_grad_(False)


def _is_subclass(tensor) -> bool:
    from torch.utils._python_dispatch import is_traceable_wrapper_subclass

    return is_traceable_wrapper_subclass(tensor)


# --- running -----------------------------------------------------------------------------------


class CudaRunner:
    """Runs the model on the GPU: ``__call__`` takes host tensors (or a dict of them) and returns
    the output on the host, floating tensors as float32. For latency (``runtimes.base.timed_call``):
    ``prepare`` places a batch on the GPU, ``run_prepared`` runs the forward to completion and leaves
    its output there."""

    def __init__(self, module: nn.Module, target: Target):
        self.module = module
        self.target = target

    def prepare(self, batch):
        if isinstance(batch, dict):
            return {k: self.prepare(v) for k, v in batch.items()}
        if isinstance(batch, torch.Tensor):
            batch = batch.to(self.target.device, non_blocking=False)
            return batch.to(self.target.dtype) if batch.is_floating_point() else batch
        return batch

    def run_prepared(self, batch):
        with torch.inference_mode():
            out = self.module(**batch) if isinstance(batch, dict) else self.module(batch)
        synchronize(self.target.device)
        return out

    def __call__(self, batch):
        return _to_host(self.run_prepared(self.prepare(batch)))


def _to_host(out):
    if isinstance(out, torch.Tensor):
        out = out.cpu()
        return out.float() if out.is_floating_point() else out
    if isinstance(out, dict):  # transformers' ModelOutput is a dict
        return type(out)(**{k: _to_host(v) for k, v in out.items()})
    if isinstance(out, (tuple, list)):
        return type(out)(_to_host(v) for v in out)
    return out


def synchronize(device: torch.device) -> None:
    """Wait for the GPU's queued work (nothing on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def free_cached(device: torch.device) -> None:
    """Collect garbage and return the CUDA caching allocator's free blocks, so the next peak starts clean."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
