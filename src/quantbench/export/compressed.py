"""A low-bit artifact as a compressed-tensors ``pack-quantized`` folder (the format llm-compressor writes
and vLLM loads). Per quantized layer, in place of its weight:

- ``weight_packed`` int32 [out, ceil(in * bits / 32)]: each row's codes as one little-endian bit
  stream (the GPTQ ``qweight`` bit order, along the input dim instead of across it);
- ``weight_scale`` fp16 [out, n_groups]; ``weight_shape`` [out, in];
- ``weight_zero_point`` int32 [ceil(out * bits / 32), n_groups], asymmetric grids only, packed along
  the output dim. compressed-tensors stores signed values offset by 2**(bits-1), so an unsigned
  code c and zero z of quantbench are stored as they are and dequantize to scale * (c - z).

compressed-tensors groups are contiguous runs that divide in_features (it dropped g_idx
activation order): a layer whose groups are permuted (act-order) or partial is stored dequantized,
listed in ``ignore``, and named in the row.
"""
from pathlib import Path

import torch
from torch import nn

from ..errors import Unsupported
from ..formats.gptq_packing import pack_along_rows, unpack_rows
from ..formats.lowbit import LowBitWeight
from ..formats.lowbit_file import read_lowbit
from .folder import MAX_SHARD_BYTES, Exported, read_folder_tensors, write_model_folder
from .gptq import check_integer_grids, dequantized_into, is_symmetric, linear_layers


def export_compressed_tensors(artifact: Path, builder, folder: Path,
                              max_shard_bytes: int = MAX_SHARD_BYTES) -> Exported:
    """Write the low-bit artifact at ``artifact`` (of ``builder``'s model) as a pack-quantized folder."""
    packed, tensors = read_lowbit(artifact)
    bits, group_size = check_integer_grids(packed)
    skeleton = builder.skeleton()
    held = {name: lw for name, lw in packed.items()
            if type(skeleton.get_submodule(name)) is nn.Linear and compressed_tensors_holds(lw)}
    if not held:
        raise Unsupported("no nn.Linear layer has contiguous groups that divide its in_features, which "
                          "compressed-tensors needs")
    tensors = dequantized_into(skeleton, tensors, {n: lw for n, lw in packed.items() if n not in held})
    sym = all(is_symmetric(lw) for lw in held.values())
    for name, lw in held.items():
        tensors.update({f"{name}.{k}": v for k, v in pack_quantized_tensors(lw, with_zeros=not sym).items()})
    ignore = sorted(name for name, _ in linear_layers(skeleton) if name not in held)
    dequantized = sorted(set(packed) - set(held))
    exported = Exported(folder, _notes(folder, dequantized), {"dequantized_layers": dequantized, "symmetric": sym})
    readme = (f"# {bits}-bit pack-quantized (compressed-tensors), exported by quantbench\n\nLoad with vLLM or with "
              "`transformers` and the `compressed-tensors` package.\n" + "".join(f"\n- {n}" for n in exported.notes[1:]))
    write_model_folder(folder, tensors, builder, pack_quantized_config(bits, group_size, sym, ignore), readme + "\n",
                       max_shard_bytes)
    check_pack_quantized_folder(folder, held)
    return exported


def check_pack_quantized_folder(folder: Path, held: dict[str, LowBitWeight]) -> None:
    """The folder's packed codes and zero points must read back as ``held``'s, or it is not kept."""
    tensors = read_folder_tensors(folder)
    for name, lw in held.items():
        codes = unpack_rows(tensors[f"{name}.weight_packed"].T, lw.bits, lw.in_features).T
        zeros = tensors.get(f"{name}.weight_zero_point")
        zeros = lw.zeros if zeros is None else unpack_rows(zeros, lw.bits, lw.out_features)
        if not (torch.equal(codes, lw.q.long()) and torch.equal(zeros.float(), lw.zeros.float())):
            raise RuntimeError(f"{folder}: layer {name} did not read back as written (a bug in the writer)")


def _notes(folder: Path, dequantized: list[str]) -> list[str]:
    notes = [f"exported as a compressed-tensors pack-quantized folder: {folder}"]
    return notes + ([f"compressed-tensors export: {', '.join(dequantized)} stored dequantized (act-order, partial "
                     "groups or Conv1D, which compressed-tensors cannot hold)"] if dequantized else [])


def compressed_tensors_holds(lw: LowBitWeight) -> bool:
    """Whether compressed-tensors' group layout holds ``lw``: groups in column order that divide in_features."""
    contiguous = torch.equal(lw.g_idx.long(), torch.arange(lw.in_features) // lw.group_width)
    return contiguous and lw.in_features % lw.group_width == 0


def pack_quantized_tensors(lw: LowBitWeight, with_zeros: bool) -> dict[str, torch.Tensor]:
    """The pack-quantized tensors of one layer (see the module doc); zero points only ``with_zeros``
    (an asymmetric config: compressed-tensors takes a symmetric grid's zero as 2**(bits-1))."""
    tensors = {"weight_packed": pack_along_rows(lw.q.T, lw.bits).T.contiguous(),
               "weight_scale": lw.scales.half().contiguous(),
               "weight_shape": torch.tensor([lw.out_features, lw.in_features])}
    if with_zeros:
        tensors["weight_zero_point"] = pack_along_rows(lw.zeros.to(torch.int64), lw.bits).contiguous()
    return tensors


def pack_quantized_config(bits: int, group_size: int, sym: bool, ignore: list[str]) -> dict:
    """The ``quantization_config`` of a weight-only pack-quantized model (llm-compressor's W4A16 shape)."""
    weights = {"num_bits": bits, "type": "int", "symmetric": sym, "dynamic": False, "actorder": None,
               "strategy": "channel" if group_size == -1 else "group",
               "group_size": None if group_size == -1 else group_size, "observer": "minmax"}
    group = {"targets": ["Linear"], "weights": weights, "input_activations": None, "output_activations": None}
    return {"quant_method": "compressed-tensors", "format": "pack-quantized", "quantization_status": "compressed",
            "config_groups": {"group_0": group}, "ignore": ignore, "kv_cache_scheme": None}
