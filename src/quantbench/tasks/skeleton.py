"""A model's architecture without its weights: parameters on PyTorch's "meta" device (no memory;
filled later with ``load_state_dict(..., assign=True)``), buffers real (non-persistent buffers,
such as position ids, are not in a state dict and must keep their values)."""
import contextlib

from torch import nn


@contextlib.contextmanager
def parameters_on_meta():
    """Inside: every parameter a module registers is moved to the meta device as it is registered
    (each is allocated on its own first, so the transient is one layer)."""
    register = nn.Module.register_parameter

    def register_on_meta(module, name, param):
        register(module, name, param)
        if param is not None and not param.is_meta:
            module._parameters[name] = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)

    nn.Module.register_parameter = register_on_meta
    try:
        yield
    finally:
        nn.Module.register_parameter = register


def build_skeleton(build_model) -> nn.Module:
    """``build_model()`` with its parameters on meta; a builder with its own ``skeleton()`` (the
    Hugging Face builder: from the config, not from the weights on disk) is asked for that."""
    own = getattr(build_model, "skeleton", None)
    if own is not None:
        return own()
    with parameters_on_meta():
        return build_model()
