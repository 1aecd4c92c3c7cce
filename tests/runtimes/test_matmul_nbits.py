"""quantbench low-bit weights as MatMulNBits tensors: the same integers, laid out as ORT specifies."""
import numpy as np
import pytest
import torch

from quantbench.methods.lowbit.gptq import accumulate_hessian, gptq_quantize
from quantbench.methods.lowbit.grid import rtn_quantize
from quantbench.kernels.matmul_nbits import (
    NotRepresentable,
    block_groups,
    choose_block_size,
    dequantize,
    pack_low_first,
    pack_lowbit,
    replace_linear_nodes,
    unpack_low_first,
    unpack_lowbit,
)


def test_codes_are_packed_low_bits_first():
    assert pack_low_first(np.array([[1, 2, 3, 4]], np.uint8), 4).tolist() == [[0x21, 0x43]]
    assert pack_low_first(np.array([[1, 2, 3, 0, 3]], np.uint8), 2).tolist() == [[0b00111001, 0b11]]
    assert pack_low_first(np.array([[7, 255]], np.uint8), 8).tolist() == [[7, 255]]
    assert unpack_low_first(np.array([[0x21, 0x43]], np.uint8), 4).tolist() == [[1, 2, 3, 4]]


@pytest.mark.parametrize("group_size,K,block", [(32, 256, 32), (128, 256, 128), (128, 64, 64), (48, 96, 16),
                                                 (-1, 64, 64), (-1, 2048, 128), (256, 300, 256)])
def test_block_size_divides_groups_and_fits_k(group_size, K, block):
    assert choose_block_size(group_size, K) == block


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("group_size,K", [(32, 256), (128, 200), (-1, 96), (48, 96), (16, 64)])
@pytest.mark.parametrize("sym", [False, True])
def test_unpacking_gives_back_the_exact_integers(bits, group_size, K, sym):
    lw = rtn_quantize(torch.randn(24, K, generator=torch.Generator().manual_seed(K + bits)), bits, group_size, sym)
    w = pack_lowbit(lw)
    codes, zeros, scales = unpack_lowbit(w)
    groups = block_groups(K, w.block_size, group_size)
    assert np.array_equal(codes, lw.q.numpy())
    assert np.array_equal(zeros, lw.zeros.numpy()[:, groups])
    assert np.array_equal(scales, lw.scales.numpy()[:, groups])
    assert w.B.shape == (24, w.n_blocks, w.block_size * bits // 8) and w.B.dtype == np.uint8
    assert (w.zero_points is None) == sym  # symmetric: ORT's default zero point 2**(bits-1) is exact
    assert np.array_equal(dequantize(w), lw.dequantize().numpy())


def test_act_order_groups_become_contiguous_after_a_column_permutation():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 64, generator=g) * torch.linspace(0.1, 3, 64)
    H, _ = accumulate_hessian(None, 0, x)
    lw, _ = gptq_quantize(torch.randn(16, 64, generator=g), H, 4, 16, act_order=True)
    w = pack_lowbit(lw)
    assert w.perm is not None
    codes, _, _ = unpack_lowbit(w)
    assert np.array_equal(codes, lw.q.numpy())
    assert np.allclose(dequantize(w), lw.dequantize().numpy(), rtol=0, atol=0)


@pytest.mark.parametrize("bits,group_size,why", [(3, 32, "3-bit codes have none"), (4, 24, "not a multiple of 16")])
def test_what_matmul_nbits_cannot_hold_is_refused_with_the_reason(bits, group_size, why):
    with pytest.raises(NotRepresentable, match=why):
        pack_lowbit(rtn_quantize(torch.randn(8, 96), bits, group_size))


def test_one_not_representable_for_every_kernel():
    """MatMulNBits and the torch weight-only kernels refuse a grid with the same exception class."""
    from quantbench import errors
    from quantbench.kernels import weight_only

    assert NotRepresentable is errors.NotRepresentable is weight_only.NotRepresentable
    assert issubclass(NotRepresentable, ValueError)


def graph_with_weights(transposed_weight_node: bool):
    """x [.., 32] -> MatMul with W.T [32, 16] -> y; W.T either an initializer or a Transpose of W."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(0).standard_normal((16, 32)).astype(np.float32)
    nodes, inits = [], [numpy_helper.from_array(w.T.copy(), "wt")]
    if transposed_weight_node:
        nodes, inits = [helper.make_node("Transpose", ["w"], ["wt"])], [numpy_helper.from_array(w, "w")]
    nodes.append(helper.make_node("MatMul", ["x", "wt"], ["y"]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 16])], inits)
    return onnx.helper.make_model(graph), w


def test_a_layer_missing_from_the_graph_is_reported_and_a_weight_used_otherwise_raises():
    model, w = graph_with_weights(transposed_weight_node=False)
    nbits = pack_lowbit(rtn_quantize(torch.from_numpy(w), 4, 32))
    other = np.ones((16, 32), np.float32)
    replaced = replace_linear_nodes(model, {"fc": nbits, "dropped": nbits}, {"fc": w, "dropped": other}, 0)
    assert replaced == {"fc": "MatMul"} and [n.op_type for n in model.graph.node] == ["MatMulNBits"]
    model, w = graph_with_weights(transposed_weight_node=True)
    with pytest.raises(ValueError, match="not as the weight of a Gemm"):
        replace_linear_nodes(model, {"fc": nbits}, {"fc": w}, 0)
