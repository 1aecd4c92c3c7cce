"""Static PTQ: int8 weights and activations, ranges calibrated on a calibration split
(a slice of the training data, never the test split); conv/bn/relu and linear/relu fused (torch.ao
FX here; ONNX Runtime's own calibrating quantizer in ``onnxruntime.py``)."""
from dataclasses import dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from ...config import MethodConfig, option, register_method
from ...errors import UserError
from ...quiet import quiet_torch_quantization
from ..base import Context, Quantized, quantizes
from ..int8_modules import (EMBEDDING_REASON, float_layers_note, keep_embeddings_float, require_int8_engine,
                            require_traceable, torch_int8_format)
from ..observers import activation_observer


@register_method("ptq-static", "int8 weights and activations, calibrated ranges, fused conv/bn/relu")
@dataclass(frozen=True)
class PTQStaticConfig(MethodConfig):
    observer: str = option("histogram", "activation range observer", choices=("minmax", "histogram", "percentile"))
    percentile: float = option(99.99, "clipping percentile when observer=percentile")
    per_channel: bool = option(True, "one weight scale per output channel (else one per tensor)")
    calib_samples: int = option(256, "calibration samples taken from the training split")
    calib_batch: int = option(32, "calibration batch size")

    def __post_init__(self):
        super().__post_init__()
        if not 50.0 < self.percentile <= 100.0:
            raise UserError(f"ptq-static: percentile must be in (50, 100], got {self.percentile}")


def static_qconfig_mapping(config: PTQStaticConfig, engine: str):
    from torch.ao.quantization import QConfig, QConfigMapping, get_default_qconfig
    from torch.ao.quantization.observer import default_per_channel_weight_observer, default_weight_observer

    with quiet_torch_quantization():
        reduce_range = get_default_qconfig(engine).activation().reduce_range
    weight = default_per_channel_weight_observer if config.per_channel else default_weight_observer
    act = activation_observer(config.observer, config.percentile, reduce_range)
    return keep_embeddings_float(QConfigMapping().set_global(QConfig(activation=act, weight=weight)))


@quantizes(PTQStaticConfig)
def quantize_static_int8(config: PTQStaticConfig, model: nn.Module, ctx: Context) -> Quantized:
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    engine = require_int8_engine()
    require_traceable(ctx, "static int8 (FX graph mode)")
    calib = ctx.task.calibration_inputs(config.calib_samples, config.calib_batch)
    with quiet_torch_quantization():
        prepared = prepare_fx(model, static_qconfig_mapping(config, engine), (ctx.task.example_input,))
        calibrate(prepared, calib, ctx.progress)
        q = convert_fx(prepared)
    notes = [f"calibrated on {sum(len(b) for b in calib)} training samples with the {config.observer} observer"]
    notes += float_layers_note(q, "not convertible by FX static quantization", embeddings_why=EMBEDDING_REASON)
    return Quantized(q, torch_int8_format(q, "static", config.per_channel), notes=notes)


@torch.no_grad()
def calibrate(prepared: nn.Module, batches: list[torch.Tensor], progress: bool) -> None:
    prepared.eval()
    for batch in tqdm(batches, desc="calibrate", disable=not progress, leave=False, unit="batch"):
        prepared(batch)


from . import onnxruntime  # noqa: E402,F401  (registers the runtime-native handler)
