"""A comparison holds one dense copy of the weights: quantizers that share the fp32 model's storage, the
driver releasing each block's dense weights, and the baseline row streamed into the fp32 model."""
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from quantbench.config import parse_methods
from quantbench.formats.lowbit_file import save_lowbit, stream_dense_into
from quantbench.methods import Context, apply_method

transformers = pytest.importorskip("transformers")

_PROBE = r"""
import json, sys, torch, transformers
from types import SimpleNamespace
from quantbench.config import parse_methods
from quantbench.methods import Context
def llama(hidden, blocks):
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=512, hidden_size=hidden, intermediate_size=4 * hidden,
                                      num_hidden_layers=blocks, num_attention_heads=4, num_key_value_heads=4,
                                      max_position_embeddings=64)
    return transformers.LlamaForCausalLM(config).eval()
def rss(key):
    return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith(key))
ids = torch.randint(0, 512, (4, 64))
task = SimpleNamespace(name="lm", calibration_inputs=lambda n, batch_size=8: [{"input_ids": ids[:n]}])
ctx = Context(task=task, progress=False, release_dense=sys.argv[2] == "release")
ctx.quantize(parse_methods(sys.argv[1])[0], llama(32, 1))  # the process's first-call costs (libraries, threads)
ctx.forget()
model = llama(256, 32)
open("/proc/self/clear_refs", "w").write("5")
base = rss("VmRSS:")
quantized, _ = ctx.quantize(parse_methods(sys.argv[1])[0], model)
dense = sum(p.numel() * 4 for p in model.parameters())
block = sum(p.numel() * 4 for p in model.model.layers[0].parameters())
hessian = 4 * max(layer.in_features for layer in model.model.layers[0].modules() if hasattr(layer, "in_features")) ** 2
print(json.dumps({"growth": rss("VmHWM:") - base, "dense": dense, "block": block, "hessian": hessian,
                  "codes": sum(lw.q.numel() for lw in quantized.format.layers.values())}))
"""


def _quantize_growth(method: str, release: bool) -> dict:
    """RSS growth of quantizing a 32-block Llama in a fresh process. glibc's allocator keeps freed blocks
    under its (rising) mmap threshold in the heap, whose RSS then says more about fragmentation than about
    what the code holds: a fixed threshold gives large tensors back when they are freed."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    done = subprocess.run([sys.executable, "-c", _PROBE, method, "release" if release else "keep"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc/self/clear_refs")
@pytest.mark.parametrize("method", ["rtn", "gptq:calib_samples=4"])
def test_quantizing_a_multi_block_model_stays_under_one_dense_copy_plus_a_block(method):
    lean = _quantize_growth(method, release=True)
    # the model is resident before; quantizing adds its codes (1 byte a weight) and a working set that does not
    # grow with depth (a block's dense weights, its Hessians, GPTQ's matrices), never a second dense copy
    assert lean["growth"] < lean["dense"], lean
    assert lean["growth"] - lean["codes"] < 2 * lean["block"] + 8 * lean["hessian"], lean
    kept = _quantize_growth(method, release=False)  # dequantized weights kept: a dense copy of the layers
    assert kept["growth"] > lean["growth"] + 0.5 * lean["dense"], (kept, lean)


def test_shared_weights_quantizers_leave_the_fp32_model_unchanged(tiny_llama):
    before = {k: v.clone() for k, v in tiny_llama.state_dict().items()}
    task = SimpleNamespace(name="lm", calibration_inputs=lambda n, batch_size=8: [
        {"input_ids": torch.randint(0, 100, (2, 16))}])
    for spec in ("fp32", "rtn", "gptq:calib_samples=2", "hqq"):
        ctx = Context(task=task, progress=False, release_dense=True)
        quantized, _ = ctx.quantize(parse_methods(spec)[0], tiny_llama)
        assert all(torch.equal(v, before[k]) for k, v in tiny_llama.state_dict().items()), spec
        if spec != "fp32":
            layer = quantized.module.get_submodule(next(iter(quantized.format.layers)))
            assert layer.weight.is_meta  # released: its codes are in the format
    full = apply_method(parse_methods("rtn")[0], tiny_llama, Context(task=task, progress=False))
    assert not any(p.is_meta for p in full.module.parameters())  # outside the pipeline: a whole model


def test_streaming_the_dense_artifact_replaces_every_tensor_and_keeps_ties(tmp_path):
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 10))
    model[1].weight = model[0].weight  # tied, stored once
    save_lowbit(model, {}, {}, tmp_path / "m.safetensors")
    copy = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 10))
    copy[1].weight = copy[0].weight
    old = copy[0].weight
    stream_dense_into(copy, tmp_path / "m.safetensors")
    assert copy[0].weight is copy[1].weight and copy[0].weight is not old
    assert all(torch.equal(a, b) for a, b in zip(copy.state_dict().values(), model.state_dict().values()))
    with pytest.raises(ValueError, match="the model's is"):
        stream_dense_into(nn.Sequential(nn.Embedding(10, 5), nn.Linear(5, 10)), tmp_path / "m.safetensors")


@pytest.fixture
def tiny_llama():
    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=32)
    return transformers.LlamaForCausalLM(config).eval()


def test_a_quantization_reused_by_onnxruntime_gets_its_released_layers_back(tmp_path):
    pytest.importorskip("onnxruntime")
    from quantbench.api import compare
    from quantbench.spec import CompareSpec

    results = compare(CompareSpec(hidden=(64, 64), methods="fp32,rtn", runtime="torch-cpu,onnxruntime",
                                  batch_sizes=(1,), memory=False, progress=False, cache_dir=str(tmp_path)))
    ort = next(r for r in results.rows if r.method == "rtn" and r.runtime == "onnxruntime")
    assert ort.status == "ok", ort.error
    assert any("dequantized again" in note for note in ort.notes)
