import numpy as np
import pytest
import torch

from quantbench.methods.lowbit.gptq import accumulate_hessian, gptq_quantize
from quantbench.methods.lowbit.grid import LowBitWeight, rtn_quantize
from quantbench.formats.gptq_packing import (
    count_v1_unrepresentable_zeros,
    from_gptq_tensors,
    pack_along_rows,
    to_gptq_tensors,
    unpack_rows,
)


def _as_uint32(words):
    return [w & 0xFFFFFFFF for w in words.flatten().tolist()]


# ---- bit order pinned by hand ----------------------------------------------------------------


def test_four_bit_hand_example():
    codes = torch.arange(1, 9).reshape(8, 1)  # value j at bits [4j, 4j + 4): 0x87654321
    packed = pack_along_rows(codes, 4)
    assert packed.dtype == torch.int32 and packed.shape == (1, 1)
    assert packed.item() == 0x87654321 - 2**32  # top bit set: negative as int32


def test_two_and_eight_bit_hand_examples():
    two = pack_along_rows(torch.tensor([1, 2, 3, 0] + [0] * 11 + [3]).reshape(16, 1), 2)
    assert _as_uint32(two) == [0b111001 | (3 << 30)]
    eight = pack_along_rows(torch.tensor([[0x01], [0x02], [0x03], [0xFF], [0x7F]]), 8)
    assert _as_uint32(eight) == [0xFF030201, 0x7F]


def test_three_bit_values_straddle_word_boundaries():
    codes = torch.zeros(32, 1, dtype=torch.int64)
    codes[10] = 0b111  # stream bits 30..32: word 0 bits 30-31, word 1 bit 0
    codes[21] = 0b101  # stream bits 63..65: word 1 bit 31, word 2 bits 0-1
    codes[31] = 0b110  # stream bits 93..95: word 2 bits 29-31
    assert _as_uint32(pack_along_rows(codes, 3)) == [0xC0000000, 0x80000001, 0b10 | (0b110 << 29)]


