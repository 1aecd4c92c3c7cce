"""The third-party round trip: a tiny Llama's rtn and gptq rows exported with ``--export`` load through
transformers' GPTQ integration (optimum + gptqmodel's torch backend, on CPU) with every key used, and give
the logits of quantbench's own model of the artifact within fp16 tolerance. scripts/setup.sh installs
gptqmodel (without its torch pin), optimum and compressed-tensors: these tests never skip for them."""
import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from quantbench import CompareSpec, compare
from quantbench.export.gptq import export_gptq
from quantbench.formats.lowbit_file import load_lowbit
from quantbench.tasks.hf import model_builder

transformers = pytest.importorskip("transformers")
IDS = torch.arange(2 * 24).reshape(2, 24) * 37 % 1000


def load_gptq(folder):
    """The folder through transformers' GPTQ integration on gptqmodel's torch backend: (model, loading info)."""
    config = transformers.GPTQConfig(bits=4, backend="torch")
    return transformers.AutoModelForCausalLM.from_pretrained(str(folder), quantization_config=config,
                                                             output_loading_info=True)


def logits(model) -> torch.Tensor:
    with torch.inference_mode():
        return model(input_ids=IDS).logits.float()


def assert_fp16_close(got: torch.Tensor, want: torch.Tensor) -> None:
    """Equal within fp16 rounding of the logits' scale (gptqmodel's kernels compute in fp16)."""
    tolerance = 2e-3 * max(1.0, want.abs().max().item())
    error = (got - want).abs().max().item()
    assert error <= tolerance, f"max |logit difference| {error:.2e} > {tolerance:.2e}"


def artifact_model(artifact, model_dir, kind="causal-lm"):
    """quantbench's own model of the artifact: every layer dequantized in fp32 (the row's integers)."""
    return load_lowbit(artifact, model_builder(model_dir, kind).skeleton())


def row(results, method):
    return next(r for r in results.rows if r.method == method)


@pytest.mark.parametrize("method, checkpoint_format", [
    ("rtn:group_size=32", "gptq_v2"), ("gptq:group_size=32,act_order=true,calib_samples=8", "gptq_v2"),
    ("rtn:group_size=32,sym=true", "gptq"), ("rtn", "gptq_v2")])
