"""Size of the saved artifact in bytes, what that means per weight, and the bytes of weights a
forward pass reads (what a memory-bandwidth bound divides)."""
from pathlib import Path

import torch
from torch import nn


def artifact_bytes(paths: list[Path]) -> int:
    """Bytes on disk of an artifact: its file and any files beside it that hold its tensors."""
    return sum(Path(p).stat().st_size for p in paths)


def count_parameters(fp32: nn.Module) -> int:
    """Parameters of the FP32 model (what bits per parameter divides by)."""
    return sum(p.numel() for p in fp32.parameters())


def bits_per_parameter(size_bytes: int, n_params: int) -> float:
    """Effective bits per parameter of the whole file (format overhead included)."""
    return 8.0 * size_bytes / n_params if n_params else float("nan")


def tensor_bytes(t: torch.Tensor | None) -> int:
    """Bytes a tensor holds; for tensor subclasses (torchao), the bytes of their inner tensors."""
    if t is None:
        return 0
    flatten = getattr(t, "__tensor_flatten__", None)
    if flatten is not None and type(t) not in (torch.Tensor, nn.Parameter):
        names, _ = flatten()
        return sum(tensor_bytes(getattr(t, name, None)) for name in names)
    return t.numel() * t.element_size()


def weight_bytes(module: nn.Module) -> int:
    """Bytes a forward reads from the weights as the loaded module holds them (packed codes, scales,
    dense weights): every parameter and buffer once, except a table only embeddings hold (a token
    reads one row of it; a head tied to the table reads all of it, so a tied table counts)."""
    looked_up_only: dict[int, bool] = {}
    for _, owner in module.named_modules(remove_duplicate=False):
        for t in owner._parameters.values():
            if t is not None:
                looked_up_only[id(t)] = looked_up_only.get(id(t), True) and isinstance(owner, nn.Embedding)
    tensors = {id(t): t for t in list(module.parameters()) + list(module.buffers()) if not looked_up_only.get(id(t))}
    return sum(tensor_bytes(t) for t in tensors.values())
