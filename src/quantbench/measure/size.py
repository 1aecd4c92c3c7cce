"""Size of the saved artifact in bytes, and what that means per weight."""
from pathlib import Path

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
