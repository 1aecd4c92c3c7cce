"""How a model changes: one handler per method config type, registered next to its config."""
import copy
from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from ..config import MethodConfig
from ..runtimes import TorchCPU
from ..tasks import Task


class Unsupported(Exception):
    """The method cannot run here (missing kernel, layer type); the row says why."""


@dataclass
class Context:
    task: Task
    runtime: TorchCPU
    seed: int = 0
    progress: bool = True


@dataclass
class Quantized:
    """A quantized model in memory. ``packed``: layers stored as low-bit codes in the artifact
    (weight-only methods); ``format_config``: the quantization_config saved with them."""

    module: nn.Module
    kernel: str
    notes: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)
    packed: dict | None = None
    format_config: dict = field(default_factory=dict)


Handler = Callable[[MethodConfig, nn.Module, Context], Quantized]
_HANDLERS: dict[type, Handler] = {}


def quantizes(config_type: type):
    """Decorator: the handler that applies configs of ``config_type``."""

    def add(handler: Handler) -> Handler:
        _HANDLERS[config_type] = handler
        return handler

    return add


def apply_method(config: MethodConfig, fp32: nn.Module, ctx: Context) -> Quantized:
    """Quantize a copy of the FP32 model; the original is never modified."""
    return _HANDLERS[type(config)](config, copy.deepcopy(fp32).eval(), ctx)
