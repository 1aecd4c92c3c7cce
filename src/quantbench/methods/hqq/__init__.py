"""HQQ (Badri & Shaji, 2023): calibration-free low-bit weights whose float zero points minimize an
lp error by half-quadratic optimisation (``core.py``). Same format and kernels as rtn/gptq: the
float zeros run as they are in tinygemm (whose zero is a float); for MatMulNBits they are split exactly
into integer zero points and a per-group correction (``kernels/matmul_nbits.py``)."""
from dataclasses import dataclass
from functools import partial

from ...config import option, register_method
from ...errors import UserError
from ..base import Quantized, quantizes
from ..lowbit.api import WeightOnlyConfig, quantize_weight_only
from .core import hqq_quantize


@register_method("hqq", "weight-only HQQ: calibration-free, float zero points optimised per group")
@dataclass(frozen=True)
class HQQConfig(WeightOnlyConfig):
    iters: int = option(20, "half-quadratic iterations (stops early when the error stops falling)")
    lp_norm: float = option(0.7, "p of the lp error norm (p < 1 promotes sparse errors)")
    beta: float = option(10.0, "initial weight of the quadratic term")
    kappa: float = option(1.01, "factor beta grows by each iteration")

    def __post_init__(self):
        super().__post_init__()
        if self.iters < 0 or not 0 < self.lp_norm <= 1 or self.beta <= 0 or self.kappa < 1:
            raise UserError("hqq: need iters >= 0, 0 < lp_norm <= 1, beta > 0 and kappa >= 1")


def _hqq_layer(config: HQQConfig, name: str, w, hessian) -> tuple:
    return hqq_quantize(w, config.bits, config.group_size, config.iters, config.lp_norm, config.beta, config.kappa)


@quantizes(HQQConfig, shares_weights=True)
def quantize_hqq(config: HQQConfig, model, ctx) -> Quantized:
    quantized = quantize_weight_only(config, model, ctx, partial(_hqq_layer, config), needs_hessian=False)
    layers = quantized.details["layers"].values()
    before = sum(i["error_before"] for i in layers) / max(len(layers), 1)
    after = sum(i["error_after"] for i in layers) / max(len(layers), 1)
    quantized.notes.append(f"HQQ: float zero points per group of {config.group_size}, no calibration data; mean |W - "
                           f"W_q| over layers {before:.3g} at the min-max start -> {after:.3g} after "
                           f"{max((i['iterations'] for i in layers), default=0)} iteration(s) at most")
    return quantized
