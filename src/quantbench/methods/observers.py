"""Activation range observers for static int8: torch's min-max and histogram, plus percentile."""
import torch
from torch.ao.quantization.observer import HistogramObserver, MinMaxObserver

_MAX_SAMPLES = 1 << 20


class PercentileObserver(MinMaxObserver):
    """Range = [p_low, p_high] percentiles of each calibration batch (widest over batches):
    clips rare outliers that min-max would stretch the whole grid for."""

    def __init__(self, percentile: float = 99.99, **kwargs):
        super().__init__(**kwargs)
        self.percentile = percentile

    def forward(self, x_orig):
        if x_orig.numel() == 0:
            return x_orig
        x = x_orig.detach().float().flatten()
        if x.numel() > _MAX_SAMPLES:
            x = x[torch.randint(x.numel(), (_MAX_SAMPLES,), generator=torch.Generator().manual_seed(0))]
        q = self.percentile / 100.0
        low, high = torch.quantile(x, torch.tensor([1.0 - q, q]))
        self.min_val.copy_(torch.minimum(self.min_val, low))
        self.max_val.copy_(torch.maximum(self.max_val, high))
        return x_orig


def activation_observer(name: str, percentile: float, reduce_range: bool):
    """Observer constructor for activations (quint8, per tensor)."""
    kwargs = {"dtype": torch.quint8, "reduce_range": reduce_range}
    if name == "percentile":
        return PercentileObserver.with_args(percentile=percentile, **kwargs)
    return {"minmax": MinMaxObserver, "histogram": HistogramObserver}[name].with_args(**kwargs)
