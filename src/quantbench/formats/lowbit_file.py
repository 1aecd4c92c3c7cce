"""The low-bit artifact: one safetensors file with the GPTQ checkpoint tensors (qweight,
qzeros, scales, g_idx) of each quantized layer, every other tensor of the model as is, and
the quantization config in its metadata. ``fill_lowbit`` is its one loader: it fills a model's
skeleton, each quantized layer either replaced by a module that runs its codes (the runtimes'
low-bit kernels, ``kernels/weight_only.py``) or dequantized once into the layer's weight.
``load_lowbit`` dequantizes every layer: exactly the model the file describes, the reference the
tests check the kernels against."""
import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from .lowbit import LowBitWeight
from ..tasks.skeleton import place_state, replace_module, set_tensor
from .layout import get_weight_out_in, in_layer_layout, restore_weight
from .gptq_packing import count_v1_unrepresentable_zeros, from_gptq_tensors, to_gptq_tensors

FORMAT = "quantbench-lowbit-v1"
_READ_ROWS = 64
"""Output rows of a layer unpacked at a time (a multiple of 32, see ``_output_rows``)."""
_PACKED = ("qweight", "qzeros", "zeros", "scales", "g_idx", "input_scale")
"""Every tensor a quantized layer may store (``to_gptq_tensors``): zeros in place of qzeros for float
zero points, input_scale for an unfolded per-input-channel scale."""


@dataclass
class SizeBreakdown:
    """Where the bytes of a saved artifact go, read from its safetensors header (``theoretical_bytes``:
    what the quantized layers would take at exactly their bits)."""

    packed_bytes: int
    theoretical_bytes: int
    other_bytes: int
    file_bytes: int

    @property
    def metadata_bytes(self) -> int:
        return self.file_bytes - self.packed_bytes - self.other_bytes

    def describe(self, fp32_bytes: int) -> str:
        """Where the bytes of the file go, against theory and against fp32."""
        return (f"quantized layers: {self.packed_bytes / 1e6:.3f} MB packed vs {fp32_bytes / 1e6:.3f} MB fp32 "
                f"({fp32_bytes / self.packed_bytes:.1f}x smaller; theory {self.theoretical_bytes / 1e6:.3f} MB, "
                f"{100 * (self.packed_bytes / self.theoretical_bytes - 1):+.1f}%); other tensors "
                f"{self.other_bytes / 1e6:.3f} MB; header/metadata {self.metadata_bytes} B")


def save_lowbit(model: nn.Module, packed: dict[str, LowBitWeight], config: dict, path: Path) -> SizeBreakdown:
    """Write ``model`` with the layers in ``packed`` stored as codes; returns where the file's bytes go.
    The file's quantized layers are read back and must equal ``packed``'s, so the fingerprint recorded
    when quantizing (``lowbit_sha256``) is the one of the file a row measures.
    The file stores scales as fp16: scales that fp16 does not hold exactly are refused before writing."""
    inexact = [name for name, lw in packed.items() if not _fp16_exact(lw)]
    if inexact:
        raise ValueError(f"scales or float zero points of {', '.join(inexact[:3])} are not fp16 values: the file "
                         f"would hold other weights than the quantized ones (round them to fp16 when quantizing)")
    integer = [lw for lw in packed.values() if not lw.float_zeros]
    fmt = "gptq" if all(count_v1_unrepresentable_zeros(lw) == 0 for lw in integer) else "gptq_v2"
    tensors = {k: v.detach().contiguous() for k, v in _shared_free(model.state_dict()).items()}
    for name, lw in packed.items():
        tensors.pop(_weight_key(name), None)
        tensors.update({f"{name}.{k}": v for k, v in to_gptq_tensors(lw, fmt).items()})
    layers = {name: [lw.out_features, lw.in_features] for name, lw in packed.items()}
    meta = {"format": FORMAT, "quantization_config": json.dumps({**config, "checkpoint_format": fmt}),
            "layers": json.dumps(layers)}
    save_file(tensors, str(path), metadata=meta)
    if packed and not artifact_holds(path, packed):
        path.unlink()
        raise RuntimeError(f"{path} did not hold the quantized layers it was written from (codes, zero points, "
                           f"scales, g_idx), so it was deleted: a bug in the writer")
    return _size_breakdown(path, packed)


