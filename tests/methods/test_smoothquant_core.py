"""SmoothQuant's smoothing factors (smoothquant/core.py): outliers migrate, the product stays exact."""

import pytest
import torch

from quantbench.methods.smoothquant.core import smoothing_factors, weight_input_absmax

OUTLIERS = [3, 17, 40]


def _outlier_layer():
    torch.manual_seed(0)
    x, w = torch.randn(256, 64, dtype=torch.float64), torch.randn(32, 64, dtype=torch.float64)
    x[:, OUTLIERS] *= 100
    return x, w


def _spread(x):
    """How far the largest channel's range is above the typical channel's."""
    absmax = x.abs().amax(0)
    return (absmax.max() / absmax.median()).item()


def test_smoothing_migrates_outliers_and_keeps_the_product():
    x, w = _outlier_layer()
    s = smoothing_factors(x.abs().amax(0), weight_input_absmax(w)).double()
    xs, ws = x / s, w * s
    assert _spread(x) > 50
    assert _spread(xs) < _spread(x) / 5
    torch.testing.assert_close(xs @ ws.T, x @ w.T)


def test_weight_input_absmax_is_the_max_over_rows():
    w = torch.tensor([[1.0, -4.0, 0.0], [-2.0, 3.0, 0.0]])
    assert weight_input_absmax(w).tolist() == [2.0, 4.0, 0.0]


def test_alpha_extremes_follow_the_paper():
    a, w = torch.tensor([4.0, 9.0, 0.5]), torch.tensor([2.0, 0.5, 8.0])
    torch.testing.assert_close(smoothing_factors(a, w, alpha=1.0), a)  # all difficulty to weights
    torch.testing.assert_close(smoothing_factors(a, w, alpha=0.0), 1 / w)  # all to activations
    torch.testing.assert_close(smoothing_factors(a, w), (a / w).sqrt())
    x_max, w_max = a / smoothing_factors(a, w), w * smoothing_factors(a, w)
    torch.testing.assert_close(x_max, w_max)  # alpha = 0.5 equalizes the two ranges


def test_dead_channels_get_unit_scale_and_extremes_stay_finite():
    a, w = torch.tensor([0.0, 3.0, 0.0, 1e30, 1e-30]), torch.tensor([2.0, 0.0, 0.0, 1e-30, 1e30])
    s = smoothing_factors(a, w)
    assert s[:3].tolist() == [1.0, 1.0, 1.0]
    assert torch.isfinite(s).all() and (s > 0).all()


@pytest.mark.parametrize("a,w,alpha", [
    (torch.ones(3), torch.ones(3), 1.5),
    (torch.ones(3), torch.ones(4), 0.5),
    (-torch.ones(3), torch.ones(3), 0.5),
    (torch.tensor([float("nan")]), torch.ones(1), 0.5),
])
def test_bad_inputs_raise(a, w, alpha):
    with pytest.raises(ValueError):
        smoothing_factors(a, w, alpha)
