"""quantbench's integers in the layouts of torch's weight-only kernels (tinygemm int4, int8
weight-only), checked with plain torch and with torch's CPU builds of the kernels; and the swap of a
model's quantized layers for the modules that run them."""
from dataclasses import replace

import pytest
import torch
from torch import nn

from quantbench.pipeline import realize_row
from quantbench.methods.lowbit.gptq import accumulate_hessian, gptq_quantize
from quantbench.methods.lowbit.grid import LowBitWeight, rtn_quantize
from quantbench.formats.lowbit_file import fill_lowbit
from quantbench.kernels.weight_only import (Int8WeightOnlyLinear, NotRepresentable, TinygemmLinear, check_tinygemm,
                                             cpu_dense_layers, cpu_kernel_summary, cpu_layer, int8_weight_only,
                                             pack_nibbles, tinygemm_refusal, tinygemm_weight)

# --- quantbench's integers in tinygemm's layout ----------------------------------------------------


def _fp16_scales(lw: LowBitWeight) -> LowBitWeight:
    return replace(lw, scales=lw.scales.half().float())


def _grids():
    torch.manual_seed(0)
    w = torch.randn(24, 256)
    h, _ = accumulate_hessian(None, 0, torch.randn(512, 256))
    act_order, _ = gptq_quantize(w, h, 4, 64, False, True, False, 0.01, 128)
    return {"asym g128": rtn_quantize(w, 4, 128), "sym g64": rtn_quantize(w, 4, 64, sym=True),
            "per row": rtn_quantize(w, 4, -1), "3-bit g32": rtn_quantize(w, 3, 32),
            "g512 over K 256": rtn_quantize(w, 4, 512), "gptq act-order g64": act_order}


def _tinygemm_formula(tw, n: int) -> torch.Tensor:
    """tinygemm's dequant in plain torch: (u - 8) * scale + zero, per group of K, columns un-permuted."""
    k = tw.codes.shape[1]
    pairs = tw.scales_and_zeros.float()  # [K / group, N16, 2]
    group = torch.arange(k) // tw.group_size
    w = (tw.codes.float() - 8) * pairs[group, :, 0].T + pairs[group, :, 1].T
    w = w[:n]
    if tw.perm is not None:
        w = w[:, torch.argsort(tw.perm)]
    return w


