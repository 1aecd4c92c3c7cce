"""Where a layer keeps its weight: [out, in] for nn.Linear, [in, out] for transformers' Conv1D (GPT-2)."""
from __future__ import annotations

import sys

import torch
from torch import nn


def get_weight_out_in(layer: nn.Module) -> torch.Tensor:
    """The layer's weight as [out_features, in_features] (a view for Conv1D, stored [in, out])."""
    return layer.weight.T if is_conv1d(layer) else layer.weight


def in_layer_layout(layer: nn.Module, w: torch.Tensor) -> torch.Tensor:
    """w [out, in] as the layer stores its weight ([in, out] for Conv1D), contiguous."""
    return w.T.contiguous() if is_conv1d(layer) else w


def set_weight_out_in(layer: nn.Module, w: torch.Tensor) -> None:
    """Give the layer w [out, in] as its weight, keeping its dtype, device and layout: a new tensor, never
    written into the old one (which may share its storage with the fp32 model, see ``methods.base``)."""
    target = get_weight_out_in(layer)
    if tuple(w.shape) != tuple(target.shape):
        raise ValueError(f"weight must be {tuple(target.shape)} [out, in], got {tuple(w.shape)}")
    value = in_layer_layout(layer, w.detach().to(target.dtype)).to(layer.weight.device)
    layer.weight = nn.Parameter(value, requires_grad=layer.weight.requires_grad)


def release_weight(layer: nn.Module) -> None:
    """Drop the layer's weight (a "meta" tensor of its shape and dtype takes its place): for layers whose
    weights live on as codes elsewhere (a low-bit format), see ``restore_weight``."""
    layer.weight = nn.Parameter(torch.empty_like(layer.weight, device="meta"), requires_grad=False)


def restore_weight(layer: nn.Module, w: torch.Tensor) -> None:
    """A released layer's weight back, w [out, in] (e.g. dequantized from its codes)."""
    layer.weight = nn.Parameter(in_layer_layout(layer, w.to(layer.weight.dtype)), requires_grad=False)


def is_conv1d(module: nn.Module) -> bool:
    conv1d = _conv1d_class()
    return conv1d is not None and isinstance(module, conv1d)


def _conv1d_class() -> type | None:
    """transformers' Conv1D if transformers is loaded (a model holding one has loaded it): importing it just to
    ask added ~14 MB to every low-bit load, transformers or not."""
    return getattr(sys.modules.get("transformers.pytorch_utils"), "Conv1D", None)
