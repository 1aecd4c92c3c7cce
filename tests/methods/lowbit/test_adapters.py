"""Where the blocks are (adapters.py) and which layers are quantized (layers.py), on tiny models."""

import pytest
import torch
from torch import nn

transformers = pytest.importorskip("transformers")

from quantbench.methods.lowbit.adapters import SEQUENTIAL_GROUPS, find_blocks, split_sequential_groups
from quantbench.formats.layout import get_weight_out_in, set_weight_out_in
from quantbench.methods.lowbit.layers import (
    find_quantizable_layers,
    is_quantizable,
)

VOCAB, HIDDEN, LAYERS, HEADS, INTERMEDIATE = 128, 64, 2, 4, 128


def _decoder_kwargs(**extra):
    return dict(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                intermediate_size=INTERMEDIATE, bos_token_id=0, eos_token_id=0, pad_token_id=0, **extra)


def _configs():
    t = transformers
    return {
        "llama": (t.LlamaForCausalLM, t.LlamaConfig(**_decoder_kwargs(num_key_value_heads=HEADS))),
        "qwen2": (t.Qwen2ForCausalLM, t.Qwen2Config(**_decoder_kwargs(num_key_value_heads=2))),
        "mistral": (t.MistralForCausalLM, t.MistralConfig(**_decoder_kwargs(num_key_value_heads=2))),
        "opt": (t.OPTForCausalLM, t.OPTConfig(
            vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
            ffn_dim=INTERMEDIATE, word_embed_proj_dim=HIDDEN, max_position_embeddings=64,
            bos_token_id=0, eos_token_id=0, pad_token_id=0)),
        "gpt2": (t.GPT2LMHeadModel, t.GPT2Config(
            vocab_size=VOCAB, n_embd=HIDDEN, n_layer=LAYERS, n_head=HEADS, n_inner=INTERMEDIATE,
            n_positions=64, bos_token_id=0, eos_token_id=0)),
        "bert": (t.BertModel, t.BertConfig(vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                                           num_attention_heads=HEADS, intermediate_size=INTERMEDIATE,
                                           max_position_embeddings=64, pad_token_id=0)),
        # Qwen2 with one full- and one sliding-window layer: the blocks get different masks
        "qwen2-mixed": (t.Qwen2ForCausalLM, t.Qwen2Config(**_decoder_kwargs(
            num_key_value_heads=2, use_sliding_window=True, max_window_layers=1, sliding_window=5))),
    }


FAMILIES = ("llama", "qwen2", "mistral", "opt", "gpt2", "bert")
BLOCK_PATHS = {"llama": "model.layers", "qwen2": "model.layers", "mistral": "model.layers",
               "opt": "model.decoder.layers", "gpt2": "transformer.h", "bert": "encoder.layer"}


def tiny_model(family: str, seed: int = 0) -> nn.Module:
    """A randomly initialised tiny model of ``family`` in eval mode (no download)."""
    cls, config = _configs()[family]
    torch.manual_seed(seed)
    return cls(config).eval()


# ---- blocks ----------------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_find_blocks_of_each_family(family):
    blocks, path = find_blocks(tiny_model(family))
    assert path == BLOCK_PATHS[family]
    assert isinstance(blocks, nn.ModuleList) and len(blocks) == LAYERS


def test_find_blocks_of_bare_and_headed_variants():
    config = transformers.LlamaConfig(**_decoder_kwargs())
    assert find_blocks(transformers.LlamaModel(config))[1] == "layers"
    bert = _configs()["bert"][1]
    assert find_blocks(transformers.BertForSequenceClassification(bert))[1] == "bert.encoder.layer"


def test_plain_models_have_no_blocks():
    mlp = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    assert find_blocks(mlp) is None
    assert find_blocks(nn.Module()) is None


@pytest.mark.parametrize(
    "family, expected",
    [
        ("llama", [["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"], ["self_attn.o_proj"],
                   ["mlp.gate_proj", "mlp.up_proj"], ["mlp.down_proj"]]),
        ("opt", [["self_attn.k_proj", "self_attn.v_proj", "self_attn.q_proj"], ["self_attn.out_proj"],
                 ["fc1"], ["fc2"]]),
        ("gpt2", [["attn.c_attn"], ["attn.c_proj"], ["mlp.c_fc"], ["mlp.c_proj"]]),
        ("bert", [["attention.self.query", "attention.self.key", "attention.self.value"],
                  ["attention.output.dense"], ["intermediate.dense"], ["output.dense"]]),
    ],
)
def test_true_sequential_groups_per_family(family, expected):
    blocks, _ = find_blocks(tiny_model(family))
    names = [name for name, m in blocks[0].named_modules() if is_quantizable(m)]
    assert split_sequential_groups(names) == expected