def _size_breakdown(path: Path, packed: dict[str, LowBitWeight]) -> SizeBreakdown:
    """The bytes of the artifact at ``path``, per its safetensors header: the packed tensors of the
    layers in ``packed``, every other tensor, and the rest of the file (header and metadata)."""
    stored = _stored_bytes(path)
    packed_keys = {f"{n}.{k}" for n in packed for k in _PACKED}
    return SizeBreakdown(
        packed_bytes=sum(n for k, n in stored.items() if k in packed_keys),
        theoretical_bytes=sum(theoretical_bytes(lw) for lw in packed.values()),
        other_bytes=sum(n for k, n in stored.items() if k not in packed_keys),
        file_bytes=path.stat().st_size,
    )


def read_lowbit(path: Path, packed_only: bool = False) -> tuple[dict[str, LowBitWeight], dict[str, torch.Tensor]]:
    """The artifact's quantized layers as LowBitWeights, and every other tensor of the model (none
    with ``packed_only``: then only the quantized layers' tensors are read from the file)."""
    layers, tensors = read_lowbit_lazily(path, packed_only)
    return dict(layers), tensors


def read_lowbit_lazily(path: Path, packed_only: bool = False) -> tuple[Iterator[tuple[str, LowBitWeight]],
                                                                        dict[str, torch.Tensor]]:
    """As ``read_lowbit``, but the quantized layers come from an iterator that reads and unpacks one layer
    each time it is advanced: a loader that turns each into its kernel's module holds one layer's codes
    (1 byte a weight) at a time, not the model's."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path} is not a {FORMAT} artifact")
        layers = json.loads(meta["layers"])
        stored = list(f.keys())
        packed_keys = {f"{name}.{k}" for name in layers for k in _PACKED}
        tensors = {} if packed_only else {k: f.get_tensor(k) for k in stored if k not in packed_keys}
    return _layers(path, json.loads(meta["quantization_config"]), layers, set(stored)), tensors


def _layers(path: Path, config: dict, layers: dict, stored: set[str]) -> Iterator[tuple[str, LowBitWeight]]:
    with safe_open(str(path), framework="pt") as f:
        for name, (out_features, in_features) in layers.items():
            parts = {k: f.get_tensor(f"{name}.{k}") for k in _PACKED if f"{name}.{k}" in stored}
            yield name, _read_layer(parts, config, in_features, out_features)


def _read_layer(parts: dict[str, torch.Tensor], config: dict, in_features: int, out_features: int) -> LowBitWeight:
    """One layer's LowBitWeight from its stored tensors, unpacked ``_READ_ROWS`` output rows at a time into
    its uint8 codes: the unpacking works in int64, 8 bytes a code, twice fp32's 4 (134 MB for a whole
    4096 x 4096 layer, more than the fp32 model the artifact replaces)."""
    q = torch.empty(out_features, in_features, dtype=torch.uint8)
    scales, zeros = (torch.empty(out_features, parts["scales"].shape[0]) for _ in range(2))
    for start in range(0, out_features, _READ_ROWS):  # into preallocated tensors: no block outlives its turn
        stop = min(start + _READ_ROWS, out_features)
        block = from_gptq_tensors(_output_rows(parts, config["bits"], start, stop), config["bits"],
                                  config["group_size"], in_features, stop - start, config["checkpoint_format"])
        q[start:stop], scales[start:stop], zeros[start:stop] = block.q, block.scales, block.zeros
    return replace(block, q=q, scales=scales, zeros=zeros)


def _output_rows(parts: dict[str, torch.Tensor], bits: int, start: int, stop: int) -> dict[str, torch.Tensor]:
    """The stored tensors of output rows [start, stop) of a layer (``start`` a multiple of 32: ``qzeros``
    packs 32 values into a whole number of words at every bit width). The GPTQ tensors are [.., out]."""
    rows = {k: v for k, v in parts.items() if k in ("g_idx", "input_scale")}
    rows |= {k: parts[k][:, start:stop] for k in ("qweight", "scales", "zeros") if k in parts}
    if "qzeros" in parts:
        rows["qzeros"] = parts["qzeros"][:, start * bits // 32: -(-stop * bits // 32)]
    return rows


def load_lowbit(path: Path, skeleton: nn.Module) -> nn.Module:
    """``skeleton`` (the architecture: parameters on "meta" or real) holding the artifact with every
    quantized layer dequantized to fp32: the reference the runtimes' low-bit kernels are checked against."""
    return fill_lowbit(skeleton, *read_lowbit_lazily(path))


