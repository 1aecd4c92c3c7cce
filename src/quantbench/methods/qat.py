"""QAT: fake-quant fine-tuning that starts from the trained FP32 weights, freezes observers
and batch-norm statistics late in training, then converts to a real int8 model."""
from dataclasses import dataclass

import torch
from torch import nn

from ..config import MethodConfig, option, register_method
from ..errors import UserError
from ..quiet import quiet_torch_quantization
from ..tasks.train import fit
from .base import Context, Quantized, quantizes
from .int8_modules import (EMBEDDING_REASON, float_layers_note, keep_embeddings_float, require_int8_engine,
                           require_traceable, torch_int8_format)


@register_method("qat", "fake-quant fine-tuning from the FP32 weights, converted to int8")
@dataclass(frozen=True)
class QATConfig(MethodConfig):
    epochs: int = option(8, "fine-tuning epochs (the best validation epoch is kept)")
    lr: float = option(1e-4, "learning rate (small: we start from trained weights)")
    freeze_bn_epoch: int = option(3, "epoch from which batch-norm statistics are frozen")
    freeze_observers_epoch: int = option(5, "epoch from which quantization ranges are frozen")

    def __post_init__(self):
        super().__post_init__()
        if self.epochs < 1 or self.lr <= 0:
            raise UserError("qat: epochs must be >= 1 and lr > 0")


def prepare_qat_model(model: nn.Module, engine: str, example: torch.Tensor) -> nn.Module:
    """Insert fake-quant (and fuse) into the *trained* model (the caller's copy: it is changed), in training mode;
    embeddings stay float (see EMBEDDING_REASON)."""
    from torch.ao.quantization import get_default_qat_qconfig_mapping
    from torch.ao.quantization.quantize_fx import prepare_qat_fx

    with quiet_torch_quantization():
        return prepare_qat_fx(model.train(), keep_embeddings_float(get_default_qat_qconfig_mapping(engine)), (example,))


def _freeze_schedule(config: QATConfig):
    from torch.ao.nn.intrinsic.qat import freeze_bn_stats
    from torch.ao.quantization import disable_observer

    def before_epoch(model: nn.Module, epoch: int) -> None:
        if epoch == config.freeze_bn_epoch:
            model.apply(freeze_bn_stats)
        if epoch == config.freeze_observers_epoch:
            model.apply(disable_observer)

    return before_epoch


@quantizes(QATConfig)
def quantize_qat_int8(config: QATConfig, model: nn.Module, ctx: Context) -> Quantized:
    from torch.ao.quantization.quantize_fx import convert_fx

    engine = require_int8_engine()
    require_traceable(ctx, "QAT (FX graph mode)")
    prepared = prepare_qat_model(model, engine, ctx.task.example_input)
    with quiet_torch_quantization():
        epochs, val_acc = fit(prepared, ctx.task.splits, lr=config.lr, max_epochs=config.epochs,
                              patience=config.epochs, seed=ctx.seed, desc="qat fine-tune",
                              progress=ctx.progress, before_epoch=_freeze_schedule(config))
        q = convert_fx(prepared.eval())
    notes = [f"fine-tuned {epochs} epochs from the FP32 weights (best val acc {val_acc:.3f})"]
    notes += float_layers_note(q, "not convertible by FX quantization", embeddings_why=EMBEDDING_REASON)
    return Quantized(q, torch_int8_format(q, "static", per_channel=True), notes=notes)
