from .base import RUNTIMES, Realized, Runner, Runtime
from .torch_cpu import TorchCPU

__all__ = ["RUNTIMES", "Realized", "Runner", "Runtime", "TorchCPU"]