@pytest.mark.parametrize("name", list(_grids()))
def test_tinygemm_operands_dequantize_to_quantbench_weights_up_to_bf16_rounding(name):
    lw = _fp16_scales(_grids()[name])
    tw = tinygemm_weight(lw)
    n, k = lw.q.shape
    assert tw.codes.dtype == torch.uint8 and tw.codes.shape == (32, k) and not tw.codes[n:].any()
    assert tw.scales_and_zeros.dtype == torch.bfloat16 and tw.scales_and_zeros.shape == (k // tw.group_size, 32, 2)
    assert torch.equal(tw.codes[:n], lw.q if tw.perm is None else lw.q[:, tw.perm])  # the codes, unchanged
    step = lw.scales.float()[:, lw.g_idx.long()]
    error = (_tinygemm_formula(tw, n) - lw.dequantize()).abs()
    assert torch.all(error <= 0.07 * step + 1e-7), float((error / step).max())


def test_zero_point_sign_convention_on_a_hand_example():
    q = torch.tensor([[5, 0, 15, 8] * 8], dtype=torch.uint8)  # one row, K = 32
    lw = LowBitWeight(q, torch.tensor([[0.5]]), torch.tensor([[3.0]]), torch.zeros(32, dtype=torch.int32), 4, -1)
    tw = tinygemm_weight(lw)
    assert tw.scales_and_zeros[0, 0].tolist() == [0.5, 2.5]  # zero = s * (8 - z)
    assert _tinygemm_formula(tw, 1)[0, :4].tolist() == [1.0, -1.5, 6.0, 2.5] == lw.dequantize()[0, :4].tolist()


def test_act_order_groups_become_contiguous_by_a_column_permutation():
    lw = _fp16_scales(_grids()["gptq act-order g64"])
    tw = tinygemm_weight(lw)
    assert tw.perm is not None and sorted(tw.perm.tolist()) == list(range(256))
    assert torch.equal(lw.g_idx.long()[tw.perm], torch.arange(256) // 64)


@pytest.mark.parametrize("grid, message", [(rtn_quantize(torch.randn(8, 96), 4, 48), "must divide both"),
                                           (rtn_quantize(torch.randn(8, 96), 8, 32), "4-bit codes"),
                                           (rtn_quantize(torch.randn(8, 80), 4, -1), "must divide both")])
def test_grids_tinygemm_cannot_hold_say_why(grid, message):
    with pytest.raises(NotRepresentable, match=message):
        tinygemm_weight(grid)


def test_nibbles_hold_even_columns_high_and_odd_columns_low():
    codes = torch.tensor([[1, 2, 3, 4], [15, 0, 0, 15]], dtype=torch.uint8)
    assert pack_nibbles(codes).tolist() == [[0x12, 0x34], [0xF0, 0x0F]]


@pytest.mark.parametrize("name", list(_grids()))
def test_torch_cpu_tinygemm_kernel_runs_quantbench_integers(name):
    """torch's CPU build of the int4 kernel reads the same scales_and_zeros as the CUDA one."""
    lw = _fp16_scales(_grids()[name])
    tw = tinygemm_weight(lw)
    bias = torch.randn(24)
    layer = TinygemmLinear(tw, bias, torch.device("cpu"))
    assert check_tinygemm(layer, tw) < 0.02
    mirrored = TinygemmLinear(replace(tw, codes=15 - tw.codes), bias, torch.device("cpu"))  # a layout error
    assert check_tinygemm(mirrored, tw) > 0.2
    x = torch.randn(2, 3, 256)
    expected = x @ lw.dequantize().T + bias
    got = layer(x.bfloat16()).float()
    assert got.shape == (2, 3, 24)
    assert (got - expected).abs().max() <= 0.03 * expected.abs().max()


@pytest.mark.parametrize("sym, group_size, per_channel", [(True, -1, True), (False, -1, True), (True, 64, False)])
def test_int8_weight_only_runs_the_8bit_integers(sym, group_size, per_channel):
    """Per-row grids run torch's CPU int8 weight-only kernel with bf16 activations (asymmetric ones
    with the zero-point term), grouped grids are dequantized per call: all give x W^T of the grid."""
    torch.manual_seed(0)
    lw = _fp16_scales(rtn_quantize(torch.randn(16, 128) + 0.5, 8, group_size, sym=sym))
    w = int8_weight_only(lw)
    assert w.per_channel is per_channel and w.symmetric is sym and w.codes.dtype == torch.int8
    assert torch.equal(w.codes.to(torch.int16) + 128, lw.q.to(torch.int16))
    layer = Int8WeightOnlyLinear(w, None, torch.device("cpu"))
    x = torch.randn(4, 128)
    exact = x @ lw.dequantize().T
    bf16_inputs = x.bfloat16().float() @ lw.dequantize().T
    got = layer(x)
    assert got.dtype == torch.float32
    if per_channel:  # bf16 activations, fp32 accumulation: within bf16 rounding of the exact product
        assert (got - bf16_inputs).abs().max() <= 0.01 * exact.abs().max()
        assert (got - exact).abs().max() <= 0.02 * exact.abs().max()
    else:
        assert torch.allclose(got, exact, atol=1e-4, rtol=1e-4)
    with pytest.raises(NotRepresentable, match="8-bit codes"):
        int8_weight_only(rtn_quantize(torch.randn(16, 128), 4, 64))


def test_zero_point_term_is_needed_for_asymmetric_rows():
    """Without the zero-point term an asymmetric per-row grid would be off by scale * zero * sum(x)."""
    torch.manual_seed(1)
    lw = _fp16_scales(rtn_quantize(torch.rand(8, 64), 8, -1, sym=False))  # all-positive rows: zero far from 128
    layer = Int8WeightOnlyLinear(int8_weight_only(lw), None, torch.device("cpu"))
    x = torch.rand(3, 64)
    assert layer.zero_terms is not None
    assert (layer(x) - x @ lw.dequantize().T).abs().max() < 0.02
    layer.zero_terms = None
    assert (layer(x) - x @ lw.dequantize().T).abs().max() > 1.0


def _summary(packed):
    return cpu_kernel_summary(packed, cpu_dense_layers(packed))


def test_fill_lowbit_swaps_what_a_cpu_kernel_takes_and_says_why_not_for_the_rest():
    torch.manual_seed(0)

    def build():
        return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 48), nn.ReLU(), nn.Linear(48, 16))

    model = build()
    packed = {"0": _fp16_scales(rtn_quantize(model[0].weight, 4, 32)),
              "2": _fp16_scales(rtn_quantize(model[2].weight, 4, 48)),     # 48 columns: no tinygemm group fits
              "4": _fp16_scales(rtn_quantize(model[4].weight, 8, -1))}
    tensors = {k: v for k, v in model.state_dict().items() if k.rpartition(".")[0] not in packed or "bias" in k}
    for name, lw in packed.items():
        model.get_submodule(name).weight.data = lw.dequantize()
    with torch.device("meta"):
        skeleton = build()
    loaded = fill_lowbit(skeleton, packed.items(), tensors, make_layer=cpu_layer)
    x = torch.randn(5, 64)
    with torch.no_grad():
        dense, swapped = model(x), loaded(x)
    assert isinstance(loaded[0], TinygemmLinear) and isinstance(loaded[4], Int8WeightOnlyLinear)
    assert isinstance(loaded[2], nn.Linear) and not any(t.is_meta for t in loaded.state_dict().values())
    assert (swapped - dense).abs().max() <= 0.02 * dense.abs().max()
    with torch.device("meta"):
        skeleton = build()
    with pytest.raises(ValueError, match="disagree on whether layer 2 has a bias"):
        fill_lowbit(skeleton, packed.items(), {k: v for k, v in tensors.items() if k != "2.bias"}, make_layer=cpu_layer)
    assert cpu_dense_layers(packed) == {"2": tinygemm_refusal(packed["2"])}
    kernel, notes = _summary(packed)
    assert "1 of 3 quantized layers dense fp32" in kernel and "must divide both" in notes[-1]
    kernel, notes = _summary({"2": packed["2"]})
    assert kernel.startswith("torch fp32 dense (weights dequantized at load") and "must divide both" in notes[0]
    kernel, _ = _summary({"4": packed["4"]})
    assert kernel == "torch int8 weight-only (aten._weight_int8pack_mm), bf16 activations"


