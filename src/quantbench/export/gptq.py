"""A low-bit artifact as a Hugging Face GPTQ folder: what ``AutoModelForCausalLM.from_pretrained``
(transformers' GPTQ integration: optimum + gptqmodel) and ``GPTQModel.load`` load as a GPTQ model.

What the loaders need, and how each is met:
- ``quant_method: "gptq"`` for every integer grid (rtn and gptq alike): the tensors are GPTQ's;
  the algorithm that chose the integers is in ``meta``.
- The loaders replace every linear layer inside the transformer blocks (``block_name_to_quantize``)
  by a GPTQ layer, optionally only those named in ``modules_in_block_to_quantize`` (matched by name
  suffix in every block). A quantized layer outside the blocks, or one not quantized in every block,
  is stored dequantized, and the row says so: otherwise the loader would report its qweight as an
  unexpected key and keep random weights.
- Asymmetric grids are written ``checkpoint_format: "gptq_v2"`` (the zero points themselves):
  format v1 stores zero - 1, cannot hold a zero of 0, and GPTQModel refuses asymmetric v1 files
  that a gptqmodel did not write. Symmetric grids (zero 2**(bits-1)) are written v1, which every
  GPTQ loader reads. A loader that ignores ``checkpoint_format`` reads a v2 file as v1 and is off by
  one step on every zero (vllm #26343): the README line says which format the folder holds.
- Group sizes that do not divide a layer's in_features (a partial last group) load with
  gptqmodel's torch backend; its AVX-512 CPU kernel, Marlin and ExLlama refuse them: such layers
  are named in the row and the README, and the config then asks for ``backend: "torch"``.
"""
import json
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn

from ..errors import Unsupported
from ..formats.gptq_packing import from_gptq_tensors, to_gptq_tensors
from ..formats.layout import in_layer_layout, is_conv1d
from ..formats.lowbit import LowBitWeight
from ..formats.lowbit_file import lowbit_fingerprint, read_lowbit
from ..methods.lowbit.adapters import find_blocks
from .folder import MAX_SHARD_BYTES, Exported, read_folder_tensors, write_model_folder

PRODUCER = "quantbench:0.1.0"


def export_gptq(artifact: Path, builder, folder: Path, max_shard_bytes: int = MAX_SHARD_BYTES) -> Exported:
    """Write the low-bit artifact at ``artifact`` (of ``builder``'s Hugging Face model) as a GPTQ folder."""
    packed, tensors = read_lowbit(artifact)
    check_integer_grids(packed)
    skeleton = builder.skeleton()
    blocks_path, suffixes, outside = gptq_placement(skeleton, packed)
    kept = {name: lw for name, lw in packed.items() if name not in outside}
    if not kept:
        raise Unsupported("no quantized layer inside the transformer blocks, where GPTQ loaders put them")
    config = gptq_config(kept, blocks_path, suffixes) | {"meta": {
        "quantizer": [PRODUCER], "method": _artifact_method(artifact), "lowbit_sha256": lowbit_fingerprint(packed)}}
    tensors = dequantized_into(skeleton, tensors, {name: packed[name] for name in outside})
    for name, lw in kept.items():
        tensors.update({f"{name}.{k}": v for k, v in to_gptq_tensors(lw, config["checkpoint_format"]).items()})
    partial = partial_group_layers(kept)
    exported = Exported(folder, _notes(folder, outside, partial, config["group_size"]),
                        {"checkpoint_format": config["checkpoint_format"], "dequantized_layers": sorted(outside),
                         "partial_group_layers": partial})
    write_model_folder(folder, tensors, builder, config, _readme(config, exported.notes), max_shard_bytes)
    check_gptq_folder(folder, kept, config["checkpoint_format"])
    return exported


def gptq_config(kept: dict[str, LowBitWeight], blocks_path: str, suffixes: list[list[str]] | None) -> dict:
    """The ``quantization_config`` of GPTQ layers ``kept`` (see the module doc for each key)."""
    lw = next(iter(kept.values()))
    sym = all(is_symmetric(lw) for lw in kept.values())
    checkpoint_format = "gptq" if sym else "gptq_v2"
    config = {"quant_method": "gptq", "bits": lw.bits, "group_size": lw.group_size, "sym": sym,
              "desc_act": any(lw.column_order() is not None for lw in kept.values()), "true_sequential": False,
              "checkpoint_format": checkpoint_format, "format": checkpoint_format,
              "block_name_to_quantize": blocks_path, "modules_in_block_to_quantize": suffixes}
    if partial_group_layers(kept):  # the one gptqmodel backend that takes partial groups; the others refuse them
        config["backend"] = "torch"
    return config


def check_integer_grids(packed: dict[str, LowBitWeight]) -> tuple[int, int]:
    """(bits, group_size) shared by every layer; ``Unsupported`` when GPTQ tensors cannot hold the grids."""
    if not packed:
        raise Unsupported("no low-bit layer to export")
    if any(lw.float_zeros or lw.input_scale is not None for lw in packed.values()):
        raise Unsupported("float zero points or an unfolded per-input-channel scale: GPTQ's qzeros and "
                          "qweight cannot hold them")
    grids = {(lw.bits, lw.group_size) for lw in packed.values()}
    if len(grids) > 1:
        raise Unsupported(f"layers of several (bits, group_size) {sorted(grids)}: one GPTQ config holds one")
    return grids.pop()