def test_unknown_layer_names_come_last_in_module_order():
    names = ["router", "mlp.down_proj", "self_attn.q_proj", "extra"]
    assert split_sequential_groups(names, SEQUENTIAL_GROUPS) == [["self_attn.q_proj"], ["mlp.down_proj"],
                                                                  ["router", "extra"]]


# ---- layer selection -------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_every_block_linear_is_selected_and_the_head_skipped(family):
    model = tiny_model(family)
    selection = find_quantizable_layers(model)
    _, path = find_blocks(model)
    in_blocks = [n for n, m in model.named_modules() if is_quantizable(m) and n.startswith(path + ".")]
    assert len(in_blocks) == LAYERS * (4 if family == "gpt2" else 6 if family in ("opt", "bert") else 7)
    assert set(in_blocks) <= set(selection.layers)
    skipped = dict(selection.skipped)
    if family != "bert":
        assert "lm_head" not in selection.layers and skipped["lm_head"].startswith("output head")
    assert not any(reason.startswith("output head") for name, reason in skipped.items() if name != "lm_head")


def test_plain_model_skips_last_linear_and_reports_unsupported_types():
    cnn = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(36, 16), nn.ReLU(), nn.Linear(16, 3))
    selection = find_quantizable_layers(cnn)
    assert list(selection.layers) == ["2"]
    skipped = dict(selection.skipped)
    assert skipped["0"] == "type not supported by weight-only low-bit (Conv2d)"
    assert skipped["4"].startswith("output head")
    assert list(find_quantizable_layers(cnn, skip_head=False).layers) == ["2", "4"]


def test_skip_and_only_patterns():
    model = tiny_model("llama")
    selection = find_quantizable_layers(model, skip=("*.mlp.*",), only=("model.layers.0.*",))
    assert list(selection.layers) == [f"model.layers.0.self_attn.{p}_proj" for p in "qkvo"]
    skipped = dict(selection.skipped)
    assert skipped["model.layers.0.mlp.up_proj"] == "matches skip pattern '*.mlp.*'"
    assert skipped["model.layers.1.self_attn.q_proj"] == "matches no 'only' pattern"
    assert skipped["model.embed_tokens"] == "type not supported by weight-only low-bit (Embedding)"


def test_tied_head_is_never_quantized():
    config = transformers.LlamaConfig(**_decoder_kwargs(tie_word_embeddings=True))
    model = transformers.LlamaForCausalLM(config)
    assert model.lm_head.weight is model.model.embed_tokens.weight
    selection = find_quantizable_layers(model, skip_head=False)
    assert "lm_head" not in selection.layers
    assert dict(selection.skipped)["lm_head"] == "weight tied to 'model.embed_tokens'"


def test_a_weight_shared_by_two_layers_is_quantized_by_neither():
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 8), torch.nn.Linear(8, 8),
                                torch.nn.Linear(8, 2))
    model[2].weight = model[0].weight  # the first holder would be quantized, and the second left without it
    selection = find_quantizable_layers(model)
    assert list(selection.layers) == ["3"]
    skipped = dict(selection.skipped)
    assert skipped["0"] == "weight tied to '2'" and skipped["2"] == "weight tied to '0'"


def test_conv1d_weight_accessors_transpose():
    conv = transformers.pytorch_utils.Conv1D(nf=6, nx=4)  # weight stored [in=4, out=6]
    x = torch.randn(3, 4)
    w = get_weight_out_in(conv)
    assert w.shape == (6, 4) and torch.allclose(conv(x), x @ w.T + conv.bias)
    new = torch.randn(6, 4)
    set_weight_out_in(conv, new)
    assert conv.weight.shape == (4, 6) and torch.equal(conv.weight, new.T)
    linear = nn.Linear(4, 6)
    set_weight_out_in(linear, new)
    assert torch.equal(get_weight_out_in(linear), new)
    with pytest.raises(ValueError, match=r"\[out, in\]"):
        set_weight_out_in(conv, new.T)
