"""Shared plumbing of the torch int8 methods: engine check and what stayed float."""
from torch import nn

from .base import Context, Unsupported

_FLOAT_COMPUTE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def require_int8_engine(ctx: Context) -> str:
    reason = ctx.runtime.int8_unavailable_reason()
    if reason:
        raise Unsupported(reason)
    ctx.runtime.activate()
    return ctx.runtime.engine


def float_layers_note(module: nn.Module, why: str) -> list[str]:
    """A note naming the weight layers that still compute in float after conversion."""
    left = [f"{name} ({type(m).__name__})" for name, m in module.named_modules() if type(m) in _FLOAT_COMPUTE]
    return [f"{len(left)} layer(s) stay fp32, {why}: {', '.join(left)}"] if left else []


def require_traceable(ctx: Context, what: str) -> None:
    if not ctx.task.traceable:
        raise Unsupported(f"{what} needs a model with one tensor input; task '{ctx.task.name}' has none")
