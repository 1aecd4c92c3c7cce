"""Dynamic PTQ: int8 weights, activations quantized per batch at run time (nn.Linear). torch.ao's
quantizer here; ONNX Runtime's and torchao's (CUDA) in this package's runtime modules."""
from dataclasses import dataclass

from torch import nn

from ...config import MethodConfig, option, register_method
from ...quiet import quiet_torch_quantization
from ..base import Quantized, quantizes
from ..int8_modules import EMBEDDING_REASON, float_layers_note, require_int8_engine, torch_int8_format

BATCH_NOTE = ("activation ranges are taken per call, so outputs depend on what is batched together; quality "
              "is measured in the task's evaluation batches (details.eval_batch_size)")


@register_method("ptq-dynamic", "int8 weights; activations quantized at run time (linear layers)")
@dataclass(frozen=True)
class PTQDynamicConfig(MethodConfig):
    per_channel: bool = option(True, "one weight scale per output channel (else one per tensor)")


@quantizes(PTQDynamicConfig)
def quantize_dynamic_int8(config: PTQDynamicConfig, model: nn.Module, ctx) -> Quantized:
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig, quantize_dynamic

    require_int8_engine()
    qconfig = per_channel_dynamic_qconfig if config.per_channel else default_dynamic_qconfig
    with quiet_torch_quantization():
        q = quantize_dynamic(model, {nn.Linear: qconfig}, inplace=False)
    notes = float_layers_note(q, "dynamic quantization covers nn.Linear only", embeddings_why=EMBEDDING_REASON)
    notes.append(BATCH_NOTE)
    return Quantized(q, torch_int8_format(q, "dynamic", config.per_channel), notes=notes)


from . import cuda, onnxruntime  # noqa: E402,F401  (registers the runtime-native handlers)
