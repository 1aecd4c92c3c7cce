"""A model in floating point, unchanged by quantization: the baseline's format."""
from dataclasses import dataclass


@dataclass(frozen=True)
class DenseFormat:
    dtype: str = "float32"
