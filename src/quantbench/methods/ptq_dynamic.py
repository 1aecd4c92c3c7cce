"""Dynamic PTQ: int8 weights, activations quantized per batch at run time (nn.Linear)."""
from dataclasses import dataclass

from torch import nn

from ..config import MethodConfig, option, register_method
from ..quiet import quiet_torch_quantization
from .base import Quantized, quantizes
from .int8_modules import float_layers_note, require_int8_engine


@register_method("ptq-dynamic", "int8 weights; activations quantized at run time (linear layers)")
@dataclass(frozen=True)
class PTQDynamicConfig(MethodConfig):
    per_channel: bool = option(True, "one weight scale per output channel (else one per tensor)")


@quantizes(PTQDynamicConfig)
def quantize_dynamic_int8(config: PTQDynamicConfig, model: nn.Module, ctx) -> Quantized:
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig, quantize_dynamic

    require_int8_engine(ctx)
    qconfig = per_channel_dynamic_qconfig if config.per_channel else default_dynamic_qconfig
    with quiet_torch_quantization():
        q = quantize_dynamic(model, {nn.Linear: qconfig}, inplace=False)
    notes = float_layers_note(q, "dynamic quantization covers nn.Linear only")
    notes.append("activation ranges are taken per call, so outputs depend on what is batched together; quality "
                 "is measured in the task's evaluation batches (details.eval_batch_size)")
    return Quantized(q, kernel=ctx.runtime.kernel("int8 dynamic linear"), notes=notes)
