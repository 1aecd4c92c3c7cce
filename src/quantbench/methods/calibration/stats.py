"""Per-input-channel statistics of linear layers' inputs over calibration batches.

AWQ and SmoothQuant both size their scale ``s`` [in] from how large each input channel of a
layer gets: its absolute maximum and its mean magnitude over every row (token) seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..lowbit.driver import calibration_mode


@dataclass(frozen=True)
class ChannelStats:
    """Per input channel: ``absmax`` [in] and ``absmean`` [in] of |x| (float32) over ``rows`` rows."""

    absmax: torch.Tensor
    absmean: torch.Tensor
    rows: int


def input_channel_stats(model: nn.Module, layers: dict[str, nn.Module], batches: list) -> dict[str, ChannelStats]:
    """{name: ChannelStats} of each layer's input over ``batches``, the model run in eval mode, no grad.

    A batch is a Tensor (``model(x)``) or a dict (``model(**batch)``). All leading dims of a
    layer's input are rows; a layer called several times per forward counts every call. Layers
    that received no input are left out.
    """
    sums = {name: _Running() for name in layers}
    handles = [layer.register_forward_pre_hook(sums[name].hook, with_kwargs=True) for name, layer in layers.items()]
    try:
        with torch.no_grad(), calibration_mode(model):
            for batch in batches:
                _call_model(model, batch)
    finally:
        for handle in handles:
            handle.remove()
    return {name: running.stats() for name, running in sums.items() if running.rows}


class _Running:
    """Running absmax and |x| sum (float64) of one layer's input rows."""

    def __init__(self):
        self.absmax, self.abssum, self.rows = None, None, 0

    def hook(self, module, args, kwargs):
        x = args[0] if args else kwargs["input"]
        rows = x.detach().reshape(-1, x.shape[-1]).abs()
        if rows.shape[0] == 0:
            return
        absmax, abssum = rows.amax(dim=0).float(), rows.sum(dim=0, dtype=torch.float64)
        if self.rows == 0:
            self.absmax, self.abssum = absmax, abssum
        else:
            self.absmax, self.abssum = torch.maximum(self.absmax, absmax), self.abssum + abssum
        self.rows += rows.shape[0]

    def stats(self) -> ChannelStats:
        return ChannelStats(absmax=self.absmax, absmean=(self.abssum / self.rows).float(), rows=self.rows)


def _call_model(model, batch):
    return model(**batch) if isinstance(batch, dict) else model(batch)
