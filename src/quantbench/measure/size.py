"""Size of the saved artifact in bytes, and what that means per weight."""
from pathlib import Path

from torch import nn

_WEIGHT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def artifact_bytes(path: Path) -> int:
    return Path(path).stat().st_size


def count_weights(fp32: nn.Module) -> tuple[int, int]:
    """(all parameters, weights of linear/conv layers) of the FP32 model."""
    total = sum(p.numel() for p in fp32.parameters())
    weights = sum(m.weight.numel() for m in fp32.modules() if isinstance(m, _WEIGHT_LAYERS))
    return total, weights


def bits_per_parameter(size_bytes: int, n_params: int) -> float:
    """Effective bits per parameter of the whole file (format overhead included)."""
    return 8.0 * size_bytes / n_params if n_params else float("nan")
