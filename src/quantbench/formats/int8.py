"""Int8 weights with int8 activations, quantized at run time (``dynamic``) or with calibrated ranges
(``static``). ``source`` says whose quantizer wrote the int8 model: ``torch.ao`` (a converted torch
module), ``onnxruntime`` (an ONNX QDQ / dynamic graph) or ``torchao`` (tensor subclasses on CUDA).
``layers``: per layer, the per-channel weight scales and, for static layers, the output's activation
scale and zero point (read from a torch.ao model; empty for graphs the runtime's own quantizer wrote)."""
from dataclasses import dataclass, field

import torch
from torch import nn

ACTIVATIONS = ("dynamic", "static")


@dataclass(frozen=True)
class Int8Layer:
    weight_scales: torch.Tensor
    weight_zero_points: torch.Tensor
    output_scale: float | None = None
    output_zero_point: int | None = None


@dataclass(frozen=True)
class Int8Format:
    activations: str
    per_channel: bool
    source: str = "torch.ao"
    layers: dict[str, Int8Layer] = field(default_factory=dict)

    def __post_init__(self):
        if self.activations not in ACTIVATIONS:
            raise ValueError(f"activations must be one of {ACTIVATIONS}, got {self.activations!r}")


def read_torch_int8_layers(module: nn.Module) -> dict[str, Int8Layer]:
    """The int8 grid of each quantized layer of a converted torch.ao model (fused ones such as
    LinearReLU included)."""
    layers = {}
    for name, m in module.named_modules():
        if not _is_torch_ao_quantized(m):
            continue
        w = m.weight()
        if w.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
            scales, zeros = w.q_per_channel_scales().float(), w.q_per_channel_zero_points()
        else:
            scales, zeros = torch.tensor([w.q_scale()]), torch.tensor([w.q_zero_point()])
        static = ".dynamic" not in type(m).__module__
        layers[name] = Int8Layer(scales, zeros, float(m.scale) if static else None,
                                 int(m.zero_point) if static else None)
    return layers


def _is_torch_ao_quantized(module: nn.Module) -> bool:
    path = type(module).__module__
    return path.startswith("torch.ao.nn") and ".quantized" in path and callable(getattr(module, "weight", None))
