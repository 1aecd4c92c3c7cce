"""The baseline, measured through exactly the same save/load/timing path as every method."""
from dataclasses import dataclass

from ..config import MethodConfig, register_method
from ..formats import DenseFormat
from .base import Quantized, quantizes


@register_method("fp32", "the trained float32 model, unchanged (the baseline)")
@dataclass(frozen=True)
class FP32Config(MethodConfig):
    pass


@quantizes(FP32Config, shares_weights=True)
def keep_fp32(config, model, ctx) -> Quantized:
    return Quantized(model, DenseFormat())
