"""Weight-only low-bit methods: RTN and GPTQ share one storage format (GPTQ checkpoint
tensors) and one execution path, so comparing them compares the algorithms only."""
from dataclasses import dataclass, replace
from functools import partial

import torch
from torch import nn

from ...config import MethodConfig, option, register_method
from ...errors import UserError
from ...formats import LowBitFormat
from ...tasks.base import batch_rows
from ..base import Context, Quantized, Unsupported, quantizes
from ...formats.lowbit_file import lowbit_fingerprint
from .driver import quantize_model
from .gptq import gptq_quantize
from .grid import LowBitWeight, rtn_quantize
from .layers import find_quantizable_layers

BITS = (2, 3, 4, 8)


@dataclass(frozen=True)
class WeightOnlyConfig(MethodConfig):
    """Options every weight-only low-bit method has: the grid's bits and groups, and what it skips."""

    bits: int = option(4, "bits per weight", choices=BITS)
    group_size: int = option(128, "input columns sharing one scale/zero (-1: one per output row)")
    skip: str = option("", "extra layers kept in fp32: fnmatch patterns separated by ';' (the head is always kept)")

    def __post_init__(self):
        super().__post_init__()
        if self.group_size != -1 and self.group_size < 1:
            raise UserError(f"{self.name}: group_size must be -1 or >= 1, got {self.group_size}")

    def skip_patterns(self) -> tuple[str, ...]:
        return tuple(p.strip() for p in self.skip.split(";") if p.strip())

    def format_config(self) -> dict:
        """The quantization_config stored with the artifact (transformers' GPTQ keys)."""
        return {"quant_method": self.name, "bits": self.bits, "group_size": self.group_size,
                "sym": getattr(self, "sym", False),
                "desc_act": getattr(self, "act_order", False), "static_groups": getattr(self, "static_groups", False),
                "true_sequential": getattr(self, "true_sequential", False)}


@dataclass(frozen=True)
class LowBitConfig(WeightOnlyConfig):
    sym: bool = option(False, "symmetric grid (zero point fixed at the middle)")


@register_method("rtn", "weight-only round-to-nearest, 2/3/4/8-bit, per row or per group")
@dataclass(frozen=True)
class RTNConfig(LowBitConfig):
    pass


@register_method("gptq", "weight-only GPTQ: Hessian-based error compensation, groups, act-order")
@dataclass(frozen=True)
class GPTQConfig(LowBitConfig):
    act_order: bool = option(False, "quantize columns in order of decreasing Hessian diagonal (desc_act)")
    static_groups: bool = option(False, "group grids from the original weights (needed with act_order for fast kernels)")
    damp: float = option(0.01, "damping as a fraction of mean(diag H); raised automatically if Cholesky fails")
    block_size: int = option(128, "lazy-batch block size (changes speed, not the result)")
    calib_samples: int = option(128, "calibration samples (rows, images or text segments) from the training data")
    true_sequential: bool = option(False, "inside transformer blocks: q/k/v, then out proj, then MLP up, then down")

    def __post_init__(self):
        super().__post_init__()
        if not 0 < self.damp < 10 or self.block_size < 1 or self.calib_samples < 1:
            raise UserError("gptq: need 0 < damp < 10, block_size >= 1 and calib_samples >= 1")


def _rtn_layer(config: LowBitConfig, name: str, w: torch.Tensor, hessian) -> tuple[LowBitWeight, dict]:
    return _fp16_scales(rtn_quantize(w, config.bits, config.group_size, config.sym)), {}


def _gptq_layer(config: GPTQConfig, name: str, w: torch.Tensor, hessian: torch.Tensor) -> tuple[LowBitWeight, dict]:
    lw, info = gptq_quantize(w, hessian, config.bits, config.group_size, config.sym, config.act_order,
                             config.static_groups, config.damp, config.block_size)
    return _fp16_scales(lw), {"damp_used": info.damp_used, "dead_columns": info.dead_columns,
                              "cholesky_retries": info.cholesky_retries}


def _fp16_scales(lw: LowBitWeight) -> LowBitWeight:
    """The artifact stores fp16 scales; use them in memory too so reloading is bit-identical."""
    return replace(lw, scales=lw.scales.half().float())


@quantizes(RTNConfig, shares_weights=True)
@quantizes(GPTQConfig, shares_weights=True)
def quantize_lowbit(config: LowBitConfig, model: nn.Module, ctx: Context) -> Quantized:
    is_gptq = isinstance(config, GPTQConfig)
    layer_fn = partial(_gptq_layer if is_gptq else _rtn_layer, config)
    quantized = quantize_weight_only(config, model, ctx, layer_fn, needs_hessian=is_gptq)
    if is_gptq:
        done = quantized.details["layers"]
        quantized.details["max_damp_used"] = max((i["damp_used"] for i in done.values()), default=config.damp)
        raised = [name for name, i in done.items() if i["damp_used"] > config.damp]
        quantized.notes += [f"Cholesky failed at damp={config.damp} for {', '.join(raised)}: damping raised up to "
                            f"{quantized.details['max_damp_used']:g}"] if raised else []
    return quantized


def quantize_weight_only(config: WeightOnlyConfig, model: nn.Module, ctx: Context, layer_fn, needs_hessian: bool,
                         mean_abs: bool = False, needs_weights_after: bool = False) -> Quantized:
    """The low-bit format of ``model`` with each selected layer quantized by ``layer_fn`` (see
    ``driver.quantize_model``; calibration inputs from the task when it needs a Hessian): what every
    weight-only method (rtn, gptq, awq, hqq) shares, so that they differ in the per-layer math only.
    In a context that ``release_dense``, the quantized layers' dense weights are released as the driver
    goes (the codes are in the format), unless the method ``needs_weights_after`` (AWQ folds into them)."""
    selection = find_quantizable_layers(model, skip=config.skip_patterns())
    if not selection.layers:
        raise Unsupported(f"{config.name}: no nn.Linear/Conv1D layer to quantize (skipped: "
                          f"{', '.join(n for n, _ in selection.skipped) or 'none'})")
    calib = ctx.task.calibration_inputs(config.calib_samples) if needs_hessian else []
    with torch.no_grad():
        done = quantize_model(model, calib, layer_fn, needs_hessian=needs_hessian, layers=selection.layers,
                              true_sequential=getattr(config, "true_sequential", False), progress=ctx.progress,
                              label=config.name, mean_abs=mean_abs,
                              release=ctx.release_dense and not needs_weights_after)
    packed = {name: lw for name, (lw, _) in done.items()}
    notes = [f"{len(packed)} layer(s) quantized to {config.bits}-bit"
             + (f" on {sum(batch_rows(b) for b in calib)} calibration samples" if needs_hessian else "")]
    notes += skipped_notes(selection.skipped)
    details = {"layers": {name: info for name, (_, info) in done.items() if info},
               "lowbit_sha256": lowbit_fingerprint(packed)}
    return Quantized(model, LowBitFormat(packed, config.format_config()), notes=notes, details=details)


def skipped_notes(skipped: list[tuple[str, str]]) -> list[str]:
    """One note per reason: 'kept fp32 (reason): a, b, c'."""
    by_reason: dict[str, list[str]] = {}
    for name, reason in skipped:
        by_reason.setdefault(reason, []).append(name)
    return [f"kept fp32 ({reason}): {', '.join(names)}" for reason, names in by_reason.items()]
