"""Fold a per-input-channel scale into the op that produces a linear layer's input.

AWQ and SmoothQuant rewrite ``y = x @ W.T`` as ``(x / s) @ (W * s).T``. The ``x / s`` costs
nothing at inference when it is folded into the op that produces ``x``: the rows of a Linear,
or the affine weight and bias of a LayerNorm or BatchNorm1d. ``find_folds`` finds, with
``torch.fx``, the layers for which that is exact and touches nothing else: between producer
and layer only ops that commute with a positive per-channel scale (ReLU, Dropout, Identity),
and every value on the way used once (no residual add, no second consumer).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import fx, nn

# Ops f with f(x / s) == f(x) / s for s > 0 (positively homogeneous, elementwise).
_PASS_MODULES = (nn.ReLU, nn.Dropout, nn.Identity)
_PASS_FUNCTIONS = (F.relu, torch.relu, F.dropout)
_PASS_METHODS = ("relu",)

_KIND_LABELS = {"linear": "Linear rows", "layernorm": "LayerNorm affine", "batchnorm": "BatchNorm1d affine"}


@dataclass(frozen=True)
class Fold:
    """``layer``'s input is ``producer``'s output passed through ``path`` (ops or modules, in order)."""

    layer: str
    producer: str
    kind: str  # "linear" | "layernorm" | "batchnorm"
    path: tuple[str, ...] = field(default_factory=tuple)

    def describe(self) -> str:
        """E.g. ``"fc1 (Linear rows) through relu"``."""
        text = f"{self.producer} ({_KIND_LABELS[self.kind]})"
        return f"{text} through {', '.join(self.path)}" if self.path else text


def find_folds(model: nn.Module, layer_names: list[str]) -> dict[str, Fold]:
    """{layer name: Fold} for the named nn.Linear layers whose input scale can be folded exactly.

    Layers that are not nn.Linear, not foldable, or not found are left out. A model that
    ``torch.fx.symbolic_trace`` cannot trace (transformers models) gets the folds its family is known
    to allow (``FAMILY_FOLDS``), else none. BatchNorm1d is assumed to see 2-D [batch, channels] input
    (fx records no shapes).
    """
    try:
        graph = fx.symbolic_trace(model).graph
    except Exception:  # fx raises many kinds of errors on untraceable forwards
        return _family_folds(model, layer_names)
    modules = dict(model.named_modules())
    calls = _module_calls(graph)
    folds = {}
    for name in layer_names:
        layer = modules.get(name)
        if isinstance(layer, nn.Linear) and len(calls.get(name, ())) == 1:
            fold = _trace_back(name, layer, calls[name][0], modules, calls)
            if fold is not None and not _shares_parameters(model, layer, modules[fold.producer]):
                folds[name] = fold
    return folds


FAMILY_FOLDS: dict[tuple[str, ...], tuple[tuple[str, str, str], ...]] = {
    ("llama", "mistral", "qwen2", "qwen3"): (
        ("mlp.down_proj", "mlp.up_proj", "act(gate_proj) * up_proj"),
        ("self_attn.o_proj", "self_attn.v_proj", "attention (a weighted sum of v)"),
    ),
    ("opt",): (("self_attn.out_proj", "self_attn.v_proj", "attention (a weighted sum of v)"),),
    ("bert", "roberta"): (("attention.output.dense", "attention.self.value", "attention (a weighted sum of v)"),),
}
"""Per transformers ``model_type``: (layer suffix, producer suffix in the same block, what lies between)
for folds that fx cannot see but the family's forward makes exact: a positive per-channel scale on
the producer's output reaches the layer's input unchanged in shape and nothing else reads it. The
shapes must match (so grouped-query attention, where v is shared by several heads, is never folded)."""


def _family_folds(model: nn.Module, layer_names: list[str]) -> dict[str, Fold]:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    rules = next((r for types, r in FAMILY_FOLDS.items() if model_type in types), ())
    modules = dict(model.named_modules())
    folds = {}
    for name in layer_names:
        for layer_suffix, producer_suffix, between in rules:
            if not name.endswith("." + layer_suffix):
                continue
            producer = name[: -len(layer_suffix)] + producer_suffix
            layer, source = modules.get(name), modules.get(producer)
            if (isinstance(layer, nn.Linear) and isinstance(source, nn.Linear)
                    and source.out_features == layer.in_features and not _shares_parameters(model, layer, source)):
                folds[name] = Fold(layer=name, producer=producer, kind="linear", path=(between,))
    return folds


def fold_scale(model: nn.Module, fold: Fold, s: torch.Tensor) -> None:
    """Divide the output channels of ``fold.producer`` by ``s`` (positive, [channels]) in place."""
    producer = model.get_submodule(fold.producer)
    s = _check_scale(s, producer.weight.shape[0])
    with torch.no_grad():
        if fold.kind == "linear":
            _divide_(producer.weight, s[:, None])
        else:
            _divide_(producer.weight, s)
        if producer.bias is not None:
            _divide_(producer.bias, s)


def scale_weight_columns(layer: nn.Linear, s: torch.Tensor) -> None:
    """``W[:, j] *= s[j]`` in place (float32 math): the layer's half of the fold."""
    s = _check_scale(s, layer.weight.shape[1])
    with torch.no_grad():
        w = layer.weight
        w.copy_(w.float() * s.to(w.device)[None, :])


