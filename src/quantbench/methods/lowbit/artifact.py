"""The low-bit artifact: one safetensors file with the GPTQ checkpoint tensors (qweight,
qzeros, scales, g_idx) of each quantized layer, every other tensor of the model as is, and
the quantization config in its metadata. Loading dequantizes the codes once into the layers
of a freshly built model (``load_lowbit``), so the model is exactly the one the file describes.
The runtimes instead load the codes straight into their low-bit kernels (``runtimes/weight_only.py``,
``runtimes/cuda.py``); this dequantized model is the reference the tests check them against."""
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from .grid import LowBitWeight
from .layers import get_weight_out_in, set_weight_out_in
from .packing import count_v1_unrepresentable_zeros, from_gptq_tensors, to_gptq_tensors

FORMAT = "quantbench-lowbit-v1"
_PACKED = ("qweight", "qzeros", "scales", "g_idx")


@dataclass
class SizeBreakdown:
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
    """Write ``model`` with the layers in ``packed`` stored as codes; returns where the bytes go."""
    fmt = "gptq" if all(count_v1_unrepresentable_zeros(lw) == 0 for lw in packed.values()) else "gptq_v2"
    tensors = {k: v.detach().contiguous() for k, v in _shared_free(model.state_dict()).items()}
    for name, lw in packed.items():
        tensors.pop(_weight_key(name), None)
        tensors.update({f"{name}.{k}": v for k, v in to_gptq_tensors(lw, fmt).items()})
    layers = {name: [lw.out_features, lw.in_features] for name, lw in packed.items()}
    meta = {"format": FORMAT, "quantization_config": json.dumps({**config, "checkpoint_format": fmt}),
            "layers": json.dumps(layers)}
    save_file(tensors, str(path), metadata=meta)
    packed_keys = {f"{n}.{k}" for n in packed for k in _PACKED}
    return SizeBreakdown(
        packed_bytes=sum(_nbytes(tensors[k]) for k in packed_keys),
        theoretical_bytes=sum(theoretical_bytes(lw) for lw in packed.values()),
        other_bytes=sum(_nbytes(v) for k, v in tensors.items() if k not in packed_keys),
        file_bytes=path.stat().st_size,
    )


def read_lowbit(path: Path) -> tuple[dict[str, LowBitWeight], dict[str, torch.Tensor]]:
    """The artifact's quantized layers as LowBitWeights, and every other tensor of the model."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path} is not a {FORMAT} artifact")
        config = json.loads(meta["quantization_config"])
        layers = json.loads(meta["layers"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    packed = {}
    for name, (out_features, in_features) in layers.items():
        parts = {k: tensors.pop(f"{name}.{k}") for k in _PACKED}
        packed[name] = from_gptq_tensors(parts, config["bits"], config["group_size"], in_features, out_features,
                                         config["checkpoint_format"])
    return packed, tensors


def load_lowbit(path: Path, skeleton: nn.Module) -> nn.Module:
    """Fill ``skeleton`` (same architecture, real tensors) from the artifact, every quantized layer
    dequantized to fp32: the reference the runtimes' low-bit kernels are checked against."""
    packed, tensors = read_lowbit(path)
    modules = dict(skeleton.named_modules())
    for name, lw in packed.items():
        set_weight_out_in(modules[name], lw.dequantize())
    missing, unexpected = skeleton.load_state_dict(tensors, strict=False)
    expected_missing = {_weight_key(n) for n in packed}
    if unexpected or set(missing) - expected_missing - tied_keys(skeleton):
        raise ValueError(f"{path} does not match the model: missing {sorted(set(missing) - expected_missing)[:5]}, "
                         f"unexpected {unexpected[:5]}")
    return skeleton.eval()


def lowbit_fingerprint(packed: dict[str, LowBitWeight]) -> str:
    """sha256 (16 hex digits) of every layer's codes, zero points, scales and g_idx: equal
    fingerprints on two rows mean the same integers and grids."""
    digest = hashlib.sha256()
    for name in sorted(packed):
        lw = packed[name]
        digest.update(name.encode())
        for t in (lw.q, lw.zeros.float(), lw.scales.float(), lw.g_idx.int()):
            digest.update(t.contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def theoretical_bytes(lw: LowBitWeight) -> int:
    """bits x weights + per group an fp16 scale and a bits-wide zero, + an int32 group index per column."""
    codes = lw.out_features * lw.in_features * lw.bits / 8
    grids = lw.out_features * lw.n_groups * (2 + lw.bits / 8)
    return int(codes + grids + 4 * lw.in_features)


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


def tied_keys(model: nn.Module) -> set[str]:
    """State-dict keys naming a parameter or buffer already named by an earlier key (tied weights);
    by object identity, so it works on the "meta" device too."""
    seen, tied = set(), set()
    for key, value in model.state_dict(keep_vars=True).items():
        (tied.add(key) if id(value) in seen else seen.add(id(value)))
    return tied


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


__all__ = ["SizeBreakdown", "get_weight_out_in", "load_lowbit", "save_lowbit", "theoretical_bytes"]
