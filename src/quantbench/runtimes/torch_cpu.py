"""PyTorch on CPU, with three artifact formats:

- frozen TorchScript (``.pt``) for models with one tensor input: fp32 and torch int8 models,
  whose int8 ops run on torch's quantized engines ('x86' = fbgemm/oneDNN on x86-64,
  'qnnpack' on ARM; on our AVX2 machines fbgemm's int8 linear is 3-6x faster than fp32 while
  torchao's int8 CPU path is slower, see docs/kernels.md);
- safetensors (``.safetensors``) for low-bit weight-only models (packed codes) and for fp32 and
  bf16 models of tasks that cannot be traced (transformers; bf16 tensors stay bf16, run eagerly).
  At load the quantized layers become
  torch's CPU weight-only kernels fed with the same integers (int4 tinygemm
  ``aten._weight_int4pack_mm_for_cpu`` for 2/3/4-bit codes, ``aten._weight_int8pack_mm`` for
  8-bit per-row grids; bf16 activations), see ``kernels/weight_only.py``; layers neither takes keep their
  weights dequantized once at load, and the row says so. The file is filled into a skeleton of
  the model (parameters on "meta"), so loading reads and allocates no fp32 weights first;
- a pickled module (``.pth``, torch.save) for torch int8 models of tasks that cannot be
  traced: the quantized modules and their packed int8 weights, loaded with torch.load.
After loading, traceable low-bit models are frozen TorchScript in memory too (kernel calls
included), so they get the same treatment as the fp32 row. Dense bf16 models of traceable tasks are
frozen with their input cast to bf16 and their output back to float32; which CPU path runs bf16
(AMX-BF16, AVX512-BF16, or emulation) is read from the CPU's flags (``kernels/cpu_dense.py``).
"""
import platform
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..env import cpu_flags
from ..formats import DenseFormat, Float8Format, Int8Format, LowBitFormat
from ..formats.dense import is_dense_bf16
from ..formats.lowbit import INT4_WEIGHT_ONLY, INT8_WEIGHT_ONLY
from ..formats.lowbit_file import fill_lowbit, is_dense_file, read_lowbit_lazily, save_lowbit_model, stream_dense_into
from ..kernels.cpu_dense import bf16_cpu_path
from ..kernels.int8_engine import (activate_int8_engine, choose_int8_engine, engine_kernel,
                                   int8_engine_unavailable_reason)
