"""Methods: each module registers a config (what) and its handler (how)."""
from . import fp8, fp32, ptq_dynamic, ptq_static, qat  # noqa: F401  (registers the methods)
from .lowbit import api as _lowbit  # noqa: F401  (registers rtn and gptq)
from . import awq, hqq, smoothquant  # noqa: F401,E402
from .base import Context, Quantized, Unsupported, apply_method

__all__ = ["Context", "Quantized", "Unsupported", "apply_method"]
