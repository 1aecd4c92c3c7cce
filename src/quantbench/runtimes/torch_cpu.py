"""PyTorch on CPU, with three artifact formats:

- frozen TorchScript (``.pt``) for models with one tensor input: fp32 and torch int8 models,
  whose int8 ops run on torch's quantized engines ('x86' = fbgemm/oneDNN on x86-64,
  'qnnpack' on ARM; on our AVX2 machines fbgemm's int8 linear is 3-6x faster than fp32 while
  torchao's int8 CPU path is slower, see docs/kernels.md);
- safetensors (``.safetensors``) for low-bit weight-only models (packed codes) and for fp32
  models of tasks that cannot be traced (transformers). At load the quantized layers become
  torch's CPU weight-only kernels fed with the same integers (int4 tinygemm
  ``aten._weight_int4pack_mm_for_cpu`` for 2/3/4-bit codes, ``aten._weight_int8pack_mm`` for
  8-bit per-row grids; bf16 activations), see ``weight_only.py``; layers neither takes keep their
  weights dequantized once at load, and the row says so. The file is filled into a skeleton of
  the model (parameters on "meta"), so loading reads and allocates no fp32 weights first;
- a pickled module (``.pth``, torch.save) for torch int8 models of tasks that cannot be
  traced: the quantized modules and their packed int8 weights, loaded with torch.load.
After loading, traceable low-bit models are frozen TorchScript in memory too (kernel calls
included), so they get the same treatment as the fp32 row.
"""
import platform
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..measure.memory import peak_memory_bytes
from ..quiet import quiet_torch_quantization
from ..tasks.skeleton import build_skeleton
from .base import RUNTIMES, Realized, Runner
from .weight_only import CPU_KERNELS, cpu_dense_layers, cpu_kernel_summary, cpu_layer, missing_cpu_kernel

_PREFERENCE = {"x86_64": ("x86", "fbgemm"), "amd64": ("x86", "fbgemm"),
               "aarch64": ("qnnpack",), "arm64": ("qnnpack",)}
_ENGINE_KERNELS = {"x86": "x86 engine (fbgemm/oneDNN)", "fbgemm": "fbgemm", "qnnpack": "qnnpack", "onednn": "oneDNN"}


def choose_int8_engine() -> str | None:
    supported = torch.backends.quantized.supported_engines
    wanted = _PREFERENCE.get(platform.machine().lower(), ("x86", "fbgemm", "qnnpack"))
    return next((e for e in wanted if e in supported), None)


@RUNTIMES.register("torch-cpu")
@dataclass
class TorchCPU:
    name: str = "torch-cpu"
    engine: str | None = field(default_factory=choose_int8_engine)

    def unavailable_reason(self) -> str | None:
        return None

    def describe(self) -> str:
        int8 = self.int8_unavailable_reason()
        engine = f"int8 engine '{self.engine}' ({self.kernel('int8 linear/conv')})" if not int8 else \
            f"no int8 engine: {int8}"
        lowbit = "; ".join(f"{bits}-bit weight-only: " + (missing_cpu_kernel(bits) or f"aten.{op}")
                           for bits, op in CPU_KERNELS.items())
        return f"torch {torch.__version__}, fp32 as frozen TorchScript; {engine}; {lowbit}"

    def int8_unavailable_reason(self) -> str | None:
        if self.engine is None:
            return f"no int8 engine for {platform.machine()} in this torch build " \
                   f"(supported: {torch.backends.quantized.supported_engines})"
        return None

    def activate(self) -> None:
        if self.engine:
            torch.backends.quantized.engine = self.engine

    def kernel(self, op: str) -> str:
        """Name of what runs ``op`` (e.g. 'int8 dynamic linear') on this runtime."""
        return f"torch {_ENGINE_KERNELS.get(self.engine, self.engine)} {op}"

    def realize(self, config, fp32: nn.Module, ctx, stem: Path) -> Realized:
        quantized, seconds = ctx.quantize(config, fp32)
        path = self.save(quantized, ctx.task, stem)
        kernel, notes = quantized.kernel, list(quantized.notes)
        details = dict(quantized.details)
        if quantized.packed:
            dense = cpu_dense_layers(quantized.packed)
            kernel, more = cpu_kernel_summary(quantized.packed, dense)
            notes += more
            details |= {"dense_lowbit_layers": list(dense), "fp32_kernel_only": len(dense) == len(quantized.packed)}
        return Realized(path, kernel, seconds, notes, details)

    def peak_memory(self, path: Path, task, batch_size: int, threads: int) -> int | None:
        batch = task.latency_input(batch_size)
        if path.suffix == ".pt":
            return peak_memory_bytes(path, list(batch.shape), threads, self.engine)
        skeleton = build_skeleton(task.build_model)
        with tempfile.TemporaryDirectory() as folder:
            # the model's classes are imported before the baseline: importing transformers is not the model's memory
            probe = {"batch": _batch_shapes(batch), "skeleton": None,
                     "modules": sorted({type(m).__module__ for m in skeleton.modules()})}
            if path.suffix == ".safetensors":
                probe["skeleton"] = str(Path(folder) / "skeleton.pth")
                torch.save(skeleton, probe["skeleton"])
            return peak_memory_bytes(path, probe, threads, self.engine, imports=_PROBE_IMPORTS,
                                     load_and_run=_PROBE_LOAD_AND_RUN)

    def save(self, quantized, task, stem: Path) -> Path:
        """Write the artifact of ``quantized`` (a methods.Quantized) and return its path."""
        self.activate()
        if not task.traceable and _has_torch_int8(quantized.module):
            path = stem.with_suffix(".pth")
            with quiet_torch_quantization():
                torch.save(quantized.module, path)
            return path
        if quantized.packed is not None or not task.traceable:
            return _save_safetensors(quantized, stem.with_suffix(".safetensors"))
        path = stem.with_suffix(".pt")
        with torch.no_grad(), quiet_torch_quantization():
            torch.jit.save(_freeze(quantized.module, task.example_input), str(path))
        return path

    def load(self, path: Path, task) -> Runner:
        self.activate()
        if path.suffix == ".safetensors":
            return lowbit_runner(path, build_skeleton(task.build_model), task.example_input if task.traceable else None)
        if path.suffix == ".pth":
            return pickled_runner(path)
        with quiet_torch_quantization():
            return _Runner(torch.jit.load(str(path)))


