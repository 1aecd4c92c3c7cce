from .base import Runner, Runtime
from .torch_cpu import TorchCPU

__all__ = ["Runner", "Runtime", "TorchCPU"]
