import pytest
import torch

from quantbench.methods.lowbit.grid import (
    LowBitWeight,
    dequantize_codes,
    quantize_codes,
    rtn_quantize,
    scale_zero_minmax,
)

IN_FEATURES = 100  # 100 = 3 * 32 + 4 and 2 * 48 + 4: the last group is smaller


def _weights(seed=0, out_features=16):
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(out_features, IN_FEATURES, generator=gen)
    w[1] *= 100.0  # a row with a much larger range
    w[2] = w[2].abs()  # a row with no negative value
    w[3, :50] = 0.0
    return w


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("group_size", [-1, 32, 48])
@pytest.mark.parametrize("sym", [False, True])
def test_rtn_error_is_at_most_half_a_step(bits, group_size, sym):
    w = _weights(seed=bits)
    lw = rtn_quantize(w, bits, group_size, sym)
    expected_groups = 1 if group_size == -1 else -(-IN_FEATURES // group_size)
    assert lw.q.dtype == torch.uint8 and lw.q.shape == w.shape
    assert lw.n_groups == expected_groups and lw.scales.shape == (16, expected_groups)
    assert int(lw.q.max()) <= 2**bits - 1
    step = lw.scales[:, lw.g_idx.long()]
    err = (w - lw.dequantize()).abs()
    float_eps = 1e-6 * w.abs().amax(dim=1, keepdim=True)  # float32 rounding of the row's values
    assert bool((err <= step / 2 + float_eps).all())
    assert bool(torch.isfinite(lw.dequantize()).all())


@pytest.mark.parametrize("group_size", [-1, 32, 48])
def test_rtn_group_index_and_groups_quantized_independently(group_size):
    w = _weights()
    lw = rtn_quantize(w, 4, group_size)
    k = torch.arange(IN_FEATURES, dtype=torch.int32)
    expected = torch.zeros_like(k) if group_size == -1 else k // group_size
    assert lw.g_idx.dtype == torch.int32 and torch.equal(lw.g_idx, expected)
    if group_size != -1:
        last = slice((lw.n_groups - 1) * group_size, IN_FEATURES)
        alone = rtn_quantize(w[:, last], 4, -1)
        assert torch.equal(lw.q[:, last], alone.q)
        assert torch.equal(lw.scales[:, -1:], alone.scales)


def test_minmax_asymmetric_hand_example():
    scale, zero = scale_zero_minmax(torch.tensor([[-1.0, 3.0], [2.0, 4.0]]), bits=2, sym=False)
    # row 0: range [-1, 3] -> scale 4/3, zero round(0.75) = 1; row 1: range widened to [0, 4]
    assert torch.allclose(scale, torch.tensor([4 / 3, 4 / 3]))
    assert torch.equal(zero, torch.tensor([1.0, 0.0]))


def test_minmax_symmetric_uses_max_abs_and_midpoint_zero():
    scale, zero = scale_zero_minmax(torch.tensor([[-1.0, 3.0], [2.0, 4.0]]), bits=4, sym=True)
    assert torch.allclose(scale, torch.tensor([6 / 15, 8 / 15]))
    assert torch.equal(zero, torch.tensor([8.0, 8.0]))


@pytest.mark.parametrize("sym", [False, True])
def test_all_zero_rows_give_finite_grid_and_exact_zeros(sym):
    w = torch.zeros(3, 10)
    scale, zero = scale_zero_minmax(w, 4, sym)
    assert bool(torch.isfinite(scale).all()) and bool((scale > 0).all())
    lw = rtn_quantize(w, 4, 4, sym)
    assert torch.equal(lw.dequantize(), w)


def test_quantize_codes_round_and_clamp():
    w = torch.tensor([-10.0, -0.26, 0.24, 0.76, 10.0])
    q = quantize_codes(w, torch.tensor(0.5), torch.tensor(2.0), bits=2)
    assert q.dtype == torch.uint8
    assert q.tolist() == [0, 1, 2, 3, 3]
    assert dequantize_codes(q, torch.tensor(0.5), torch.tensor(2.0)).tolist() == [-1.0, -0.5, 0.0, 0.5, 0.5]


def test_dequantize_follows_g_idx():
    q = torch.tensor([[0, 1, 2, 3], [3, 2, 1, 0]], dtype=torch.uint8)
    scales = torch.tensor([[1.0, 10.0], [2.0, 20.0]])
    zeros = torch.tensor([[1.0, 2.0], [0.0, 3.0]])
    g_idx = torch.tensor([1, 0, 0, 1], dtype=torch.int32)
    lw = LowBitWeight(q, scales, zeros, g_idx, bits=2, group_size=2)
    expected = torch.tensor([[10.0 * (0 - 2), 1.0 * (1 - 1), 1.0 * (2 - 1), 10.0 * (3 - 2)],
                             [20.0 * (3 - 3), 2.0 * 2, 2.0 * 1, 20.0 * (0 - 3)]])
    assert torch.equal(lw.dequantize(), expected)


def test_low_bit_weight_rejects_inconsistent_shapes():
    q = torch.zeros(2, 4, dtype=torch.uint8)
    with pytest.raises(ValueError, match="g_idx"):
        LowBitWeight(q, torch.ones(2, 1), torch.zeros(2, 1), torch.zeros(3, dtype=torch.int32), 4, -1)
    with pytest.raises(ValueError, match="uint8"):
        LowBitWeight(q.int(), torch.ones(2, 1), torch.zeros(2, 1), torch.zeros(4, dtype=torch.int32), 4, -1)


def test_rtn_does_not_modify_input():
    w = _weights()
    before = w.clone()
    rtn_quantize(w, 3, 32)
    assert torch.equal(w, before)


def test_column_order_makes_act_order_groups_contiguous_and_refuses_ragged_groups():
    from dataclasses import replace

    from quantbench.errors import NotRepresentable

    lw = rtn_quantize(torch.randn(4, 12), 4, 4)
    assert lw.column_order() is None and replace(lw, group_size=-1, g_idx=torch.zeros(12, dtype=torch.int32),
                                                 scales=lw.scales[:, :1], zeros=lw.zeros[:, :1]).column_order() is None
    shuffled = torch.tensor([2, 0, 1, 0, 2, 1, 1, 0, 2, 0, 1, 2], dtype=torch.int32)  # act-order: 4 columns each
    perm = replace(lw, g_idx=shuffled).column_order()
    assert torch.equal(shuffled[perm].long(), torch.arange(12) // 4)
    assert sorted(perm.tolist()) == list(range(12))
    with pytest.raises(NotRepresentable, match="does not make groups of 4 columns"):
        replace(lw, g_idx=torch.tensor([0] * 5 + [1] * 3 + [2] * 4, dtype=torch.int32)).column_order()
