"""ptq-dynamic on CUDA: torchao's ``Int8DynamicActivationInt8WeightConfig`` (its own int8 quantizer)."""
from ...formats import Int8Format
from ...kernels.torchao_recipes import apply_torchao
from ..base import Quantized, quantizes
from . import PTQDynamicConfig


@quantizes(PTQDynamicConfig, runtime="cuda")
def quantize_dynamic_torchao(config: PTQDynamicConfig, model, ctx) -> Quantized:
    done = apply_torchao("int8-dynamic", config.per_channel, model, ctx.target)
    return Quantized(done.module, Int8Format("dynamic", config.per_channel, "torchao"), notes=done.notes,
                     details=done.details, kernel=done.kernel, seconds=done.seconds)