def lowbit_runner(path: Path, skeleton: nn.Module, example: torch.Tensor | None) -> "_Runner":
    """The low-bit artifact in ``skeleton`` (built on any device, "meta" too) with torch's CPU
    weight-only kernels; frozen TorchScript when an ``example`` input is given."""
    from ..methods.lowbit.artifact import fill_lowbit, read_lowbit

    module = fill_lowbit(skeleton, *read_lowbit(path), make_layer=cpu_layer)
    return _Runner(module if example is None else _freeze(module, example))


def pickled_runner(path: Path) -> "_Runner":
    """A torch.save'd module (torch int8 models of tasks that cannot be traced)."""
    with quiet_torch_quantization():
        return _Runner(torch.load(path, weights_only=False).eval())


def _batch_shapes(batch) -> dict:
    """What the memory probe needs to rebuild a batch like ``batch``: a float tensor's shape, or the
    shapes of a dict of token tensors."""
    if isinstance(batch, dict):
        return {"tokens": {name: list(t.shape) for name, t in batch.items()}}
    return {"floats": list(batch.shape)}


def probe_batch(shapes: dict):
    """A batch of the shapes ``_batch_shapes`` gave: random floats, or token ids / masks of ones."""
    if "tokens" in shapes:
        return {name: torch.ones(shape, dtype=torch.long) for name, shape in shapes["tokens"].items()}
    return torch.randn(*shapes["floats"])


_PROBE_IMPORTS = """import torch
torch.set_num_threads(threads)
if option != "none": torch.backends.quantized.engine = option
from quantbench.runtimes import torch_cpu
import importlib, quantbench.methods.lowbit.artifact
for module in shape["modules"]: importlib.import_module(module)
skeleton = torch.load(shape["skeleton"], weights_only=False) if shape["skeleton"] else None
x = torch_cpu.probe_batch(shape["batch"])
torch.zeros(1) + 1"""

_PROBE_LOAD_AND_RUN = """if skeleton is None:
    run = torch_cpu.pickled_runner(path)
else:
    run = torch_cpu.lowbit_runner(path, skeleton, None)
run(x)"""
"""Safetensors artifacts are filled into a skeleton (parameters on "meta", so the baseline holds no
weights) and run eagerly: freezing would add TorchScript's one-off compile memory, which the fp32
row's artifact (frozen before saving) does not pay either. Pickled modules are loaded whole."""


def _has_torch_int8(module: nn.Module) -> bool:
    return any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in module.modules())


def _save_safetensors(quantized, path: Path) -> Path:
    from ..methods.lowbit.artifact import save_lowbit

    breakdown = save_lowbit(quantized.module, quantized.packed or {}, quantized.format_config, path)
    quantized.details["size_breakdown"] = vars(breakdown) | {"metadata_bytes": breakdown.metadata_bytes}
    if quantized.packed:
        quantized.notes.append(breakdown.describe(fp32_bytes=4 * sum(lw.q.numel() for lw in quantized.packed.values())))
    return path


def _freeze(module: nn.Module, example: torch.Tensor):
    with torch.no_grad(), quiet_torch_quantization():
        return torch.jit.freeze(torch.jit.trace(module.eval(), example))


class _Runner:
    """Calls the model on a batch (a tensor, or a dict of tensors for transformers) without autograd."""

    def __init__(self, module):
        self.module = module

    def __call__(self, batch):
        with torch.inference_mode():
            return self.module(**batch) if isinstance(batch, dict) else self.module(batch)
