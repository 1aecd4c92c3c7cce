"""HQQ weight quantization (methods/hqq/core.py): error vs RTN and the min-max start, format, determinism."""

import pytest
import torch

from quantbench.methods.hqq.core import hqq_quantize
from quantbench.methods.lowbit.grid import rtn_quantize


def _weight() -> torch.Tensor:
    """randn [256, 512] with a few heavy-tailed entries (outliers x8), seeded."""
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(256, 512, generator=gen)
    outliers = torch.randint(0, w.numel(), (40,), generator=gen)
    w.view(-1)[outliers] *= 8.0
    return w


def _minmax_float_zero(w: torch.Tensor, bits: int, width: int) -> torch.Tensor:
    """Dequantized min-max grid with the unrounded float zero -min / scale (HQQ's starting point)."""
    blocks = w.reshape(w.shape[0], -1, width)
    lo, hi = blocks.amin(-1, keepdim=True), blocks.amax(-1, keepdim=True)
    maxq = 2**bits - 1
    scale = (hi - lo) / maxq
    zero = -lo / scale
    codes = torch.clamp(torch.round(blocks / scale + zero), 0, maxq)
    return (scale * (codes - zero)).reshape(w.shape)


@pytest.mark.parametrize("bits", [3, 4])
def test_error_below_rtn_and_below_minmax_start(bits):
    w = _weight()
    hqq, info = hqq_quantize(w, bits, 64)
    err = w - hqq.dequantize()
    rtn_err = w - rtn_quantize(w, bits, 64, sym=False).dequantize()
    start_err = w - _minmax_float_zero(w, bits, 64)
    assert err.abs().mean() < rtn_err.abs().mean()
    assert err.norm() < rtn_err.norm()
    # The zero optimization itself must help (not only the float zero / unwidened range).
    assert err.abs().mean() < 0.98 * start_err.abs().mean()
    assert err.norm() < 0.98 * start_err.norm()
    assert info["error_after"] == pytest.approx(float(err.abs().mean()))
    assert info["error_after"] < info["error_before"]
    assert 1 <= info["iterations"] <= 20


def test_format_float_zeros_codes_and_fp16_exact_grids():
    w = _weight()
    hqq, _ = hqq_quantize(w, 4, 64)
    assert hqq.q.dtype == torch.uint8 and hqq.q.shape == w.shape
    assert int(hqq.q.max()) <= 15
    assert hqq.scales.shape == hqq.zeros.shape == (256, 8)
    assert hqq.scales.dtype == hqq.zeros.dtype == torch.float32
    assert hqq.float_zeros and (hqq.zeros != hqq.zeros.round()).float().mean() > 0.5
    assert torch.equal(hqq.scales.half().float(), hqq.scales)
    assert torch.equal(hqq.zeros.half().float(), hqq.zeros)
    assert torch.equal(hqq.g_idx, torch.arange(512, dtype=torch.int32) // 64)
    group = torch.arange(512) // 64
    expected = hqq.scales[:, group] * (hqq.q.float() - hqq.zeros[:, group])
    assert torch.equal(hqq.dequantize(), expected)
    # The codes are the nearest ones under the stored (fp16-rounded) grid.
    nearest = torch.clamp(torch.round(w / hqq.scales[:, group] + hqq.zeros[:, group]), 0, 15)
    assert torch.equal(hqq.q.float(), nearest)


def test_deterministic():
    w = _weight()
    (a, info_a), (b, info_b) = hqq_quantize(w, 3, 64), hqq_quantize(w.clone(), 3, 64)
    for name in ("q", "scales", "zeros", "g_idx"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert info_a == info_b


def test_per_row_and_degenerate_rows():
    w = _weight()[:8].clone()
    w[0] = 0.0
    w[1] = 3.25
    hqq, info = hqq_quantize(w, 4, -1)
    assert hqq.scales.shape == (8, 1) and hqq.group_size == -1
    assert torch.isfinite(hqq.scales).all() and torch.isfinite(hqq.zeros).all()
    assert (hqq.scales > 0).all()
    deq = hqq.dequantize()
    assert torch.equal(deq[0], torch.zeros(512))
    assert torch.allclose(deq[1], torch.full((512,), 3.25), rtol=1e-3)
    assert info["error_after"] <= info["error_before"]


def test_a_partial_last_group_is_its_own_group_and_beats_rtn():
    torch.manual_seed(1)
    w = torch.randn(64, 100)
    hqq, _ = hqq_quantize(w, 4, 64)
    assert hqq.n_groups == 2 and torch.equal(hqq.g_idx, torch.arange(100, dtype=torch.int32) // 64)
    rtn = rtn_quantize(w, 4, 64)
    assert (w - hqq.dequantize()).abs().mean() < (w - rtn.dequantize()).abs().mean()
    narrow, _ = hqq_quantize(w[:, :40], 4, 64)  # narrower than one group: one group of 40
    assert narrow.n_groups == 1


def test_rejects_bad_args():
    with pytest.raises(ValueError):
        hqq_quantize(torch.randn(4, 128), 4, 0)
    with pytest.raises(ValueError):
        hqq_quantize(torch.randn(4, 128), 9, 64)
