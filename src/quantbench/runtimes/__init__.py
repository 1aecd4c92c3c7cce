from .base import RUNTIMES, Realized, Runner, Runtime
from .torch_cpu import TorchCPU
# after torch-cpu (registry order = order of 'all'); registers even without onnxruntime, imported lazily
from .onnxruntime_cpu import OnnxRuntimeCPU  # noqa: E402
# registers everywhere; touches the GPU and imports torchao only when a row runs on it
from .cuda import TorchCUDA  # noqa: E402

__all__ = ["RUNTIMES", "OnnxRuntimeCPU", "Realized", "Runner", "Runtime", "TorchCPU", "TorchCUDA"]
