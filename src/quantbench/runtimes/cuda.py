"""PyTorch on an NVIDIA GPU (``--runtime cuda``): eager modules in bf16 (or fp16, option ``dtype``)
and the low-bit CUDA kernels of torch and torchao. What each format means here:

- dense: the baseline, the fp32 model cast to the runtime dtype (bf16 by default: the CUDA baseline
  is half precision), dense cuBLAS GEMMs. Artifact: the cast state dict (``.pth``). A bf16 dense row
  (method ``bf16``) runs in bf16 whatever the runtime dtype: with the default, the same computation
  as the fp32 row, and the row says so.
- int8 with dynamic activations and float8, made by torchao's own quantizers (the methods' cuda
  handlers, ``kernels/torchao_recipes.py``): the state dict holding torchao's quantized tensors
  (``.pth``, torch.save). int8 models of torch.ao (fbgemm/qnnpack) are unsupported: CPU engines only.
- low-bit weight-only: the quantbench integers, never re-quantized: the same weights as the torch-cpu
  row (quantized once per method, same ``lowbit_sha256``) in the same safetensors artifact format.
  2/3/4-bit codes run in torch's int4 "tinygemm" kernel (``aten._weight_int4pack_mm``, the kernel
  of torchao's tensor-core-tiled int4 layout; sm80+, bf16): a tinygemm group size (32..256) must
  divide quantbench's group size and K; act-order groups get a column gather before the kernel,
  a per-input-channel scale a multiply. 8-bit codes run as int8 weight-only: per-row grids
  (``group_size=-1``) as int8 cast + cuBLAS with the scale (and zero-point term) on the output (torchao
  ``Int8WeightOnlyConfig``'s eager path), other grids dequantized on every call (its per-group
  path). See ``kernels/weight_only.py`` for the layouts and the zero-point conversion.

Every model is rebuilt from its artifact at load (the task's architecture with parameters on
"meta", then the artifact's tensors placed on the GPU) and runs eagerly (``compile=True``:
``torch.compile`` for every row).
A runner takes host tensors and returns float32 host tensors (for quality); latency times only the
forward on inputs already on the GPU, plus a synchronize (``CudaRunner.prepare`` / ``run_prepared``).
Peak memory is ``torch.cuda.max_memory_allocated`` growth while loading and running one batch.
"""
from __future__ import annotations

import copy
import functools
import gc
import importlib.metadata
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from ..errors import UserError
from ..formats import DenseFormat, Float8Format, Int8Format, LowBitFormat
from ..formats.dense import is_dense_bf16
from ..formats.lowbit import INT4_WEIGHT_ONLY, INT8_WEIGHT_ONLY, weight_only_kind
from ..formats.lowbit_file import fill_lowbit, read_lowbit_lazily, save_lowbit_model
from ..kernels.cuda_capability import DTYPE_KINDS, INSTALL_HINT, KERNELS, Target, sm, synchronize
from ..quiet import quiet_torchao
from ..kernels.weight_only import (TinygemmLinear, check_tinygemm, input_scale_kernel_note, tinygemm_plan,
                                   tinygemm_refusal, tinygemm_weight, weight_only_module, with_input_scale)
from ..tasks.skeleton import build_skeleton, place_state
from .base import RUNTIMES, Realized, Runner

STATE_FORMAT = "quantbench-cuda-state-v1"
_TINYGEMM_CHECK_TOLERANCE = 0.02
LATENCY_NOTE = ("latency on cuda: the batch is placed on the GPU before the clock starts; each timed call is the "
                "forward plus a synchronize, its output left on the GPU")


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
        kinds = [target.dense_kind, "int8-weight-only", "int4-weight-only", "int8-dynamic", "float8-dynamic"]
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

    def supports(self, quantized) -> str | None:
        return supports(quantized, self.target())

    def realize(self, quantized, task, stem: Path) -> Realized:
        return realize(quantized, task, stem, self.target())

    def load(self, path: Path, task) -> Runner:
        target = self.target()
        module = load_module(path, task, target)
        return CudaRunner(module, held_target(module, target))

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