from ..kernels.weight_only import CPU_KERNELS, cpu_dense_layers, cpu_kernel_summary, cpu_layer, missing_cpu_kernel
from ..measure.memory import peak_memory_bytes
from ..measure.size import weight_bytes
from ..quiet import quiet_torch_quantization
from ..tasks.skeleton import build_skeleton
from .base import RUNTIMES, Realized, Runner


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
        lowbit = "; ".join(f"{kind}: " + (missing_cpu_kernel(bits) or f"aten.{CPU_KERNELS[kind]}")
                           for bits, kind in ((4, INT4_WEIGHT_ONLY), (8, INT8_WEIGHT_ONLY)))
        return (f"torch {torch.__version__}, fp32 as frozen TorchScript; {engine}; {lowbit}; "
                f"bf16: {host_bf16_path().kernel}")

    def int8_unavailable_reason(self) -> str | None:
        return int8_engine_unavailable_reason(self.engine)

    def activate(self) -> None:
        activate_int8_engine(self.engine)

    def kernel(self, op: str) -> str:
        """Name of what runs ``op`` (e.g. 'int8 dynamic linear') on this runtime."""
        return engine_kernel(self.engine, op)

    def supports(self, quantized) -> str | None:
        """Why ``quantized``'s format cannot run here, or None: decided from the format alone."""
        fmt = quantized.format
        if isinstance(fmt, Float8Format):
            return "float8: torch has no CPU float8 matmul kernel; it runs on CUDA GPUs of sm89+ (--runtime cuda)"
        if isinstance(fmt, DenseFormat) and fmt.dtype not in ("float32", "bfloat16"):
            return f"dense {fmt.dtype}: torch-cpu runs dense float32 and bfloat16 models"
        if isinstance(fmt, Int8Format):
            if fmt.source != "torch.ao":
                return f"int8 made by {fmt.source}: torch-cpu runs the int8 models of torch.ao's quantizers"
            return self.int8_unavailable_reason()
        return None

    def realize(self, quantized, task, stem: Path) -> Realized:
        """Write ``quantized`` (supported here) as this runtime's artifact and name the kernel that runs it."""
        path = self.save(quantized, task, stem)
        notes, details = list(quantized.notes), dict(quantized.details)
        fmt = quantized.format
        if isinstance(fmt, LowBitFormat):
            dense = cpu_dense_layers(fmt.layers)
            kernel, more = cpu_kernel_summary(fmt.layers, dense)
            notes += more
            details |= {"dense_lowbit_layers": list(dense), "fp32_kernel_only": len(dense) == len(fmt.layers)}
            dtype = "float32" if details["fp32_kernel_only"] else "bfloat16"  # the kernels' activations
        elif isinstance(fmt, Int8Format):
            kernel = self.kernel(f"int8 {fmt.activations} linear" + ("/conv" if fmt.activations == "static" else ""))
            dtype = "int8"
        elif is_dense_bf16(fmt):
            kernel, dtype = self._bf16_kernel(task, notes, details), "bfloat16"
        else:
            kernel = f"torch fp32 dense ({'frozen TorchScript' if task.traceable else 'eager'})"
            dtype = "float32"
        return Realized(path, kernel, notes, details, compute_dtype=dtype)

    def _bf16_kernel(self, task, notes: list[str], details: dict) -> str:
        """The kernel string of a dense bf16 row (the host's bf16 path), with its notes and details."""
        host = host_bf16_path()
        details["cpu_bf16"] = {"native": host.native, "cpu_capability": torch.backends.cpu.get_cpu_capability()}
        if task.traceable:
            notes.append("bf16 weights and activations: the frozen graph casts its input to bf16 and its output "
                         "back to float32")
        return f"{host.kernel}; {'frozen TorchScript' if task.traceable else 'eager'}"

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
        """Write the artifact of ``quantized`` (a methods.Quantized; its notes and details get what the
        file holds) and return its path: frozen TorchScript, a pickled torch.ao module (untraceable
        tasks), or safetensors (low-bit layers; fp32 of untraceable tasks)."""
        self.activate()
        if not task.traceable and isinstance(quantized.format, Int8Format):
            path = stem.with_suffix(".pth")
            with quiet_torch_quantization():
                torch.save(quantized.module, path)
            return path
        if isinstance(quantized.format, LowBitFormat) or not task.traceable:
            path = stem.with_suffix(".safetensors")
            fmt = quantized.format if isinstance(quantized.format, LowBitFormat) else None
            quantized.notes += save_lowbit_model(quantized.module, fmt, path, quantized.details)
            return path
        path = stem.with_suffix(".pt")
        module = _Bfloat16Graph(quantized.module) if is_dense_bf16(quantized.format) else quantized.module
        with torch.no_grad(), quiet_torch_quantization():
            torch.jit.save(_freeze(module, task.example_input), str(path))
        return path

    def load(self, path: Path, task) -> Runner:
        self.activate()
        if path.suffix == ".safetensors":
            return lowbit_runner(path, build_skeleton(task.build_model), task.example_input if task.traceable else None)
        if path.suffix == ".pth":
            return pickled_runner(path)
        with quiet_torch_quantization():
            return _Runner(torch.jit.load(str(path)))

    def load_into(self, path: Path, task, model: nn.Module) -> Runner | None:
        """A dense safetensors artifact (fp32 of a task that cannot be traced) run in ``model``, an eager
        model of the same architecture whose every tensor is replaced by the file's, one at a time: the
        baseline row and the model later rows quantize then share one dense copy. None for other artifacts."""
        if path.suffix != ".safetensors" or task.traceable or not is_dense_file(path):
            return None
        self.activate()
        stream_dense_into(model, path)
        return _Runner(model.eval())


def host_bf16_path():
    """What runs dense bf16 matmuls on this host's CPU (from its flags)."""
    return bf16_cpu_path(cpu_flags(), platform.machine())


class _Bfloat16Graph(nn.Module):
    """A bf16 model of a traceable task as one graph: float32 in and out, bf16 inside (the input cast
    to bf16, the output back to float32, both inside the frozen graph and its timing)."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x.to(torch.bfloat16)).float()


def lowbit_runner(path: Path, skeleton: nn.Module, example: torch.Tensor | None) -> "_Runner":
    """The low-bit artifact in ``skeleton`` (built on any device, "meta" too) with torch's CPU
    weight-only kernels; frozen TorchScript when an ``example`` input is given."""
    module = fill_lowbit(skeleton, *read_lowbit_lazily(path), make_layer=cpu_layer)
    run = _Runner(module if example is None else _freeze(module, example))
    run.weight_bytes = weight_bytes(module)  # as the kernels hold them; frozen TorchScript hides its constants
    return run


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
import importlib, quantbench.formats.lowbit_file
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
