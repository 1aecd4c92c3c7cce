"""Quantized weights as plain data: the contract between methods and runtimes.

A method's handler returns a ``Quantized`` (``methods/base.py``) whose ``format`` is one of these;
a runtime decides from the format alone whether it can run it (``supports``) and how (``realize``),
and never asks which method made it. ``LowBitFormat`` lives in ``lowbit.py`` with its weights.
"""
from .dense import DenseFormat
from .float8 import Float8Format
from .int8 import Int8Format, Int8Layer
from .lowbit import LowBitFormat, LowBitWeight

Format = DenseFormat | LowBitFormat | Int8Format | Float8Format

__all__ = ["DenseFormat", "Float8Format", "Format", "Int8Format", "Int8Layer", "LowBitFormat", "LowBitWeight"]
