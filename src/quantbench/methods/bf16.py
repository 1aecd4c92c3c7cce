"""bf16: the model as people deploy it on CPUs with AVX512-BF16 / AMX (and on GPUs): every weight in
bfloat16, nothing quantized. A baseline next to fp32, so that "4-bit is X times faster" is also said
against it. The runtime decides how it runs (and names the CPU path: native bf16 or emulated)."""
import copy
from dataclasses import dataclass

import torch
from torch import nn

from ..config import MethodConfig, register_method
from ..formats import DenseFormat
from .base import Quantized, quantizes


@register_method("bf16", "every weight in bfloat16, nothing quantized (the baseline people deploy on "
                         "AVX512-BF16/AMX CPUs and on GPUs)")
@dataclass(frozen=True)
class BF16Config(MethodConfig):
    pass


@quantizes(BF16Config, shares_weights=True)  # the cast makes new tensors: the model's are never written
def cast_to_bf16(config, model, ctx) -> Quantized:
    kept = _float_constants(model)
    notes = [f"computed constants that no checkpoint holds keep their dtype, as from_pretrained(torch_dtype="
             f"torch.bfloat16) leaves them: {', '.join(kept[:3])}{' ...' if len(kept) > 3 else ''}"] if kept else []
    return Quantized(bfloat16_copy(model), DenseFormat(dtype="bfloat16"), notes=notes)


def bfloat16_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose floating parameters and persistent buffers are new bf16 tensors; ``model``
    is left as it is, and its fp32 tensors are never copied (the cast is the only new memory). Ties stay
    tied; non-persistent buffers (not in a state dict, e.g. rotary inv_freq) are copied as they are."""
    cast = {}
    for tensor in model.state_dict(keep_vars=True).values():
        if tensor.is_floating_point() and id(tensor) not in cast:
            new = tensor.detach().to(torch.bfloat16, copy=True)
            cast[id(tensor)] = nn.Parameter(new, requires_grad=False) if isinstance(tensor, nn.Parameter) else new
    return copy.deepcopy(model, memo=dict(cast)).eval()


def _float_constants(model: nn.Module) -> list[str]:
    """Names of the floating buffers that are not in the state dict (computed, not loaded)."""
    saved = {id(t) for t in model.state_dict(keep_vars=True).values()}
    return [name for name, b in model.named_buffers() if b.is_floating_point() and id(b) not in saved]