def test_fill_lowbit_refuses_an_artifact_that_lacks_or_adds_a_tensor():
    model = nn.Sequential(nn.Linear(32, 32), nn.LayerNorm(32), nn.Linear(32, 16))
    packed = {"0": _fp16_scales(rtn_quantize(model[0].weight, 4, 32))}
    tensors = {k: v for k, v in model.state_dict().items() if k != "0.weight"}
    with torch.device("meta"):
        skeleton = nn.Sequential(nn.Linear(32, 32), nn.LayerNorm(32), nn.Linear(32, 16))
    with pytest.raises(ValueError, match="lacks tensors of the model: 1.bias"):
        fill_lowbit(skeleton, packed.items(), {k: v for k, v in tensors.items() if k != "1.bias"}, make_layer=cpu_layer)
    with pytest.raises(ValueError, match="holds 3.weight, which the model does not have"):
        fill_lowbit(skeleton, packed.items(), tensors | {"3.weight": torch.zeros(1)}, make_layer=cpu_layer)
    with pytest.raises(ValueError, match="quantizes layer 5, which the model does not have"):
        fill_lowbit(skeleton, {"5": packed["0"]}.items(), tensors, make_layer=cpu_layer)
    with pytest.raises(ValueError, match=r"layer 2 is \[out, in\] = \[32, 32\], the model's is \[16, 32\]"):
        fill_lowbit(skeleton, {"2": packed["0"]}.items(), tensors, make_layer=cpu_layer)


