"""Per-input-channel statistics of layer inputs over calibration batches (calibration/stats.py)."""

import torch
from torch import nn

from quantbench.methods.calibration.stats import ChannelStats, input_channel_stats


class _Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.drop, self.fc2 = nn.Linear(6, 5), nn.Dropout(0.5), nn.Linear(5, 3)

    def forward(self, x=None, inputs=None):
        x = inputs if x is None else x
        return self.fc2(self.drop(torch.relu(self.fc1(x))))


def test_stats_match_a_direct_computation():
    torch.manual_seed(0)
    model = _Mlp().train()  # calibration runs in eval mode (no dropout) and restores train mode
    batches = [torch.randn(4, 7, 6), {"inputs": torch.randn(3, 6)}]
    stats = input_channel_stats(model, {"fc1": model.fc1, "fc2": model.fc2}, batches)

    with torch.no_grad():
        x1 = torch.cat([batches[0].reshape(-1, 6), batches[1]["inputs"]])
        x2 = torch.relu(model.fc1(x1))
    for name, x in (("fc1", x1), ("fc2", x2)):
        got = stats[name]
        assert isinstance(got, ChannelStats) and got.rows == 31
        torch.testing.assert_close(got.absmax, x.abs().amax(0))
        torch.testing.assert_close(got.absmean, x.abs().mean(0))
    assert model.training and model.drop.training
    assert not model.fc1._forward_pre_hooks and not model.fc2._forward_pre_hooks


def test_hooks_are_removed_when_the_forward_fails():
    model = _Mlp()
    try:
        input_channel_stats(model, {"fc1": model.fc1}, [torch.randn(2, 4)])  # wrong width
    except RuntimeError:
        pass
    assert not model.fc1._forward_pre_hooks


def test_layers_that_see_no_input_are_left_out():
    model, unused = _Mlp(), nn.Linear(2, 2)
    stats = input_channel_stats(model, {"fc1": model.fc1, "unused": unused}, [torch.randn(2, 6)])
    assert set(stats) == {"fc1"}
