"""PyTorch on CPU: models saved as frozen TorchScript, int8 ops on torch's quantized engines.

Engine per platform: 'x86' (fbgemm with oneDNN) on x86-64, 'qnnpack' on ARM. On our AVX2
machines fbgemm's int8 linear is 3-6x faster than fp32 (see shared measurements), while
torchao's int8 CPU path is slower than fp32 there, so torch's engines are the CPU default.
"""
import platform
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..quiet import quiet_torch_quantization
from .base import Runner

_PREFERENCE = {"x86_64": ("x86", "fbgemm"), "amd64": ("x86", "fbgemm"),
               "aarch64": ("qnnpack",), "arm64": ("qnnpack",)}
_ENGINE_KERNELS = {"x86": "x86 engine (fbgemm/oneDNN)", "fbgemm": "fbgemm", "qnnpack": "qnnpack", "onednn": "oneDNN"}


def choose_int8_engine() -> str | None:
    supported = torch.backends.quantized.supported_engines
    wanted = _PREFERENCE.get(platform.machine().lower(), ("x86", "fbgemm", "qnnpack"))
    return next((e for e in wanted if e in supported), None)


@dataclass
class TorchCPU:
    name: str = "torch-cpu"
    engine: str | None = field(default_factory=choose_int8_engine)

    def unavailable_reason(self) -> str | None:
        return None

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

    def save(self, module: nn.Module, example: torch.Tensor, path: Path) -> Path:
        self.activate()
        with torch.no_grad(), quiet_torch_quantization():
            scripted = torch.jit.freeze(torch.jit.trace(module.eval(), example))
            torch.jit.save(scripted, str(path))
        return path

    def load(self, path: Path) -> Runner:
        self.activate()
        with quiet_torch_quantization():
            scripted = torch.jit.load(str(path))
        return _NoGrad(scripted)


class _NoGrad:
    def __init__(self, module):
        self.module = module

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.module(x)