def gptq_placement(skeleton: nn.Module, packed: dict[str, LowBitWeight]) -> tuple[str, list[list[str]] | None, set]:
    """Where the GPTQ loaders will put quantized layers: (the blocks' path, the in-block layer names to
    quantize or None for all of them, the quantized layers to store dequantized instead)."""
    found = find_blocks(skeleton)
    if found is None:
        raise Unsupported("no transformer blocks found: GPTQ loaders quantize the layers inside blocks only")
    blocks, path = found
    per_block = [{rel for rel, _ in linear_layers(block)} for block in blocks]
    quantized = [{rel for rel in layers if f"{path}.{i}.{rel}" in packed} for i, layers in enumerate(per_block)]
    suffixes = set.intersection(*quantized)
    replaced = {f"{path}.{i}.{rel}" for i, layers in enumerate(per_block) for rel in layers
                if any(rel.endswith(s) for s in suffixes)}
    unquantized = sorted(replaced - packed.keys())
    if unquantized:
        raise Unsupported(f"the GPTQ loaders would replace {', '.join(unquantized[:3])} (names ending like "
                          f"quantized ones), which this row kept in float")
    every = all(layers == q for layers, q in zip(per_block, quantized))
    return path, None if every else [sorted(suffixes)], set(packed) - replaced


def partial_group_layers(packed: dict[str, LowBitWeight]) -> list[str]:
    """Layers whose in_features the group size does not divide (a partial last group)."""
    return sorted(n for n, lw in packed.items() if lw.group_size != -1 and lw.in_features % lw.group_size)


def dequantized_into(skeleton: nn.Module, tensors: dict[str, torch.Tensor],
                     layers: dict[str, LowBitWeight]) -> dict[str, torch.Tensor]:
    """``tensors`` with the weight of each of ``layers`` dequantized, in the layer's own layout."""
    tensors = dict(tensors)
    for name, lw in layers.items():
        tensors[f"{name}.weight"] = in_layer_layout(skeleton.get_submodule(name), lw.dequantize()).contiguous()
    return tensors


def check_gptq_folder(folder: Path, packed: dict[str, LowBitWeight], checkpoint_format: str) -> None:
    """The folder's GPTQ tensors must read back as ``packed``'s integers and grids, or it is not kept."""
    tensors = read_folder_tensors(folder)
    for name, lw in packed.items():
        parts = {k: tensors[f"{name}.{k}"] for k in ("qweight", "qzeros", "scales", "g_idx")}
        back = from_gptq_tensors(parts, lw.bits, lw.group_size, lw.in_features, lw.out_features, checkpoint_format)
        if not (torch.equal(back.q, lw.q) and torch.equal(back.zeros, lw.zeros.float())
                and torch.equal(back.scales, lw.scales.half().float()) and torch.equal(back.g_idx, lw.g_idx.int())):
            raise RuntimeError(f"{folder}: layer {name} did not read back as written (a bug in the GPTQ writer)")


def is_symmetric(lw: LowBitWeight) -> bool:
    return bool((lw.zeros.float() == float(1 << (lw.bits - 1))).all())


def linear_layers(block: nn.Module):
    """(name inside the block, module) of the layers GPTQ loaders quantize: nn.Linear and Conv1D."""
    return [(n, m) for n, m in block.named_modules() if type(m) is nn.Linear or is_conv1d(m)]


def _artifact_method(artifact: Path) -> str | None:
    with safe_open(str(artifact), framework="pt") as f:
        return json.loads((f.metadata() or {}).get("quantization_config", "{}")).get("quant_method")


def _notes(folder: Path, outside: set, partial: list[str], group_size: int) -> list[str]:
    notes = [f"exported as a Hugging Face GPTQ folder: {folder}"]
    if outside:
        notes.append(f"GPTQ export: {', '.join(sorted(outside))} stored dequantized (GPTQ loaders quantize only "
                     f"layers found in every transformer block)")
    if partial:
        notes.append(f"GPTQ export: group_size {group_size} does not divide in_features of {', '.join(partial)}: "
                     f"the config asks for gptqmodel's torch backend, which loads them; its AVX-512 CPU, Marlin "
                     f"and ExLlama kernels (and vLLM) refuse them")
    return notes


def _readme(config: dict, notes: list[str]) -> str:
    meta = config["meta"]
    lines = [f"# {meta['method']} {config['bits']}-bit, group size {config['group_size']}, exported by quantbench",
             "", f"GPTQ tensors, `checkpoint_format: {config['checkpoint_format']}`"
             + (" (zero points stored as they are; loaders that ignore checkpoint_format read them one step off)"
                if config["checkpoint_format"] == "gptq_v2" else " (v1: zero points stored minus 1)")
             + f"; lowbit sha256 {meta['lowbit_sha256']}. Load with `transformers.AutoModelForCausalLM.from_pretrained"
             "(folder)` (AutoModel for encoders) with `optimum` and `gptqmodel` installed.", ""]
    return "\n".join(lines + [f"- {note}" for note in notes[1:]]) + "\n"