# --- realize: one function per format ----------------------------------------------------------


def supports(quantized, target: Target) -> str | None:
    """Why ``quantized``'s format cannot run on ``target``, or None: decided from the format alone."""
    fmt = quantized.format
    if is_dense_bf16(fmt):
        need = KERNELS[DTYPE_KINDS["bfloat16"]]
        if target.capability is None or tuple(target.capability) < need.min_capability:
            return (f"bf16 dense on cuda: {need.what} needs {sm(need.min_capability)}+, this GPU is "
                    f"{sm(target.capability) if target.capability else 'none'} (the fp32 row with the runtime's "
                    f"dtype=float16 is this GPU's half-precision baseline)")
        return None
    if isinstance(fmt, DenseFormat):
        return target.reason(target.dense_kind)
    if isinstance(fmt, LowBitFormat):
        kinds = {weight_only_kind(bits) for bits in fmt.bits}
        why = next((f"{kind} on cuda: {r}" for kind in sorted(kinds) if (r := target.reason(kind))), None)
        refused = {name: r for name, lw in fmt.layers.items()
                   if lw.kernel_kind == INT4_WEIGHT_ONLY and (r := tinygemm_refusal(lw))}
        return why or next((f"int4-weight-only on cuda: layer {name}: {r}" for name, r in refused.items()), None)
    if isinstance(fmt, (Int8Format, Float8Format)) and fmt.source != "torchao":
        return (f"models quantized by {fmt.source} run on CPU runtimes only; on CUDA, int8 and float8 run as "
                f"torchao's dynamic-activation formats, or low-bit weight-only")
    return None


def realize(quantized, task, stem: Path, target: Target) -> Realized:
    """Write ``quantized`` (supported here) as this runtime's artifact and name the kernel that runs it."""
    fmt = quantized.format
    notes, details = list(quantized.notes), dict(quantized.details)
    if isinstance(fmt, LowBitFormat):
        path = stem.with_suffix(".safetensors")
        notes += save_lowbit_model(quantized.module, fmt, path, details)
        kernel, more = _lowbit_kernel(fmt, target)
        notes += more
    elif is_dense_bf16(fmt):
        dense = replace(target, dtype=torch.bfloat16)
        path = save_state(quantized.module, stem, dense, "dense")  # bf16 already; placed on the GPU at load
        kernel = "torch CUDA bf16 dense (cuBLAS)"
        notes.append("bf16 weights, activations and outputs: the same computation as this runtime's fp32 row, "
                     "which the CUDA runtime casts to bf16 (its dtype)" if target.dtype == torch.bfloat16 else
                     f"bf16 weights, activations and outputs, while this runtime's other rows compute in "
                     f"{target.dtype_name}")
    elif isinstance(fmt, DenseFormat):
        path = save_state(_to_target(copy.deepcopy(quantized.module), target), stem, target, "dense")
        kernel = f"torch CUDA {target.dense_kind} dense (cuBLAS)"
        notes.append(f"the CUDA baseline is half precision: the fp32 model cast to {target.dtype_name} (weights, "
                     f"activations and outputs); other rows on this runtime compare with it")
    else:  # torchao's own quantizer already put the model on the GPU
        kind = "float8-dynamic" if isinstance(fmt, Float8Format) else "int8-dynamic"
        path = save_state(quantized.module, stem, target, kind)
        kernel = quantized.kernel
    if target.compile:
        kernel += " + torch.compile"
    notes.append(LATENCY_NOTE)
    details["cuda"] = target.details()
    return Realized(path, kernel, notes, details, compute_dtype=_compute_dtype(fmt, target))


def _compute_dtype(fmt, target: Target) -> str:
    """What the row's kernels multiply in: the baseline's half dtype, int8 or float8 activations."""
    if isinstance(fmt, Float8Format):
        return "float8"
    if isinstance(fmt, Int8Format):
        return "int8"
    if is_dense_bf16(fmt):
        return "bfloat16"
    return target.dtype_name


