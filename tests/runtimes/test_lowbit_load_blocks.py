"""The load path works on row blocks (to bound its memory): each blocked step equals its whole-layer form,
on layers of several blocks with a partial last one."""
import pytest
import torch

from quantbench.formats import lowbit_file
from quantbench.formats.gptq_packing import from_gptq_tensors, to_gptq_tensors
from quantbench.formats.lowbit import LowBitWeight
from quantbench.kernels import weight_only

OUT, IN = 2 * 64 + 40, 256  # three row blocks of 64 (the last one partial, not a multiple of 32)


def random_weight(bits: int, group_size: int, float_zeros: bool = False, seed: int = 0) -> LowBitWeight:
    gen = torch.Generator().manual_seed(seed)
    n_groups = IN // group_size if group_size > 0 else 1
    q = torch.randint(0, 1 << bits, (OUT, IN), generator=gen).to(torch.uint8)
    scales = (torch.rand(OUT, n_groups, generator=gen) + 0.1).half().float()
    zeros = (torch.rand(OUT, n_groups, generator=gen) * (1 << bits)).half().float() if float_zeros else \
        torch.randint(0, 1 << bits, (OUT, n_groups), generator=gen).float()
    g_idx = (torch.arange(IN) // (group_size if group_size > 0 else IN)).to(torch.int32)
    return LowBitWeight(q, scales, zeros, g_idx, bits, group_size)


@pytest.mark.parametrize("bits, group_size, float_zeros, fmt", [(4, 128, False, "gptq"), (3, 64, False, "gptq_v2"),
                                                               (2, -1, False, "gptq"), (8, -1, False, "gptq_v2"),
                                                               (4, 64, True, "gptq")])
def test_layer_read_by_row_blocks_equals_the_whole_layer_read(bits, group_size, float_zeros, fmt):
    lw = random_weight(bits, group_size, float_zeros)
    parts = to_gptq_tensors(lw, fmt)
    config = {"bits": bits, "group_size": group_size, "checkpoint_format": fmt}
    blocked = lowbit_file._read_layer(parts, config, IN, OUT)
    whole = from_gptq_tensors(parts, bits, group_size, IN, OUT, fmt)
    assert OUT > 2 * lowbit_file._READ_ROWS
    for name in ("q", "scales", "zeros", "g_idx"):
        assert torch.equal(getattr(blocked, name), getattr(whole, name)), name
    assert torch.equal(blocked.q, lw.q) and torch.equal(blocked.zeros, lw.zeros)


def test_dequantize_by_row_blocks_equals_the_whole_layer_formula():
    lw = random_weight(4, 64)
    assert torch.equal(lowbit_file._dequantize_by_rows(lw), lw.dequantize())


@pytest.mark.skipif(not hasattr(torch.ops.aten, "_convert_weight_to_int4pack_for_cpu"), reason="no CPU int4 packing")
@pytest.mark.parametrize("rows, inner_k_tiles", [(176, 8), (80, 4), (64, 2), (16, 8)])  # N: a multiple of 16
def test_cpu_int4_packing_by_row_blocks_equals_packing_the_whole_layer(rows, inner_k_tiles):
    codes = torch.randint(0, 16, (rows, IN), generator=torch.Generator().manual_seed(1)).to(torch.uint8)
    whole = torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes.to(torch.int32), inner_k_tiles)
    assert torch.equal(weight_only._pack_int4_cpu(codes, inner_k_tiles), whole)


def test_int8_codes_are_the_codes_minus_128():
    lw = random_weight(8, -1)
    assert torch.equal(weight_only.int8_weight_only(lw).codes.to(torch.int16), lw.q.to(torch.int16) - 128)
