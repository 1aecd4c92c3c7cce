"""A model's architecture without its weights: parameters on PyTorch's "meta" device (no memory),
buffers real (non-persistent buffers, such as position ids, are not in a state dict and must keep
their values); and ``place_state``, which fills one with an artifact's tensors."""
import contextlib

import torch
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


def place_state(model: nn.Module, state: dict[str, torch.Tensor], device: torch.device | str = "cpu",
                dtype: torch.dtype | None = None, skip: frozenset[str] | set[str] = frozenset()) -> None:
    """Put ``state`` into ``model`` (a skeleton on "meta", or a real model) on ``device``, in place.

    Plain floating tensors are cast to ``dtype`` when given (tensor subclasses, e.g. torchao's, stay
    as they are). A key the state lacks whose tensor is tied to a placed one (the same object, as
    tied embeddings are) gets that one, so ties stay. Non-persistent buffers (not in a state dict)
    move as ``model.to(device, dtype)`` would move them. A state key the model lacks, a tensor of
    another shape than the model's, or a parameter or persistent buffer the state lacks, is an
    error, except the keys of the modules named in ``skip`` (they are about to be replaced)."""
    device = torch.device(device)
    persistent = model.state_dict(keep_vars=True)
    unknown = [key for key in state if key not in persistent]
    if unknown:
        raise ValueError(f"the artifact holds {', '.join(unknown[:5])}, which the model does not have")
    placed = {}
    for key, value in state.items():
        old = persistent[key]
        if tuple(value.shape) != tuple(old.shape):
            raise ValueError(f"the artifact's {key} is {tuple(value.shape)}, the model's is {tuple(old.shape)}")
        placed[id(old)] = set_tensor(model, key, _placed(value, device, dtype, isinstance(old, nn.Parameter)))
    missing = []
    for key, old in persistent.items():
        if key in state or key.rpartition(".")[0] in skip:
            continue
        if id(old) in placed:
            set_tensor(model, key, placed[id(old)])
        else:
            missing.append(key)
    if missing:
        raise ValueError(f"the artifact lacks tensors of the model: {', '.join(missing[:5])}")
    for key, buffer in model.named_buffers():
        if key not in persistent and buffer is not None:
            if buffer.is_meta:
                raise ValueError(f"the model's buffer {key} is on 'meta' and no artifact holds it (it is not in "
                                 f"a state dict): build the skeleton with build_skeleton, which keeps buffers real")
            set_tensor(model, key, _placed(buffer, device, dtype, False))


def replace_module(model: nn.Module, name: str, module: nn.Module) -> None:
    """Put ``module`` in the place of ``model``'s submodule ``name``."""
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def _placed(tensor: torch.Tensor, device: torch.device, dtype: torch.dtype | None, parameter: bool) -> torch.Tensor:
    tensor = tensor.detach()
    if tensor.device != device:
        tensor = tensor.to(device)
    if dtype is not None and type(tensor) is torch.Tensor and tensor.is_floating_point():
        tensor = tensor.to(dtype)
    return nn.Parameter(tensor, requires_grad=False) if parameter else tensor


def set_tensor(model: nn.Module, key: str, value: torch.Tensor) -> torch.Tensor:
    owner, _, attr = key.rpartition(".")
    module = model.get_submodule(owner)
    (module._parameters if attr in module._parameters else module._buffers)[attr] = value
    return value
