"""Which layers of a model weight-only low-bit methods quantize, and their weights as [out, in].

Quantizable: ``nn.Linear`` and transformers' ``Conv1D`` (GPT-2, weight stored [in, out]).
Skipped by default: the output head (``lm_head``, ``classifier``, ``score``, ``qa_outputs``;
for a plain model without transformer blocks, the last quantizable layer in module order),
layers whose weight is tied to another module (writing it back would change both), and
other weighted layers (Conv2d, Embedding, ...), which are reported with the reason.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import NamedTuple

import torch
from torch import nn

from ...formats.layout import is_conv1d
from .adapters import find_blocks

HEAD_NAMES = ("lm_head", "classifier", "score", "qa_outputs")


class LayerSelection(NamedTuple):
    """The layers to quantize (name -> module, module order) and (name, reason) of the skipped."""

    layers: dict[str, nn.Module]
    skipped: list[tuple[str, str]]


def find_quantizable_layers(
    model: nn.Module,
    skip: tuple[str, ...] = (),
    only: tuple[str, ...] | None = None,
    skip_head: bool = True,
) -> LayerSelection:
    """Select the layers to quantize; ``skip`` / ``only`` are fnmatch patterns on module names."""
    candidates = [(name, m) for name, m in model.named_modules() if is_quantizable(m)]
    heads = _head_names(model, [name for name, _ in candidates]) if skip_head else set()
    owners = _weight_owners(model)
    layers: dict[str, nn.Module] = {}
    skipped: list[tuple[str, str]] = []
    for name, module in model.named_modules():
        reason = _skip_reason(name, module, heads, owners, skip, only)
        if reason is None and is_quantizable(module):
            layers[name] = module
        elif reason is not None:
            skipped.append((name, reason))
    return LayerSelection(layers, skipped)


def is_quantizable(module: nn.Module) -> bool:
    """True for nn.Linear and transformers' Conv1D."""
    return isinstance(module, nn.Linear) or is_conv1d(module)


def _skip_reason(name, module, heads, owners, skip, only) -> str | None:
    """Why ``module`` is not quantized, or None (also None for modules without a 2-D weight)."""
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.dim() < 2:
        return None
    if not is_quantizable(module):
        return f"type not supported by weight-only low-bit ({type(module).__name__})"
    if name in heads:
        return "output head (kept in full precision by default)"
    pattern = next((p for p in skip if fnmatchcase(name, p)), None)
    if pattern is not None:
        return f"matches skip pattern {pattern!r}"
    if only is not None and not any(fnmatchcase(name, p) for p in only):
        return "matches no 'only' pattern"
    others = [owner for owner in owners[id(weight)] if owner != name]
    if others:
        return f"weight tied to {', '.join(map(repr, others))}"
    return None


def _head_names(model: nn.Module, names: list[str]) -> set[str]:
    """Named heads; for a plain model without named heads, the last quantizable layer."""
    heads = {name for name in names if name.rsplit(".", 1)[-1] in HEAD_NAMES}
    if not heads and names and find_blocks(model) is None:
        heads = {names[-1]}
    return heads


def _weight_owners(model: nn.Module) -> dict[int, list[str]]:
    """id(weight) -> every module (in module order) holding that parameter: a weight held by several
    is not quantized by any of them (the file stores a shared tensor once, and a kernel module
    replacing one holder would leave the others without it)."""
    owners: dict[int, list[str]] = {}
    for name, module in model.named_modules(remove_duplicate=False):
        weight = getattr(module, "weight", None)
        if isinstance(weight, torch.Tensor) and name not in owners.setdefault(id(weight), []):
            owners[id(weight)].append(name)
    return owners
