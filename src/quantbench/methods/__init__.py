"""Methods: each package registers its config (what) and its handlers (how), producing formats.

The registry: importing a method's package here is the one line that adds it everywhere (CLI, sweeps,
``quantbench methods``, the test matrix)."""
# one line per method package, in the order `quantbench methods` lists them
from . import fp32  # noqa: F401,I001
from . import bf16  # noqa: F401
from . import ptq_dynamic  # noqa: F401
from . import ptq_static  # noqa: F401
from . import qat  # noqa: F401
from .lowbit import api as _lowbit  # noqa: F401  (rtn and gptq)
from . import awq  # noqa: F401
from . import hqq  # noqa: F401
from . import smoothquant  # noqa: F401
from . import fp8  # noqa: F401
from .base import Context, Quantized, Unsupported, apply_method

__all__ = ["Context", "Quantized", "Unsupported", "apply_method"]
