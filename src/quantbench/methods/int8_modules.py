"""Shared plumbing of the torch.ao int8 methods: engine check, their format and what stayed float."""
from torch import nn

from ..formats import Int8Format
from ..formats.int8 import read_torch_int8_layers
from ..kernels.int8_engine import activate_int8_engine, choose_int8_engine, int8_engine_unavailable_reason
from .base import Context, Unsupported

_FLOAT_COMPUTE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def require_int8_engine() -> str:
    """The torch.ao int8 engine of this machine, activated; Unsupported when there is none."""
    engine = choose_int8_engine()
    reason = int8_engine_unavailable_reason(engine)
    if reason:
        raise Unsupported(reason)
    activate_int8_engine(engine)
    return engine


def torch_int8_format(module: nn.Module, activations: str, per_channel: bool) -> Int8Format:
    """The format of a converted torch.ao int8 model, its layers' grids read from it."""
    return Int8Format(activations, per_channel, "torch.ao", read_torch_int8_layers(module))


def float_layers_note(module: nn.Module, why: str) -> list[str]:
    """A note naming the weight layers that still compute in float after conversion."""
    left = [f"{name} ({type(m).__name__})" for name, m in module.named_modules() if type(m) in _FLOAT_COMPUTE]
    return [f"{len(left)} layer(s) stay fp32, {why}: {', '.join(left)}"] if left else []


def require_traceable(ctx: Context, what: str) -> None:
    if not ctx.task.traceable:
        raise Unsupported(f"{what} needs a model with one tensor input; task '{ctx.task.name}' has none")
