"""SmoothQuant (Xiao et al., ICML 2023): migrate activation outliers into the weights with a per-channel scale."""
import time
from dataclasses import dataclass

import torch
from torch import nn

from ...config import option, register_method
from ...errors import UserError
from ...tasks.base import batch_rows
from ..base import Quantized, quantizes
from ..calibration.fold import find_folds, fold_scale, scale_weight_columns
from ..calibration.stats import input_channel_stats
from ..ptq_dynamic import PTQDynamicConfig
from ..ptq_static import PTQStaticConfig
from .core import smoothing_factors, weight_input_absmax


@register_method("smoothquant", "W8A8 int8 after migrating activation outliers into the weights (strength alpha)")
@dataclass(frozen=True)
class SmoothQuantConfig(PTQStaticConfig):
    alpha: float = option(0.5, "migration strength: 0 keeps the activations' range, 1 moves it all to the weights")
    activations: str = option("static", "int8 activations after smoothing: calibrated ranges or per call",
                              choices=("static", "dynamic"))

    def __post_init__(self):
        super().__post_init__()
        if not 0.0 <= self.alpha <= 1.0:
            raise UserError(f"smoothquant: alpha must be in [0, 1], got {self.alpha}")

    def base(self) -> PTQStaticConfig | PTQDynamicConfig:
        """The int8 method run on the smoothed model, with this config's options."""
        if self.activations == "dynamic":
            return PTQDynamicConfig(per_channel=self.per_channel)
        return PTQStaticConfig(observer=self.observer, percentile=self.percentile, per_channel=self.per_channel,
                               calib_samples=self.calib_samples, calib_batch=self.calib_batch)


@quantizes(SmoothQuantConfig)
def quantize_smoothquant(config: SmoothQuantConfig, model: nn.Module, ctx) -> Quantized:
    calib = ctx.task.calibration_inputs(config.calib_samples, config.calib_batch)
    start = time.perf_counter()
    smoothed = smooth_model(model, calib, config.alpha)
    smoothing = time.perf_counter() - start
    quantized = ctx.quantize_with(config.base(), model)  # the int8 method's handler for this row's runtime
    base_seconds = time.perf_counter() - start - smoothing if quantized.seconds is None else quantized.seconds
    quantized.seconds = smoothing + base_seconds
    note = (f"SmoothQuant alpha={config.alpha:g} on {sum(map(batch_rows, calib))} calibration samples, then "
            f"{config.base().label()}: ")
    if smoothed:
        note += "smoothed " + "; ".join(f"{name} (activation range {info['range_before']:.3g} -> "
                                        f"{info['range_after']:.3g}x its median channel) <- {info['fold']}"
                                        for name, info in smoothed.items())
    else:
        note += "no layer's input comes from an op the smoothing can be folded into exactly, so nothing changed"
    quantized.notes.insert(0, note)
    quantized.details["smoothquant"] = {"alpha": config.alpha, "smoothed": smoothed}
    return quantized


quantize_smoothquant.per_runtime = True  # it hands on to each runtime's own int8 handler: no reuse across runtimes


def smooth_model(model: nn.Module, calib: list, alpha: float) -> dict[str, dict]:
    """Smooth, in place, every nn.Linear whose input scale folds exactly into the op producing it:
    x / s there, W * s in the layer. All factors come from the unchanged model first (a layer can be
    both smoothed and the producer of another). Returns {layer: what changed}."""
    linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    folds = find_folds(model, linears)
    layers = {name: model.get_submodule(name) for name in folds}
    stats = input_channel_stats(model, layers, calib)
    factors = {name: smoothing_factors(stats[name].absmax, weight_input_absmax(layers[name].weight.detach()), alpha)
               for name in folds if name in stats}
    with torch.no_grad():
        for name, s in factors.items():
            fold_scale(model, folds[name], s)
            scale_weight_columns(layers[name], s)
    return {name: {"fold": folds[name].describe(), "range_before": _spread(stats[name].absmax),
                   "range_after": _spread(stats[name].absmax / s)} for name, s in factors.items()}


def _spread(absmax: torch.Tensor) -> float:
    """How far the largest channel's range is from the median channel's (the outliers SmoothQuant moves)."""
    return float(absmax.max() / absmax.median().clamp(min=1e-12))