def is_dense_file(path: Path) -> bool:
    """Whether the artifact at ``path`` quantizes no layer (every tensor of the model as is)."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    return meta.get("format") == FORMAT and not json.loads(meta.get("layers", "{}"))


def stream_dense_into(model: nn.Module, path: Path) -> None:
    """Replace every tensor of ``model`` by the dense artifact's, read one tensor at a time (no second
    copy of the model exists at any moment); the file must hold exactly the model's tensors, of the
    same shapes and dtypes. Tied tensors (stored once) stay tied."""
    persistent = model.state_dict(keep_vars=True)
    replaced = {}
    with safe_open(str(path), framework="pt") as f:
        unknown = [key for key in f.keys() if key not in persistent]
        if unknown:
            raise ValueError(f"the artifact holds {', '.join(unknown[:5])}, which the model does not have")
        for key in f.keys():
            old = persistent[key]
            value = f.get_tensor(key)
            if value.shape != old.shape or value.dtype != old.dtype:
                raise ValueError(f"the artifact's {key} is {value.dtype} {tuple(value.shape)}, the model's is "
                                 f"{old.dtype} {tuple(old.shape)}")
            replaced[id(old)] = set_tensor(model, key, _like(old, value))
    missing = [key for key, old in persistent.items() if id(old) not in replaced]
    if missing:
        raise ValueError(f"the artifact lacks tensors of the model: {', '.join(missing[:5])}")
    for key, old in persistent.items():  # the other names of tied tensors
        set_tensor(model, key, replaced[id(old)])


def _like(old: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    return nn.Parameter(value, requires_grad=old.requires_grad) if isinstance(old, nn.Parameter) else value


MakeLayer = Callable[[str, LowBitWeight, "torch.Tensor | None"], "nn.Module | None"]


def fill_lowbit(skeleton: nn.Module, packed: Iterable[tuple[str, LowBitWeight]], tensors: dict[str, torch.Tensor],
                make_layer: MakeLayer | None = None, device: torch.device | str = "cpu",
                dtype: torch.dtype | None = None) -> nn.Module:
    """``skeleton`` holding an artifact read by ``read_lowbit_lazily`` (``packed``: its quantized layers as
    (name, LowBitWeight) pairs, read one at a time), on ``device`` (plain floating tensors
    cast to ``dtype`` when given), in place: the one loader of the low-bit artifact.

    ``make_layer(name, lw, bias)`` gives the module that runs a quantized layer's integers (bias
    already on the device), or None to keep the layer with its weight dequantized (in the layer's
    own layout, transposed for transformers' Conv1D); without it every layer is dequantized. No
    quantized layer's fp32 weight is materialized unless it is dequantized. A quantized layer and
    the artifact must agree on having a bias; every other tensor goes through ``place_state``."""
    tensors, swapped = dict(tensors), {}
    for name, lw in packed:
        layer = _quantized_layer(skeleton, name, lw)
        bias = tensors.pop(f"{name}.bias", None)
        if (bias is None) != (getattr(layer, "bias", None) is None):
            raise ValueError(f"the artifact and the model disagree on whether layer {name} has a bias")
        module = None if make_layer is None else make_layer(name, lw, None if bias is None else bias.to(device, dtype))
        if module is not None:
            swapped[name] = module
            continue
        tensors[_weight_key(name)] = in_layer_layout(layer, _dequantize_by_rows(lw))
        if bias is not None:
            tensors[f"{name}.bias"] = bias
    place_state(skeleton, tensors, device, dtype, skip=set(swapped))
    for name, module in swapped.items():
        replace_module(skeleton, name, module)
    return skeleton.eval().requires_grad_(False)


def restore_released_weights(module: nn.Module, packed: dict[str, LowBitWeight]) -> list[str]:
    """Give every layer of ``packed`` whose dense weight was released while quantizing (a "meta" tensor,
    see ``driver.quantize_model``) its dequantized weight back, for a writer that needs dense layers (an
    ONNX export): this costs the dense copy that releasing saved. Returns the layers restored."""
    restored = [name for name in packed if module.get_submodule(name).weight.is_meta]
    for name in restored:
        restore_weight(module.get_submodule(name), _dequantize_by_rows(packed[name]))
    return restored


def _dequantize_by_rows(lw: LowBitWeight) -> torch.Tensor:
    """``lw.dequantize()``, ``_READ_ROWS`` output rows at a time into the result: the whole-layer formula
    makes three float32 temporaries of the layer's size (a 4096 x 4096 layer loaded at 300 MB, not 67)."""
    w = torch.empty(lw.out_features, lw.in_features)
    for start in range(0, lw.out_features, _READ_ROWS):
        rows = slice(start, start + _READ_ROWS)
        w[rows] = replace(lw, q=lw.q[rows], scales=lw.scales[rows], zeros=lw.zeros[rows]).dequantize()
    return w


def _quantized_layer(skeleton: nn.Module, name: str, lw: LowBitWeight) -> nn.Module:
    """The layer ``name`` of ``skeleton``, checked against the artifact's [out, in] for it."""
    try:
        layer = skeleton.get_submodule(name)
    except AttributeError:
        raise ValueError(f"the artifact quantizes layer {name}, which the model does not have") from None
    shape = tuple(get_weight_out_in(layer).shape)
    if shape != (lw.out_features, lw.in_features):
        raise ValueError(f"the artifact's layer {name} is [out, in] = {[lw.out_features, lw.in_features]}, the "
                         f"model's is {list(shape)}")
    return layer


def artifact_holds(path: Path, packed: dict[str, LowBitWeight]) -> bool:
    """Whether the artifact at ``path`` holds exactly ``packed``'s layers: codes, zero points, scales and
    g_idx as read back from the file (then ``lowbit_fingerprint(packed)`` is the file's too)."""
    seen = []
    for name, lw in read_lowbit_lazily(path, packed_only=True)[0]:  # one layer's codes at a time
        if name not in packed or not all(map(torch.equal, _grid_tensors(lw), _grid_tensors(packed[name]))):
            return False
        seen.append(name)
    return sorted(seen) == sorted(packed)


def lowbit_fingerprint(packed: dict[str, LowBitWeight]) -> str:
    """sha256 (16 hex digits) of every layer's codes, zero points, scales and g_idx: equal
    fingerprints on two rows mean the same integers and grids."""
    digest = hashlib.sha256()
    for name in sorted(packed):
        digest.update(name.encode())
        for t in _grid_tensors(packed[name]):
            digest.update(t.contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _grid_tensors(lw: LowBitWeight) -> tuple[torch.Tensor, ...]:
    """What identifies a quantized layer: its codes, zero points, scales, g_idx and input scale (when it
    has one), in fixed dtypes."""
    grid = (lw.q, lw.zeros.float(), lw.scales.float(), lw.g_idx.int())
    return grid if lw.input_scale is None else grid + (lw.input_scale.float(),)


def _fp16_exact(lw: LowBitWeight) -> bool:
    """Whether the scales (and float zero points) are fp16 values, as the file stores them."""
    held = [lw.scales] + ([lw.zeros] if lw.float_zeros else [])
    return all(torch.equal(t.float(), t.half().float()) for t in held)


def theoretical_bytes(lw: LowBitWeight) -> int:
    """bits x weights + per group an fp16 scale and a bits-wide zero (fp16 when float), + an int32 group
    index per column (and an fp32 input scale per column when there is one)."""
    codes = lw.out_features * lw.in_features * lw.bits / 8
    grids = lw.out_features * lw.n_groups * (2 + (2 if lw.float_zeros else lw.bits / 8))
    per_column = 4 + (4 if lw.input_scale is not None else 0)
    return int(codes + grids + per_column * lw.in_features)


def save_lowbit_model(module: nn.Module, fmt, path: Path, details: dict) -> list[str]:
    """Write ``module`` with ``fmt``'s layers (a LowBitFormat, or None: every tensor as is) to ``path``;
    records where the bytes go in ``details`` and returns the row's note about it."""
    layers = fmt.layers if fmt is not None else {}
    breakdown = save_lowbit(module, layers, fmt.config if fmt is not None else {}, path)
    details["size_breakdown"] = vars(breakdown) | {"metadata_bytes": breakdown.metadata_bytes}
    if not layers:
        return []
    return [breakdown.describe(fp32_bytes=4 * sum(lw.q.numel() for lw in layers.values()))]


def _weight_key(layer_name: str) -> str:
    return f"{layer_name}.weight"


def _shared_free(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop tensors that share storage with an earlier one (tied embeddings): safetensors refuses them."""
    seen, kept = set(), {}
    for key, value in state.items():
        ptr = (value.untyped_storage().data_ptr(), value.storage_offset(), tuple(value.shape))
        if ptr not in seen:
            seen.add(ptr)
            kept[key] = value
    return kept


def _stored_bytes(path: Path) -> dict[str, int]:
    """Bytes each tensor takes in a safetensors file, from its header (an 8-byte little-endian
    length, then JSON giving each tensor's ``data_offsets``)."""
    with open(path, "rb") as f:
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
    return {k: end - start for k, v in header.items() if k != "__metadata__" for start, end in [v["data_offsets"]]}


__all__ = ["SizeBreakdown", "fill_lowbit", "load_lowbit", "read_lowbit", "save_lowbit", "theoretical_bytes"]
