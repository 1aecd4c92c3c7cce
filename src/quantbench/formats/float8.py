"""Float8 weights and activations scaled at run time (e4m3), as torchao's float8 recipe makes them."""
from dataclasses import dataclass


@dataclass(frozen=True)
class Float8Format:
    per_channel: bool = True
    dtype: str = "e4m3"
    source: str = "torchao"
