"""FP8: float8 e4m3 weights and activations scaled at run time (torchao, ``torch._scaled_mm``).
Only the cuda runtime has the kernel (sm89+: L4, L40S, H100); elsewhere the row says so."""
from dataclasses import dataclass

from torch import nn

from ..config import MethodConfig, option, register_method
from .base import Quantized, Unsupported, quantizes


@register_method("fp8", "float8 e4m3 weights and dynamic activations (cuda runtime, sm89+ GPUs)")
@dataclass(frozen=True)
class FP8Config(MethodConfig):
    per_channel: bool = option(True, "one scale per weight row / activation token (else one per tensor)")


@quantizes(FP8Config)
def refuse_fp8_off_gpu(config: FP8Config, model: nn.Module, ctx) -> Quantized:
    raise Unsupported(f"fp8 on {ctx.runtime.name}: no float8 matmul kernel on this runtime; fp8 rows run with "
                      f"--runtime cuda on an sm89+ GPU (L4, L40S, H100)")
