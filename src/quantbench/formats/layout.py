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
    """Write w [out, in] into the layer's weight, keeping its dtype, device and layout."""
    target = get_weight_out_in(layer)
    if tuple(w.shape) != tuple(target.shape):
        raise ValueError(f"weight must be {tuple(target.shape)} [out, in], got {tuple(w.shape)}")
    with torch.no_grad():
        target.copy_(w)


def is_conv1d(module: nn.Module) -> bool:
    conv1d = _conv1d_class()
    return conv1d is not None and isinstance(module, conv1d)


def _conv1d_class() -> type | None:
    """transformers' Conv1D if transformers is loaded (a model holding one has loaded it): importing it just to
    ask added ~14 MB to every low-bit load, transformers or not."""
    return getattr(sys.modules.get("transformers.pytorch_utils"), "Conv1D", None)
