"""torchao's own quantizers on CUDA (int8 dynamic activation x int8 weight; float8 e4m3), applied to a
model on the GPU, and how their rows describe them. Used by the handlers of the methods that need them
(ptq-dynamic and fp8 on the cuda runtime)."""
from __future__ import annotations

import time
from dataclasses import dataclass, fields

import torch
from torch import nn

from ..errors import Unsupported
from ..quiet import quiet_torchao
from .cuda_capability import INT_MM_MIN_ROWS, Target, synchronize


@dataclass
class TorchaoResult:
    """A model quantized by torchao in place, its kernel, what its row says, and the quantizer's time."""

    module: nn.Module
    kernel: str
    notes: list[str]
    details: dict
    seconds: float


def apply_torchao(kind: str, per_channel: bool, model: nn.Module, target: Target) -> TorchaoResult:
    """``model`` (a copy) moved to the target and quantized by torchao's ``kind`` ('int8-dynamic' or 'float8-dynamic')
    recipe: linear layers whose sizes the kernel takes; the others stay in the target dtype, named."""
    reason = target.reason(kind)
    if reason:
        raise Unsupported(f"{kind} on cuda: {reason}")
    recipe = torchao_recipe(kind, per_channel, target)
    model = model.to(device=target.device, dtype=target.dtype).eval().requires_grad_(False)
    chosen, kept = layers_for(model, recipe.multiple)
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
    notes = recipe.notes + ([f"kept {target.dtype_name} ({recipe.why_kept}): {', '.join(kept)}"] if kept else [])
    details = {"torchao_config": type(recipe.config).__name__, "quantized_layers": len(chosen),
               "kept_layers": kept} | recipe.details
    return TorchaoResult(model, recipe.kernel, notes, details, seconds)


@dataclass
class TorchaoRecipe:
    config: object
    multiple: int
    kernel: str
    notes: list[str]
    why_kept: str
    details: dict


def torchao_recipe(kind: str, per_channel: bool, target: Target) -> TorchaoRecipe:
    """The torchao config for ``kind`` ('int8-dynamic' or 'float8-dynamic'), and how to describe its row."""
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
    if kind == "float8-dynamic":
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


def layers_for(model: nn.Module, multiple: int) -> tuple[set[str], list[str]]:
    """Linear layers whose in/out features are multiples of ``multiple``, and the names of the others."""
    chosen, kept = set(), []
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            fits = module.in_features % multiple == 0 and module.out_features % multiple == 0
            (chosen.add(name) if fits else kept.append(name))
    return chosen, kept


def _is_subclass(tensor) -> bool:
    from torch.utils._python_dispatch import is_traceable_wrapper_subclass

    return is_traceable_wrapper_subclass(tensor)
