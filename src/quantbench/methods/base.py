"""How a model changes: handlers registered per (method config type, runtime), producing formats.

A handler registered for a config type alone is the method's own (pure torch) quantizer; one
registered for (config type, runtime) is that runtime's own quantizer, which the method needs there
(ONNX Runtime's static calibration, torchao's int8/fp8 on CUDA) and which lives in the method's
package. Either returns a ``Quantized``: the model and its format, plain data that runtimes execute.
No method imports a runtime: what a runtime-native handler needs (the runtime's name, its device
target, where to write) comes in the ``Context``.
"""
import copy
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..config import MethodConfig
from ..errors import Unsupported  # noqa: F401  (raised by handlers; imported from here by them)
from ..formats import Format
from ..tasks import Task


@dataclass
class Quantized:
    """A quantized model and its format. ``module``: the model in torch (layers of a low-bit format
    hold their dequantized weights), None when a runtime-native handler wrote ``graph`` (the runtime's
    own artifact, e.g. an ONNX file) instead. ``kernel``: set by runtime-native handlers, whose
    quantizer chooses the kernel; other rows' kernels are named by the runtime from the format.
    ``seconds``: the quantizer's own time when the handler measures it (an export excluded)."""

    module: nn.Module | None
    format: Format
    notes: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)
    graph: Path | None = None
    kernel: str = ""
    seconds: float | None = None


@dataclass
class Context:
    """What handlers get besides the config and the model: the task, and for the row at hand the
    runtime's name, its device target (None on CPU runtimes) and the artifact stem a runtime-native
    handler writes to. ``_cache`` keeps the latest quantization, shared by every row's context."""

    task: Task
    seed: int = 0
    progress: bool = True
    runtime: str = "torch-cpu"
    target: Any = None
    stem: Path | None = None
    release_dense: bool = False
    """Handlers may free the dense weights of layers their format holds otherwise (low-bit codes): the
    pipeline sets it, whose rows are measured on the reloaded artifact (``apply_method`` callers keep
    a model whose every layer has its dense weight)."""
    _cache: dict = field(default_factory=dict, repr=False)

    def for_row(self, runtime, stem: Path | None = None) -> "Context":
        """This context for a row on ``runtime`` (a runtime object) whose artifact goes to ``stem``."""
        target = runtime.target() if callable(getattr(runtime, "target", None)) else None
        return replace(self, runtime=runtime.name, target=target, stem=stem)

    def quantize(self, config: MethodConfig, fp32: nn.Module) -> tuple[Quantized, float]:
        """Quantize a copy of ``fp32`` as ``config`` says, with the handler for this context's runtime.
        Rows whose runtimes share a handler (the method's own) get the same weights and the same cost:
        quantized once (only the latest quantization is kept in memory). A handler marked ``per_runtime``
        (it hands on to each runtime's own handler of a base method) runs once per runtime."""
        handler = find_handler(config, self.runtime)
        key = (config, handler, self.runtime if getattr(handler, "per_runtime", False) else None)
        reused = self._cache.get("key") == key
        if not reused:
            self._cache.clear()
            model = _handler_copy(handler, fp32)  # copying is not quantizing: outside the clock
            start = time.perf_counter()
            quantized = handler(config, model, self)
            seconds = time.perf_counter() - start if quantized.seconds is None else quantized.seconds
            self._cache.update(key=key, quantized=quantized, seconds=seconds)
        quantized, seconds = self._cache["quantized"], self._cache["seconds"]
        notes = quantized.notes + (["same quantized weights as this method's row on the previous runtime "
                                    "(quantized once; prep time is that one run)"] if reused else [])
        return replace(quantized, notes=notes, details=dict(quantized.details)), seconds

    def forget(self) -> None:
        """Drop the kept quantization (its model and format), e.g. once its last row has written its artifact."""
        self._cache.clear()

    def quantize_with(self, config: MethodConfig, model: nn.Module) -> Quantized:
        """``model`` (already a copy) quantized by ``config``'s handler for this runtime: how a method that
        wraps a base method (SmoothQuant over int8) hands its changed model on."""
        return find_handler(config, self.runtime)(config, model, self)


Handler = Callable[[MethodConfig, nn.Module, Context], Quantized]
_HANDLERS: dict[tuple[type, str | None], Handler] = {}


def quantizes(config_type: type, runtime: str | None = None, shares_weights: bool = False):
    """Decorator: the handler that applies configs of ``config_type`` (on ``runtime`` only, when given).
    ``shares_weights``: the handler never writes into the model's tensors in place (it may replace them:
    ``module.to(dtype)``, ``p.data = ...``, a new ``layer.weight``), so it gets a copy of the fp32 model's
    modules and Parameter objects over the same storage, not a copy of every weight."""

    def add(handler: Handler) -> Handler:
        key = (config_type, runtime)
        if key in _HANDLERS:
            raise ValueError(f"{config_type.__name__} has two handlers for runtime {runtime}")
        handler.shares_weights = shares_weights or getattr(handler, "shares_weights", False)
        _HANDLERS[key] = handler
        return handler

    return add


def find_handler(config: MethodConfig, runtime: str) -> Handler:
    """The handler of ``config`` on ``runtime``: the runtime's own, else the method's; a method with
    neither (it runs on another runtime only) is unsupported, with what it is."""
    handler = _HANDLERS.get((type(config), runtime)) or _HANDLERS.get((type(config), None))
    if handler is None:
        raise Unsupported(f"{config.name} on {runtime}: no path on this runtime ({config.summary})")
    return handler


def apply_method(config: MethodConfig, fp32: nn.Module, ctx: Context) -> Quantized:
    """Quantize a copy of the FP32 model (the original is never modified), uncached."""
    return ctx.quantize_with(config, _handler_copy(find_handler(config, ctx.runtime), fp32))


def _handler_copy(handler: Handler, fp32: nn.Module) -> nn.Module:
    """What ``handler`` may change: ``fp32`` copied whole, or for a handler that ``shares_weights`` its
    modules copied with new Parameter/buffer objects over fp32's storage (no weight bytes copied)."""
    if not getattr(handler, "shares_weights", False):
        return copy.deepcopy(fp32).eval()
    memo = {id(t): _same_storage(t) for t in [*fp32.parameters(), *fp32.buffers()]}
    return copy.deepcopy(fp32, memo).eval()


def _same_storage(tensor: torch.Tensor) -> torch.Tensor:
    view = tensor.detach()  # a new tensor object over the same storage
    return nn.Parameter(view, requires_grad=tensor.requires_grad) if isinstance(tensor, nn.Parameter) else view
