"""Low-bit weight quantization math (RTN, GPTQ) and GPTQ checkpoint packing; torch only."""

from .gptq import GPTQCholeskyError, GPTQInfo, accumulate_hessian, gptq_quantize
from .grid import LowBitWeight, dequantize_codes, quantize_codes, rtn_quantize, scale_zero_minmax
from ...formats.gptq_packing import from_gptq_tensors, pack_along_rows, to_gptq_tensors, unpack_rows

__all__ = [
    "GPTQCholeskyError",
    "GPTQInfo",
    "LowBitWeight",
    "accumulate_hessian",
    "dequantize_codes",
    "from_gptq_tensors",
    "gptq_quantize",
    "pack_along_rows",
    "quantize_codes",
    "rtn_quantize",
    "scale_zero_minmax",
    "to_gptq_tensors",
    "unpack_rows",
]
