"""quantbench: quantize a PyTorch model with many methods and compare them honestly."""
from .api import compare
from .results import Results, Row
from .spec import CompareSpec
from .tasks import UserTask

__all__ = ["CompareSpec", "Results", "Row", "UserTask", "compare"]
__version__ = "0.1.0"