def _reference_pack3(intweight):
    """Transcription of the reference Quant3Linear.pack loop (IST-DASLab/gptq quant.py)."""
    qweight = np.zeros((intweight.shape[0] // 32 * 3, intweight.shape[1]), dtype=np.uint32)
    i = row = 0
    while row < qweight.shape[0]:
        for j in range(i, i + 10):
            qweight[row] |= intweight[j] << (3 * (j - i))
        i += 10
        qweight[row] |= intweight[i] << 30
        row += 1
        qweight[row] |= (intweight[i] >> 2) & 1
        i += 1
        for j in range(i, i + 10):
            qweight[row] |= intweight[j] << (3 * (j - i) + 1)
        i += 10
        qweight[row] |= intweight[i] << 31
        row += 1
        qweight[row] |= (intweight[i] >> 1) & 0x3
        i += 1
        for j in range(i, i + 10):
            qweight[row] |= intweight[j] << (3 * (j - i) + 2)
        i += 10
        row += 1
    return qweight.astype(np.int32)


def test_three_bit_matches_the_reference_layout():
    codes = torch.randint(0, 8, (96, 5), generator=torch.Generator().manual_seed(0))
    expected = _reference_pack3(codes.numpy().astype(np.uint32))
    assert np.array_equal(pack_along_rows(codes, 3).numpy(), expected)


# ---- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("K,N", [(1, 1), (31, 5), (33, 7), (64, 3), (100, 9)])
def test_pack_unpack_round_trip(bits, K, N):
    gen = torch.Generator().manual_seed(K * 100 + N + bits)
    codes = torch.randint(0, 2**bits, (K, N), generator=gen)
    codes[:, 0] = 2**bits - 1  # every bit set, including each word's top bit
    packed = pack_along_rows(codes, bits)
    assert packed.dtype == torch.int32 and packed.shape == (-(-K * bits // 32), N)
    assert torch.equal(unpack_rows(packed, bits, K), codes)
    if K * bits >= 32:
        assert bool((packed[:, 0] < 0).any())


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_packed_size_is_exactly_bits_per_value(bits):
    K, N = 128, 6
    packed = pack_along_rows(torch.randint(0, 2**bits, (K, N)), bits)
    assert packed.numel() * packed.element_size() == K * N * bits // 8


def test_pack_rejects_out_of_range_codes():
    with pytest.raises(ValueError, match="lie in"):
        pack_along_rows(torch.tensor([[16]]), 4)
    with pytest.raises(ValueError, match="lie in"):
        pack_along_rows(torch.tensor([[-1]]), 4)


def test_unpack_checks_the_word_count():
    with pytest.raises(ValueError, match="words"):
        unpack_rows(torch.zeros(2, 3, dtype=torch.int32), 4, 8)


# ---- checkpoint tensors ----------------------------------------------------------------------


def _gptq_weight(out_features, in_features, bits, group_size):
    gen = torch.Generator().manual_seed(bits)
    x = torch.randn(512, in_features, generator=gen) @ torch.randn(in_features, in_features, generator=gen)
    H, _ = accumulate_hessian(None, 0, x)
    w = torch.randn(out_features, in_features, generator=gen)
    return gptq_quantize(w, H, bits, group_size, act_order=True)[0]


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("method", ["rtn", "gptq"])
def test_checkpoint_tensors_round_trip(bits, method):
    out_features, in_features, group_size = 40, 96, 32
    if method == "rtn":
        lw = rtn_quantize(torch.randn(out_features, in_features), bits, group_size)
    else:
        lw = _gptq_weight(out_features, in_features, bits, group_size)
    tensors = to_gptq_tensors(lw)
    n_groups = in_features // group_size
    assert tensors["qweight"].dtype == torch.int32
    assert tensors["qweight"].shape == (in_features * bits // 32, out_features)
    assert tensors["qzeros"].dtype == torch.int32
    assert tensors["qzeros"].shape == (n_groups, -(-out_features * bits // 32))
    assert tensors["scales"].dtype == torch.float16 and tensors["scales"].shape == (n_groups, out_features)
    assert tensors["g_idx"].dtype == torch.int32 and torch.equal(tensors["g_idx"], lw.g_idx)
    back = from_gptq_tensors(tensors, bits, group_size, in_features, out_features)
    assert torch.equal(back.q, lw.q)
    assert torch.equal(back.zeros, lw.zeros.float())
    assert torch.equal(back.scales, lw.scales.half().float())
    assert torch.equal(back.g_idx, lw.g_idx) and back.group_size == group_size and back.bits == bits


def test_checkpoint_dequantizes_with_the_documented_formula():
    """W[n, k] = scales[g[k], n] * (q[k, n] - (qzeros[g[k], n] + 1)) on the raw unpacked tensors."""
    lw = _gptq_weight(24, 64, 4, 16)
    t = to_gptq_tensors(lw)
    q = unpack_rows(t["qweight"], 4, 64).float()  # [in, out]
    zeros = unpack_rows(t["qzeros"].T, 4, 24).T.float() + 1  # [n_groups, out], format v1
    g = t["g_idx"].long()
    w = t["scales"].float()[g] * (q - zeros[g])
    assert torch.equal(w.T, from_gptq_tensors(t, 4, 16, 64, 24).dequantize())
    assert torch.allclose(w.T, lw.dequantize(), rtol=1e-3, atol=1e-3 * float(lw.scales.max()))


def _weight_with_zero_points(zero_values, bits=4):
    zeros = torch.tensor(zero_values, dtype=torch.float32).reshape(-1, 1)
    n = zeros.shape[0]
    return LowBitWeight(torch.zeros(n, 8, dtype=torch.uint8), torch.ones(n, 1), zeros,
                        torch.zeros(8, dtype=torch.int32), bits, -1)


def test_v1_stores_zero_minus_one_and_v2_the_zero():
    lw = _weight_with_zero_points([1, 5, 15, 8, 2, 3, 4, 9])
    v1 = to_gptq_tensors(lw)["qzeros"]
    v2 = to_gptq_tensors(lw, checkpoint_format="gptq_v2")["qzeros"]
    assert _as_uint32(v1) == [0x8321_7E40]
    assert _as_uint32(v2) == [0x9432_8F51]
    back = from_gptq_tensors({**to_gptq_tensors(lw, "gptq_v2")}, 4, -1, 8, 8, "gptq_v2")
    assert torch.equal(back.zeros, lw.zeros)


def test_v1_zero_point_of_zero_round_trips_without_corrupting_neighbours():
    lw = _weight_with_zero_points([0, 5, 0, 7, 1, 2, 3, 4])
    assert count_v1_unrepresentable_zeros(lw) == 2
    tensors = to_gptq_tensors(lw)
    stored = unpack_rows(tensors["qzeros"].T, 4, 8).flatten().tolist()
    assert stored == [15, 4, 15, 6, 0, 1, 2, 3]
    assert torch.equal(from_gptq_tensors(tensors, 4, -1, 8, 8).zeros, lw.zeros)


def test_unknown_checkpoint_format_is_rejected():
    with pytest.raises(ValueError, match="checkpoint_format"):
        to_gptq_tensors(_weight_with_zero_points([1]), checkpoint_format="awq")