def test_exported_rows_load_as_gptq_with_the_rows_logits(exported_llama, tiny_llama_dir, method, checkpoint_format):
    results, artifacts, _ = exported_llama
    r = row(results, method)
    assert r.status == "ok", r.error
    folder = r.details["export"]["gptq"]["folder"]
    model, info = load_gptq(folder)
    assert not (info["missing_keys"] or info["unexpected_keys"] or info["mismatched_keys"]), info
    assert type(model.model.layers[0].mlp.down_proj).__name__ == "TorchLinear"  # gptqmodel's layer, not nn.Linear
    model_folder = Path(folder)
    config = json.loads((model_folder / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "gptq"
    assert config["quantization_config"]["checkpoint_format"] == checkpoint_format
    with safe_open(str(model_folder / "model.safetensors"), framework="pt") as f:
        assert f.metadata()["format"] == "pt"
    assert (model_folder / "tokenizer.json").exists() and (model_folder / "generation_config.json").exists()
    artifact = artifacts / f"{model_folder.parent.name}.safetensors"
    assert_fp16_close(logits(model), logits(artifact_model(artifact, tiny_llama_dir)))


def test_partial_groups_are_named_and_load_as_they_are(exported_llama, tiny_llama_dir):
    """Group size 128 on in_features 64: one partial group, which gptqmodel's AVX-512 kernel refuses. The layers
    are named in the row and the README, and the config asks for the torch backend, so a plain
    ``from_pretrained(folder)`` (no option) loads the folder and gives the row's logits."""
    results, artifacts, _ = exported_llama
    r = row(results, "rtn")
    folder = Path(r.details["export"]["gptq"]["folder"])
    partial = r.details["export"]["gptq"]["partial_group_layers"]
    assert "model.layers.0.self_attn.q_proj" in partial and "model.layers.0.mlp.down_proj" not in partial
    assert "model.layers.0.self_attn.q_proj" in (folder / "README.md").read_text()
    assert any("does not divide in_features" in note and "q_proj" in note for note in r.notes)
    model, info = transformers.AutoModelForCausalLM.from_pretrained(str(folder), output_loading_info=True)
    assert not (info["missing_keys"] or info["unexpected_keys"] or info["mismatched_keys"]), info
    assert_fp16_close(logits(model), logits(artifact_model(artifacts / f"{folder.parent.name}.safetensors",
                                                           tiny_llama_dir)))


def test_v2_zero_points_read_as_v1_give_other_logits(exported_llama, tiny_llama_dir, tmp_path):
    """What checkpoint_format guards against (vllm #26343): the same folder said to be v1 is read one zero
    step off, and the logits leave the tolerance that the right format meets."""
    results, artifacts, _ = exported_llama
    folder = Path(row(results, "rtn:group_size=32").details["export"]["gptq"]["folder"])
    misread = tmp_path / "misread"
    misread.mkdir()
    for path in folder.iterdir():
        (misread / path.name).write_bytes(path.read_bytes())
    config = json.loads((misread / "config.json").read_text())
    config["quantization_config"] |= {"checkpoint_format": "gptq", "format": "gptq"}
    (misread / "config.json").write_text(json.dumps(config))
    want = logits(artifact_model(artifacts / f"{folder.parent.name}.safetensors", tiny_llama_dir))
    with pytest.raises(AssertionError, match="max \\|logit difference\\|"):
        assert_fp16_close(logits(load_gptq(misread)[0]), want)


def test_large_models_are_sharded_with_an_index(exported_llama, tiny_llama_dir, tmp_path):
    results, artifacts, _ = exported_llama
    artifact = artifacts / "rtn_group_size=32_torch-cpu.safetensors"
    export_gptq(artifact, model_builder(tiny_llama_dir, "causal-lm"), tmp_path, max_shard_bytes=2_000_000)
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    shards = set(index["weight_map"].values())
    assert len(shards) > 2 and not (tmp_path / "model.safetensors").exists()
    model, info = load_gptq(tmp_path)
    assert not (info["missing_keys"] or info["unexpected_keys"]), info
    assert_fp16_close(logits(model), logits(artifact_model(artifact, tiny_llama_dir)))


def test_fp32_rows_are_not_exported(exported_llama):
    results, _, export = exported_llama
    assert "export" not in row(results, "fp32").details
    assert not (export / "fp32_torch-cpu").exists()


def test_an_encoder_loads_through_automodel(tiny_bert_dir, tmp_path):
    """BERT's blocks (encoder.layer) are named in the config, as transformers' GPTQ loader does not find them
    itself; its pooler, outside the blocks, is stored dequantized and the row says so."""
    results = compare(CompareSpec(task="embedding", model=tiny_bert_dir, methods="rtn:group_size=32", eval_samples=32,
                                  batch_sizes=(1,), memory=False, progress=False, out=str(tmp_path),
                                  export=str(tmp_path / "export")))
    r = results.rows[0]
    assert r.status == "ok", r.error
    assert r.details["export"]["gptq"]["dequantized_layers"] == ["pooler.dense"]
    assert any("pooler.dense stored dequantized" in note for note in r.notes)
    model, info = transformers.AutoModel.from_pretrained(
        r.details["export"]["gptq"]["folder"], quantization_config=transformers.GPTQConfig(bits=4, backend="torch"),
        output_loading_info=True)
    assert not (info["missing_keys"] or info["unexpected_keys"] or info["mismatched_keys"]), info
    reference = artifact_model(tmp_path / "artifacts" / "rtn_group_size=32_torch-cpu.safetensors", tiny_bert_dir,
                               "encoder")
    with torch.inference_mode():
        assert_fp16_close(model(input_ids=IDS).last_hidden_state, reference(input_ids=IDS).last_hidden_state)