def _module_calls(graph: fx.Graph) -> dict[str, list[fx.Node]]:
    calls: dict[str, list[fx.Node]] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls.setdefault(node.target, []).append(node)
    return calls


def _trace_back(name, layer, node, modules, calls) -> Fold | None:
    """Walk from the layer's input through scale-commuting ops to a foldable producer, or None."""
    path = []
    current = _first_input(node)
    while isinstance(current, fx.Node) and len(current.users) == 1:
        step = _passthrough(current, modules)
        if step is None:
            kind = _producer_kind(current, modules, layer.in_features)
            if kind is None or len(calls[current.target]) != 1:
                return None
            return Fold(layer=name, producer=current.target, kind=kind, path=tuple(reversed(path)))
        path.append(step)
        current = _first_input(current)
    return None


def _first_input(node: fx.Node):
    return node.args[0] if node.args else node.kwargs.get("input")


def _passthrough(node: fx.Node, modules) -> str | None:
    """The op's name if it commutes with a positive per-channel scale and has one tensor input."""
    others = [*node.args[1:], *node.kwargs.values()]
    if any(isinstance(arg, fx.Node) for arg in others):
        return None
    if node.op == "call_module" and isinstance(modules[node.target], _PASS_MODULES):
        return node.target
    if node.op == "call_function" and node.target in _PASS_FUNCTIONS:
        return node.name
    if node.op == "call_method" and node.target in _PASS_METHODS:
        return node.name
    return None


def _producer_kind(node: fx.Node, modules, channels: int) -> str | None:
    if node.op != "call_module":
        return None
    module = modules[node.target]
    if isinstance(module, nn.Linear) and module.out_features == channels:
        return "linear"
    if (isinstance(module, nn.LayerNorm) and module.weight is not None
            and tuple(module.normalized_shape) == (channels,)):
        return "layernorm"
    if isinstance(module, nn.BatchNorm1d) and module.affine and module.num_features == channels:
        return "batchnorm"
    return None


def _shares_parameters(model: nn.Module, *owners: nn.Module) -> bool:
    """True when a parameter of one of ``owners`` is registered elsewhere too (tied weights)."""
    own = {id(p) for owner in owners for p in owner.parameters()}
    return sum(id(p) in own for _, p in model.named_parameters(remove_duplicate=False)) > len(own)


def _check_scale(s: torch.Tensor, channels: int) -> torch.Tensor:
    s = torch.as_tensor(s).detach().float()
    if s.shape != (channels,):
        raise ValueError(f"scale has shape {tuple(s.shape)}, expected ({channels},)")
    if not bool(torch.isfinite(s).all() and (s > 0).all()):
        raise ValueError("scale must be finite and positive")
    return s


def _divide_(tensor: torch.Tensor, s: torch.Tensor) -> None:
    tensor.copy_(tensor.float() / s.to(tensor.device))