@pytest.mark.parametrize("spec, op", [("rtn", "_weight_int4pack_mm_for_cpu"),
                                      ("gptq:bits=3,group_size=32", "_weight_int4pack_mm_for_cpu"),
                                      ("rtn:bits=8,group_size=-1", "_weight_int8pack_mm"),
                                      ("hqq:group_size=32", "_weight_int4pack_mm_for_cpu"),
                                      ("awq:fold=false,calib_samples=32", "_weight_int4pack_mm_for_cpu")])
def test_torch_cpu_lowbit_rows_run_a_low_bit_kernel_on_the_artifact_integers(spec, op, tmp_path):
    """The reloaded TorchScript of a torch-cpu rtn/gptq row calls the CPU weight-only kernel, and its
    outputs are the dequantized artifact's up to bf16 activations."""
    from quantbench.config import parse_methods
    from quantbench.methods import Context
    from quantbench.formats.lowbit_file import load_lowbit
    from quantbench.runtimes import TorchCPU
    from quantbench.tasks import build_task

    task = build_task("tabular", dataset="digits", hidden=(64, 64), seed=0)
    torch.manual_seed(0)
    model = task.build_model().eval()
    runtime = TorchCPU()
    realized = realize_row(parse_methods(spec)[0], model, Context(task, progress=False), runtime, tmp_path / "row")
    assert op in realized.kernel and "dequantized" not in realized.kernel
    assert realized.details["dense_lowbit_layers"] == [] and realized.details["fp32_kernel_only"] is False
    run = runtime.load(realized.path, task)
    assert op in str(run.module.graph)
    x = task.splits.x_test[:64]
    with torch.no_grad():
        dense = load_lowbit(realized.path, task.build_model())(x)
    assert (run(x) - dense).abs().max() <= 0.02 * dense.abs().max()


def test_a_torch_without_the_cpu_kernel_keeps_layers_dense_and_says_why(monkeypatch):
    """quantbench supports torch builds older than these kernels: rows then run dequantized weights."""
    from quantbench.kernels import weight_only

    monkeypatch.setitem(weight_only.CPU_KERNELS, "int4-weight-only", "_no_such_int4_kernel")
    lw = _fp16_scales(rtn_quantize(torch.randn(16, 64), 4, 32))
    assert "has no aten._no_such_int4_kernel (a newer torch has)" in weight_only.cpu_kernel_refusal(lw)
    kernel, notes = _summary({"0": lw})
    assert kernel.startswith("torch fp32 dense (weights dequantized at load") and "_no_such_int4_kernel" in notes[0]


def test_fill_lowbit_casts_the_rest_of_the_model_but_not_the_kernel_modules_it_swaps_in():
    """As on CUDA (bf16 runtime): plain tensors are cast, a swapped-in module keeps its own dtypes
    (int8 weight-only keeps float32 scales on the GPU); the bias it is given is already cast."""
    model = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 16))
    packed = {"0": _fp16_scales(rtn_quantize(model[0].weight, 8, -1))}
    tensors = {k: v for k, v in model.state_dict().items() if k != "0.weight"}
    given = {}

    class Kernel(nn.Module):
        def __init__(self, bias):
            super().__init__()
            self.register_buffer("scales", torch.ones(32, dtype=torch.float32))
            given["bias"] = bias

    with torch.device("meta"):
        skeleton = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 16))
    loaded = fill_lowbit(skeleton, packed.items(), tensors, make_layer=lambda name, lw, bias: Kernel(bias),
                         dtype=torch.bfloat16)
    assert loaded[0].scales.dtype == torch.float32 and given["bias"].dtype == torch.bfloat16
    assert loaded[2].weight.dtype == torch.bfloat16 and loaded[2].bias.dtype == torch.bfloat16
