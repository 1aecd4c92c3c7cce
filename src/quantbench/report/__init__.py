from .files import write_all
from .plot import plot_tradeoffs
from .table import render

__all__ = ["plot_tradeoffs", "render", "write_all"]
