"""FP8: float8 e4m3 weights and activations scaled at run time (torchao, ``torch._scaled_mm``).
Only the cuda runtime has the kernel (sm89+: L4, L40S, H100), so there is no torch-cpu handler:
elsewhere the row is unsupported, with the method's summary as the reason."""
from dataclasses import dataclass

from ..config import MethodConfig, option, register_method


@register_method("fp8", "float8 e4m3 weights and dynamic activations; runs with --runtime cuda on sm89+ GPUs")
@dataclass(frozen=True)
class FP8Config(MethodConfig):
    per_channel: bool = option(True, "one scale per weight row / activation token (else one per tensor)")

