"""Folding a per-input-channel scale into the producer of a linear layer's input (calibration/fold.py)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from quantbench.methods.calibration.fold import Fold, find_folds, fold_scale, scale_weight_columns


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 4)).eval()


def _positive_scale(n):
    return torch.rand(n) * 4 + 0.1


def test_mlp_folds_each_layer_into_the_previous_linear_through_relu():
    folds = find_folds(_mlp(), ["0", "2", "4"])
    assert folds == {"2": Fold("2", "0", "linear", ("1",)), "4": Fold("4", "2", "linear", ("3",))}
    assert folds["2"].describe() == "0 (Linear rows) through 1"


def test_folding_and_scaling_columns_leaves_outputs_unchanged():
    model, x = _mlp(), torch.randn(32, 8)
    before = model(x)
    for name, fold in find_folds(model, ["2", "4"]).items():
        s = _positive_scale(model.get_submodule(name).in_features)
        fold_scale(model, fold, s)
        scale_weight_columns(model.get_submodule(name), s)
    assert not torch.equal(model[0].weight, _mlp()[0].weight)
    torch.testing.assert_close(model(x), before, atol=1e-5, rtol=1e-5)


class _Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, x):
        h = self.fc1(x)
        return h + self.fc2(h)


def test_producer_output_used_twice_is_not_folded():
    assert find_folds(_Residual(), ["fc2"]) == {}


class _Norm(nn.Module):
    def __init__(self, norm, act=None):
        super().__init__()
        self.norm, self.act, self.fc = norm, act or nn.Identity(), nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(self.act(self.norm(x)))


@pytest.mark.parametrize("norm,kind", [(nn.LayerNorm(8), "layernorm"), (nn.BatchNorm1d(8), "batchnorm")])
def test_norm_affine_folds_exactly(norm, kind):
    torch.manual_seed(1)
    model, x = _Norm(norm).eval(), torch.randn(16, 8)
    with torch.no_grad():
        model.norm.weight.uniform_(0.5, 2)
        model.norm.bias.normal_()
    before = model(x)
    fold = find_folds(model, ["fc"])["fc"]
    assert (fold.producer, fold.kind, fold.path) == ("norm", kind, ("act",))
    s = _positive_scale(8)
    fold_scale(model, fold, s)
    scale_weight_columns(model.fc, s)
    torch.testing.assert_close(model(x), before, atol=1e-5, rtol=1e-5)


def test_non_homogeneous_activation_blocks_the_fold():
    assert find_folds(_Norm(nn.LayerNorm(8), nn.GELU()), ["fc"]) == {}
    assert find_folds(_Norm(nn.LayerNorm(8, elementwise_affine=False)), ["fc"]) == {}


class _Functional(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, x):
        return self.fc2(F.dropout(torch.relu(self.fc1(x)), 0.1, self.training))


def test_functional_ops_on_the_path_are_named_by_node():
    fold = find_folds(_Functional(), ["fc2"])["fc2"]
    assert (fold.producer, fold.path) == ("fc1", ("relu", "dropout"))


class _Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8)
        self.fc3.weight = self.fc1.weight

    def forward(self, x):
        return self.fc3(self.fc2(self.fc1(x)))


def test_tied_weights_are_not_folded():
    assert find_folds(_Tied(), ["fc2", "fc3"]) == {}  # fc1's weight is fc3's too


class _Shared(nn.Module):
    """One LayerNorm feeding q, k, v (as in attention), and one Linear called twice."""

    def __init__(self):
        super().__init__()
        self.norm, self.q, self.k, self.v = nn.LayerNorm(8), nn.Linear(8, 8), nn.Linear(8, 8), nn.Linear(8, 8)
        self.fc, self.out = nn.Linear(8, 8), nn.Linear(8, 8)

    def forward(self, x):
        h = self.norm(x)
        y = self.q(h) + self.k(h) + self.v(h)
        return self.out(self.fc(self.fc(y)))


def test_shared_or_reused_producers_are_not_folded():
    assert find_folds(_Shared(), ["q", "k", "v", "out"]) == {}


class _DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(4, 4), nn.Linear(4, 4)

    def forward(self, x):
        h = self.fc1(x)
        if h.sum() > 0:
            h = h * 2
        return self.fc2(h)


def test_untraceable_model_has_no_folds():
    assert find_folds(_DataDependent(), ["fc2"]) == {}


def test_scale_must_be_positive_and_sized():
    model = _mlp()
    fold = find_folds(model, ["2"])["2"]
    with pytest.raises(ValueError):
        fold_scale(model, fold, torch.ones(5))
    with pytest.raises(ValueError):
        scale_weight_columns(model[2], -torch.ones(16))


@pytest.mark.parametrize("model_dir, expected", [
    ("tiny_llama_dir", {"layers.0.mlp.down_proj": "layers.0.mlp.up_proj",
                        "layers.0.self_attn.o_proj": "layers.0.self_attn.v_proj"}),
    ("tiny_bert_dir", {"encoder.layer.0.attention.output.dense": "encoder.layer.0.attention.self.value"}),
])
def test_transformers_families_fold_what_their_forward_makes_exact(model_dir, expected, request):
    """fx cannot trace these models; the family table folds up -> down and v -> o, and the logits
    stay the same after a random positive scale is folded there."""
    transformers = pytest.importorskip("transformers")
    folder = request.getfixturevalue(model_dir)
    model = transformers.AutoModel.from_pretrained(folder).eval()
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    folds = find_folds(model, names)
    assert {k: v.producer for k, v in folds.items() if ".0." in k} == expected
    assert not any(k.endswith(("q_proj", "k_proj", "query", "intermediate.dense")) for k in folds)
    ids = torch.randint(5, 500, (2, 12))
    with torch.no_grad():
        before = model(input_ids=ids).last_hidden_state
        for name, fold in folds.items():
            s = torch.rand(model.get_submodule(name).in_features) + 0.5
            fold_scale(model, fold, s)
            scale_weight_columns(model.get_submodule(name), s)
        after = model(input_ids=ids).last_hidden_state
    assert torch.allclose(before, after, atol=1e-4, rtol=1e-4)


def test_grouped_query_attention_is_not_folded():
    transformers = pytest.importorskip("transformers")
    config = transformers.LlamaConfig(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                                      num_attention_heads=4, num_key_value_heads=2)
    model = transformers.LlamaModel(config).eval()
    folds = find_folds(model, [n for n, m in model.named_modules() if isinstance(m, nn.Linear)])
    assert set(folds) == {"layers.0.mlp.down_proj"}
