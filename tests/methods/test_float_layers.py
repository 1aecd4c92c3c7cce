"""The int8 methods on models with layers they do not convert (an embedding, a Conv1d, norms): no error,
and every layer left in float named in the row's notes with the reason."""
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from quantbench.config import parse_methods
from quantbench.methods import Context, apply_method
from quantbench.methods.int8_modules import float_layers
from quantbench.tasks import build_task
from quantbench.tasks.base import Task, split_arrays

INT8_METHODS = ["ptq-dynamic", "ptq-static", "qat:epochs=1"]


class TokenNet(nn.Module):
    """Token ids (as floats, as a table holds them) -> Embedding -> Conv1d -> LayerNorm -> Linear."""

    def __init__(self, vocab=16, width=8, length=6, classes=4):
        super().__init__()
        self.emb = nn.Embedding(vocab, width)
        self.conv = nn.Conv1d(width, width, 3, padding=1)
        self.norm = nn.LayerNorm(width)
        self.fc = nn.Linear(width * length, classes)

    def forward(self, x):
        h = self.conv(self.emb(x.long()).transpose(1, 2)).transpose(1, 2)
        return self.fc(self.norm(h).flatten(1))


@pytest.fixture(scope="module")
def token_task():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 16, size=(120, 6)).astype(np.float32)
    task = Task("tokens", "tokens", split_arrays(x, (x[:, 0] % 4).astype(np.int64), 0), 4, TokenNet)
    torch.manual_seed(0)
    return task, TokenNet().eval()


def _named(notes: list[str], name: str, kind: str) -> list[str]:
    return [n for n in notes if "stay fp32" in n and f"{name} ({kind})" in n]


@pytest.mark.parametrize("method", INT8_METHODS)
def test_embedding_kept_float_and_named_with_the_reason(method, token_task):
    task, model = token_task
    q = apply_method(parse_methods(method)[0], model, Context(task, progress=False))
    assert type(q.module.emb) is nn.Embedding
    assert any("per_channel_affine_float_qparams" in n for n in _named(q.notes, "emb", "Embedding"))
    with torch.no_grad():
        assert q.module(task.splits.x_test).shape == (len(task.splits.x_test), 4)


@pytest.mark.parametrize("method", INT8_METHODS)
def test_every_layer_left_in_float_is_named(method, token_task):
    task, model = token_task
    q = apply_method(parse_methods(method)[0], model, Context(task, progress=False))
    left = float_layers(q.module)
    assert left
    for name, m in left:
        assert _named(q.notes, name, type(m).__name__), (name, q.notes)


def test_dynamic_names_conv_and_norm_with_its_reason(token_task):
    task, model = token_task
    q = apply_method(parse_methods("ptq-dynamic")[0], model, Context(task, progress=False))
    for name, kind in [("conv", "Conv1d"), ("norm", "LayerNorm")]:
        assert any("nn.Linear only" in n for n in _named(q.notes, name, kind))


@pytest.mark.parametrize("method, left", [("ptq-dynamic", {("emb", "Gather"), ("conv", "Conv"),
                                                           ("norm", "LayerNormalization")}),
                                          ("ptq-static", {("emb", "Gather"), ("norm", "LayerNormalization")})])
def test_onnxruntime_quantizers_name_the_nodes_they_leave(method, left, token_task, tmp_path):
    pytest.importorskip("onnxruntime")
    from quantbench.runtimes import OnnxRuntimeCPU

    task, model = token_task
    ctx = Context(task, progress=False).for_row(OnnxRuntimeCPU(), Path(tmp_path / "row"))
    q, _ = ctx.quantize(parse_methods(method)[0], model)
    for name, op in left:
        assert _named(q.notes, name, op), (name, q.notes)
    assert not _named(q.notes, "fc", "Gemm")


@pytest.mark.parametrize("fixture, task_name, embedding", [("tiny_bert_dir", "embedding", "embeddings.word_embeddings"),
                                                          ("tiny_llama_dir", "lm", "model.embed_tokens")])
def test_dynamic_on_transformers_names_embeddings_and_norms(fixture, task_name, embedding, request):
    options = {"eval_samples": 8} | ({"seq_len": 16} if task_name == "lm" else {})
    task = build_task(task_name, model=request.getfixturevalue(fixture), **options)
    q = apply_method(parse_methods("ptq-dynamic")[0], task.pretrained, Context(task, progress=False))
    assert _named(q.notes, embedding, "Embedding")
    assert any("Norm" in n for n in q.notes if "stay fp32" in n)
