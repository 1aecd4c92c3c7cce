"""How a model changes: one handler per method config type, registered next to its config."""
import copy
import time
from dataclasses import dataclass, field, replace
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
    _last: tuple = field(default=(None, None, 0.0), repr=False)

    def quantize(self, config: MethodConfig, fp32: nn.Module) -> tuple["Quantized", float]:
        """Quantize as ``config`` says, once: every runtime that asks for the same config next
        gets the same weights and the same cost (only the latest config is kept in memory)."""
        reused = self._last[0] == config
        if not reused:
            model = copy.deepcopy(fp32).eval()  # copying is not quantizing: outside the clock
            start = time.perf_counter()
            quantized = run_handler(config, model, self)
            self._last = (config, quantized, time.perf_counter() - start)
        _, quantized, seconds = self._last
        notes = quantized.notes + (["same quantized weights as this method's row on the previous runtime "
                                    "(quantized once; prep time is that one run)"] if reused else [])
        return replace(quantized, notes=notes, details=dict(quantized.details)), seconds


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
    return run_handler(config, copy.deepcopy(fp32).eval(), ctx)


def run_handler(config: MethodConfig, model: nn.Module, ctx: Context) -> Quantized:
    """Quantize ``model`` (a copy the handler may change) with the handler of ``config``'s type; a
    method without one (it runs on another runtime only) is unsupported, with what it is."""
    handler = _HANDLERS.get(type(config))
    if handler is None:
        raise Unsupported(f"{config.name} on {ctx.runtime.name}: no path on this runtime ({config.summary})")
    return handler(config, model, ctx)