def _lowbit_kernel(fmt: LowBitFormat, target: Target) -> tuple[str, list[str]]:
    """The kernel string and notes of a cuda row holding the low-bit ``fmt`` (every layer representable)."""
    packed, bits = fmt.layers, fmt.bits
    if {lw.kernel_kind for lw in packed.values()} == {INT8_WEIGHT_ONLY}:
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
    notes = [f"quantbench's {'/'.join(map(str, bits))}-bit codes and zero points z in tinygemm's layout as they are: "
             f"dequant (q - 8) * s + zero with zero = s * (8 - z); scales and zeros rounded to bf16 "
             f"(at most ~0.06 of a quantization step)"]
    if bits[0] < 4:
        notes.append(f"{bits[0]}-bit codes stored in 4-bit containers (no such CUDA kernel): int4 memory and speed")
    if gathered:
        notes.append(f"act-order groups: the input columns of {', '.join(gathered)} are gathered into group order "
                     f"before the kernel (same integers, permuted along K)")
    return kernel + input_scale_kernel_note(fmt.layers), notes


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
        model = fill_lowbit(model, *read_lowbit_lazily(path), make_layer=functools.partial(_gpu_layer, target=target),
                            device=target.device, dtype=target.dtype)
    else:
        with quiet_torchao():
            saved = torch.load(path, map_location=target.device, weights_only=False)  # our own file
        if not isinstance(saved, dict) or saved.get("format") != STATE_FORMAT:
            raise ValueError(f"{path} is not a {STATE_FORMAT} artifact")
        dtype = getattr(torch, saved["dtype"]) if saved["kind"] == "dense" else target.dtype  # a bf16 row stays bf16
        place_state(model, saved["state"], target.device, dtype)
        model = model.eval().requires_grad_(False)
    return torch.compile(model) if target.compile else model


def _gpu_layer(name: str, lw, bias: torch.Tensor | None, target: Target) -> nn.Module:
    """The module that runs a quantized layer's integers on the GPU (``fill_lowbit``'s ``make_layer``);
    on a GPU, tinygemm's weights are checked against quantbench's before the row runs."""
    if lw.kernel_kind == INT8_WEIGHT_ONLY:
        return weight_only_module(lw, bias, target.device)
    tw = tinygemm_weight(lw)
    module = TinygemmLinear(tw, bias, target.device)
    if target.device.type == "cuda":
        error = check_tinygemm(module, tw)
        if error > _TINYGEMM_CHECK_TOLERANCE:
            raise RuntimeError(f"tinygemm layout check failed for {name}: the kernel's weights differ from "
                               f"quantbench's by {error:.3f} of max|W|")
    return with_input_scale(module, lw, target.device)


def held_target(module: nn.Module, target: Target) -> Target:
    """``target`` computing in the dtype that ``module``'s plain floating parameters hold, when they all
    share one (a bf16 row on a float16 runtime); else ``target``: what a runner casts its inputs to."""
    dtypes = {p.dtype for p in module.parameters() if type(p) is nn.Parameter and p.is_floating_point()}
    return replace(target, dtype=dtypes.pop()) if len(dtypes) == 1 else target


def _to_target(model: nn.Module, target: Target) -> nn.Module:
    return model.to(device=target.device, dtype=target.dtype).eval().requires_grad_(False)


# --- running -----------------------------------------------------------------------------------


class CudaRunner:
    """Runs the model on the GPU: ``__call__`` takes host tensors (or a dict of them) and returns
    the output on the host, floating tensors as float32. For latency (``runtimes.base.timed_call``):
    ``prepare`` places a batch on the GPU, ``run_prepared`` runs the forward to completion and leaves
    its output there."""

    def __init__(self, module: nn.Module, target: Target):
        self.module = module
        self.target = target

    @property
    def device(self) -> str:
        """Where it runs: what its latency cells' bounds are measured on."""
        return str(self.target.device)

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


def free_cached(device: torch.device) -> None:
    """Collect garbage and return the CUDA caching allocator's free blocks, so the next peak starts clean."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
