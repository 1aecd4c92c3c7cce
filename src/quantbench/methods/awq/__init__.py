"""AWQ (Lin et al., MLSys 2024): per-input-channel scales searched on calibration activations
(``core.py``), then the same low-bit grid and format as rtn/gptq. A layer's scale is folded into the
op that produces its input where the graph allows it exactly (``calibration/fold.py``); elsewhere it
stays in the format and the runtimes divide the layer's input by it before the kernel."""
from dataclasses import dataclass, replace
from functools import partial

from torch import nn

from ...config import option, register_method
from ...errors import UserError
from ...formats.layout import set_weight_out_in
from ...formats.lowbit_file import lowbit_fingerprint
from ..base import Quantized, quantizes
from ..calibration.fold import find_folds, fold_scale
from ..lowbit.api import LowBitConfig, quantize_weight_only
from .core import awq_quantize


@register_method("awq", "weight-only AWQ: activation-aware per-channel scales, clipping search, then the rtn grid")
@dataclass(frozen=True)
class AWQConfig(LowBitConfig):
    calib_samples: int = option(128, "calibration samples (rows, images or text segments) from the training data")
    n_grid: int = option(20, "exponents alpha tried for s = mean|x|^alpha, in [0, 1)")
    clip: bool = option(True, "search a clipping ratio per group (the reference's auto-clip)")
    fold: bool = option(True, "fold the scales into the previous op where the graph allows (else at run time)")

    def __post_init__(self):
        super().__post_init__()
        if self.calib_samples < 1 or self.n_grid < 1:
            raise UserError("awq: need calib_samples >= 1 and n_grid >= 1")


def _awq_layer(config: AWQConfig, name: str, w, hessian, mean_abs) -> tuple:
    return awq_quantize(w, hessian, mean_abs, config.bits, config.group_size, config.sym, config.clip, config.n_grid)


@quantizes(AWQConfig)
def quantize_awq(config: AWQConfig, model: nn.Module, ctx) -> Quantized:
    quantized = quantize_weight_only(config, model, ctx, partial(_awq_layer, config), needs_hessian=True,
                                     mean_abs=True, needs_weights_after=True)
    layers = quantized.format.layers
    folded = fold_input_scales(model, layers) if config.fold else {}
    carried = [name for name, lw in layers.items() if lw.input_scale is not None]
    infos = quantized.details["layers"].values()
    quantized.details |= {"lowbit_sha256": lowbit_fingerprint(layers), "awq_folded": folded,
                          "awq_scaled_at_run_time": carried}
    alphas = [i["alpha"] for i in infos]
    quantized.notes.append(
        f"AWQ: per-input-channel scales s = mean|x|^alpha (alpha {min(alphas):.2f}-{max(alphas):.2f} over "
        f"{len(alphas)} layers, searched on a grid of {config.n_grid})"
        + (f", clipping ratio {sum(i['clip_ratio_mean'] for i in infos) / len(alphas):.3f} on average" if config.clip
           else ", no clipping search"))
    if folded:
        quantized.notes.append("scales folded into the previous op (nothing at run time): "
                               + "; ".join(f"{layer} <- {how}" for layer, how in folded.items()))
    if carried:
        quantized.notes.append(f"scales applied at run time (the input divided by s before the kernel; no previous op "
                               f"takes them exactly{'' if config.fold else ', fold=false'}): {', '.join(carried)}")
    return quantized


def fold_input_scales(model: nn.Module, layers: dict) -> dict[str, str]:
    """Fold each quantized layer's input scale into the op producing its input, where that is exact:
    ``layers`` (name -> LowBitWeight, changed in place) loses those input scales; a quantized producer
    gets its rows' grid scales divided (its codes unchanged), another producer its weight or affine.
    The model's weights follow. Returns {layer: how it was folded}."""
    scaled = [name for name, lw in layers.items() if lw.input_scale is not None]
    folded = {}
    for name, fold in find_folds(model, scaled).items():
        s = layers[name].input_scale
        fold_scale(model, fold, s)  # the producer's bias or affine (and its dense weight rows)
        if fold.producer in layers:
            producer = layers[fold.producer]
            layers[fold.producer] = replace(producer, scales=(producer.scales / s[:, None]).half().float())
            set_weight_out_in(model.get_submodule(fold.producer), layers[fold.producer].dequantize())
        layers[name] = replace(layers[name], input_scale=None)
        set_weight_out_in(model.get_submodule(name), layers[name].dequantize())
        folded[name] = fold.describe()
    return folded
