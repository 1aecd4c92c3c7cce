"""FP8: float8 e4m3 weights and activations scaled at run time (torchao, ``torch._scaled_mm``).
Only CUDA has the kernel (sm89+: L4, L40S, H100), so the method's one handler is torchao's, for the
cuda runtime: elsewhere the row is unsupported, with the method's summary as the reason."""
from dataclasses import dataclass

from ..config import MethodConfig, option, register_method
from ..formats import Float8Format
from ..kernels.torchao_recipes import apply_torchao
from .base import Quantized, quantizes


@register_method("fp8", "float8 e4m3 weights and dynamic activations; runs with --runtime cuda on sm89+ GPUs")
@dataclass(frozen=True)
class FP8Config(MethodConfig):
    per_channel: bool = option(True, "one scale per weight row / activation token (else one per tensor)")


@quantizes(FP8Config, runtime="cuda")
def quantize_float8_torchao(config: FP8Config, model, ctx) -> Quantized:
    done = apply_torchao("float8-dynamic", config.per_channel, model, ctx.target)
    return Quantized(done.module, Float8Format(config.per_channel), notes=done.notes, details=done.details,
                     kernel=done.kernel, seconds=done.seconds)
