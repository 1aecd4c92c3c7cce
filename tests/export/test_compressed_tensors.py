"""compressed-tensors ``pack-quantized`` folders, read back by the compressed-tensors package itself: its
config model accepts the quantization_config, its decompressor gives every layer's dequantized weight
exactly, and transformers (dequantizing through it) gives the row's logits."""
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from quantbench.formats.lowbit_file import read_lowbit

from .test_gptq_folder import artifact_model, assert_fp16_close, logits, row

transformers = pytest.importorskip("transformers")
ct_quantization = pytest.importorskip("compressed_tensors.quantization")
PackedQuantizationCompressor = pytest.importorskip("compressed_tensors.compressors").PackedQuantizationCompressor


def exported(results, method) -> Path:
    return Path(row(results, method).details["export"]["compressed-tensors"]["folder"])


def decompress_layers(folder: Path) -> dict[str, torch.Tensor]:
    """Each quantized layer's weight as compressed-tensors' own pack-quantized decompressor gives it."""
    config = ct_quantization.QuantizationConfig.model_validate(
        json.loads((folder / "config.json").read_text())["quantization_config"])
    scheme = config.config_groups["group_0"]
    tensors = load_file(str(folder / "model.safetensors"))
    names = [k.removesuffix(".weight_packed") for k in tensors if k.endswith(".weight_packed")]
    return {name: PackedQuantizationCompressor.decompress(
        {k.removeprefix(name + "."): v for k, v in tensors.items() if k.startswith(name + ".weight_")}, scheme)["weight"]
        for name in names}


@pytest.mark.parametrize("method", ["rtn:group_size=32", "rtn:group_size=32,sym=true"])
def test_decompressor_gives_the_artifacts_dequantized_weights(exported_llama, method):
    results, artifacts, _ = exported_llama
    folder = exported(results, method)
    packed, _ = read_lowbit(artifacts / f"{folder.parent.name}.safetensors")
    weights = decompress_layers(folder)
    assert weights.keys() == packed.keys()
    for name, lw in packed.items():  # fp16 scale x small integer: the fp16 product is exact rounding of fp32's
        assert torch.equal(weights[name], lw.dequantize().half()), name


def test_layers_compressed_tensors_cannot_hold_are_stored_dequantized(exported_llama):
    """Partial groups (and act-order's permuted groups): dense weights, listed in ignore and in the row; a row
    with no layer it can hold is not exported, and says why."""
    results, _, _ = exported_llama
    info = row(results, "rtn").details["export"]["compressed-tensors"]
    config = json.loads((Path(info["folder"]) / "config.json").read_text())["quantization_config"]
    assert "model.layers.0.self_attn.q_proj" in info["dequantized_layers"]
    assert set(info["dequantized_layers"]) <= set(config["ignore"])
    assert "model.layers.0.mlp.down_proj" not in info["dequantized_layers"]  # in_features 128: group 128 divides it
    act_order = row(results, "gptq:group_size=32,act_order=true,calib_samples=8")
    assert "compressed-tensors" not in act_order.details["export"]
    assert any(n.startswith("not exported as compressed-tensors: ") for n in act_order.notes)


@pytest.mark.parametrize("method", ["rtn:group_size=32", "rtn"])
def test_transformers_loads_the_folder_with_the_rows_logits(exported_llama, tiny_llama_dir, method):
    """Through compressed-tensors' decompression at load (``dequantize=True``: transformers 5.24's compressed
    route builds unpacked zero points, which asymmetric packed checkpoints do not match)."""
    results, artifacts, _ = exported_llama
    folder = exported(results, method)
    model, info = transformers.AutoModelForCausalLM.from_pretrained(
        str(folder), quantization_config=transformers.CompressedTensorsConfig(dequantize=True), output_loading_info=True)
    assert not (info["missing_keys"] or info["unexpected_keys"] or info["mismatched_keys"]), info
    assert_fp16_close(logits(model), logits(artifact_model(artifacts / f"{folder.parent.name}.safetensors",
                                                           tiny_llama_dir)))
