"""rtn and gptq as quantbench methods: one packed format, exact reload, honest sizes."""

import pytest
import torch

from quantbench.config import parse_methods
from quantbench.methods import Context, apply_method
from quantbench.formats.lowbit_file import load_lowbit
from quantbench.runtimes import TorchCPU


def quantize(spec, task, model):
    return apply_method(parse_methods(spec)[0], model, Context(task, progress=False))


@pytest.mark.parametrize("spec", ["rtn:bits=2", "rtn:bits=3,group_size=32", "rtn", "rtn:bits=8,sym=true",
                                  "gptq:bits=3", "gptq:act_order=true,static_groups=true,group_size=32",
                                  "hqq", "hqq:bits=3,group_size=32", "awq", "awq:fold=false,bits=3"])
def test_reload_gives_bit_identical_weights_and_outputs(spec, mlp, tmp_path):
    task, model = mlp
    q = quantize(spec, task, model)
    path = TorchCPU().save(q, task, tmp_path / "art")
    assert path.suffix == ".safetensors"
    reloaded = load_lowbit(path, task.build_model())
    for (name, a), (_, b) in zip(q.module.state_dict().items(), reloaded.state_dict().items()):
        assert torch.equal(a, b), name
    x = task.splits.x_test
    with torch.no_grad():
        assert torch.equal(q.module(x), reloaded(x))


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_saved_size_is_within_2_percent_of_theory(bits, mlp, tmp_path):
    """Packed bytes equal the GPTQ layout worked out by hand (qweight K*N*b/8, fp16 scales and
    b-bit zeros per group and column, int32 g_idx), and the file is what was reported."""
    task, model = mlp
    q = quantize(f"rtn:bits={bits},group_size=64", task, model)
    path = TorchCPU().save(q, task, tmp_path / "art")
    size = q.details["size_breakdown"]
    by_hand = sum(k * n * bits // 8 + (k // 64) * n * 2 + (k // 64) * n * bits // 8 + 4 * k
                  for k, n in [(64, 256), (256, 256)])  # layers 0 and 2; the head stays fp32
    assert size["packed_bytes"] == by_hand
    assert abs(size["packed_bytes"] / size["theoretical_bytes"] - 1) < 0.02
    header = 8 + int.from_bytes(path.read_bytes()[:8], "little")  # safetensors: 8-byte length, then the header
    assert size["metadata_bytes"] == header < 4096  # so the file is exactly packed + other tensors + header


def test_head_is_kept_and_reported(mlp):
    task, model = mlp
    q = quantize("rtn", task, model)
    assert set(q.format.layers) == {"0", "2"}
    assert any("kept fp32" in n and "4" in n for n in q.notes)


def test_gptq_beats_rtn_on_the_trained_mlp_at_3_bits(mlp):
    task, model = mlp
    x = task.splits.x_test
    with torch.no_grad():
        ref = model(x)
        errors = {m: (quantize(f"{m}:bits=3", task, model).module(x) - ref).pow(2).mean().item() for m in ("rtn", "gptq")}
    assert errors["gptq"] < errors["rtn"]


def test_gptq_records_damping(mlp):
    task, model = mlp
    q = quantize("gptq:damp=0.05", task, model)
    assert q.details["max_damp_used"] == 0.05  # well-conditioned Hessians: no retry raised it
    assert [info["damp_used"] for info in q.details["layers"].values()] == [0.05, 0.05]
    assert not any("Cholesky failed" in n for n in q.notes)


def test_skip_pattern_keeps_a_layer(mlp):
    task, model = mlp
    q = quantize("rtn:skip=0", task, model)
    assert set(q.format.layers) == {"2"}


def test_bad_options_are_user_errors():
    from quantbench.errors import UserError

    with pytest.raises(UserError, match="choose from: 2, 3, 4, 8"):
        parse_methods("rtn:bits=5")
    with pytest.raises(UserError, match="group_size"):
        parse_methods("gptq:group_size=0")


def test_gpt2_conv1d_artifact_round_trip(tmp_path):
    """GPT-2 stores Conv1D weights [in, out] and ties lm_head to the embeddings."""
    transformers = pytest.importorskip("transformers")
    from quantbench.methods.lowbit.api import RTNConfig, _rtn_layer
    from quantbench.formats.lowbit_file import save_lowbit
    from quantbench.methods.lowbit.driver import quantize_model
    from quantbench.methods.lowbit.layers import find_quantizable_layers

    config = transformers.GPT2Config(vocab_size=96, n_embd=32, n_layer=2, n_head=2, n_positions=32)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config).eval()
    selection = find_quantizable_layers(model)
    rtn = RTNConfig(bits=4, group_size=16)
    done = quantize_model(model, [], lambda n, w, h: _rtn_layer(rtn, n, w, h), needs_hessian=False,
                          layers=selection.layers, progress=False)
    path = tmp_path / "gpt2.safetensors"
    save_lowbit(model, {n: lw for n, (lw, _) in done.items()}, rtn.format_config(), path)
    reloaded = load_lowbit(path, transformers.GPT2LMHeadModel(config))
    ids = torch.randint(0, 96, (2, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(model(ids).logits, reloaded(ids).logits)
    assert reloaded.lm_head.weight.data_ptr() == reloaded.transformer.wte.weight.data_ptr()
