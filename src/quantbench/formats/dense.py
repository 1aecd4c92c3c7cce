"""A model in floating point, unchanged by quantization: the baseline's format."""
from dataclasses import dataclass


@dataclass(frozen=True)
class DenseFormat:
    dtype: str = "float32"


def is_dense_bf16(fmt) -> bool:
    """Whether ``fmt`` (any format) is a dense bfloat16 model (the ``bf16`` method's)."""
    return isinstance(fmt, DenseFormat) and fmt.dtype == "bfloat16"
