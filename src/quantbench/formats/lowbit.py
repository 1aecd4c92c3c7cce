"""The low-bit weight-only format: integer codes with per-group scales and zero points, plain data
that every runtime consumes (torch-cpu tinygemm / int8 weight-only, ONNX Runtime MatMulNBits, CUDA).
Methods (rtn, gptq, awq, hqq) produce it; on disk it is the GPTQ checkpoint packing
(``gptq_packing.py``, ``lowbit_file.py``)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import NotRepresentable


@dataclass(frozen=True)
class LowBitWeight:
    """A weight matrix [out_features, in_features] as integer codes plus per-group grids.

    ``q``: uint8 codes [out, in]; ``scales`` float32 [out, n_groups]; ``zeros`` [out, n_groups]
    (integer values for rtn/gptq/awq; any float for HQQ's optimized zeros, see ``float_zeros``);
    ``g_idx`` int32 [in], the group of each input column; ``group_size`` -1 means one group per row. ``input_scale`` float32 [in] (AWQ's per-input-channel
    scale, when it is not folded into the previous op): the codes hold W * input_scale, and the layer
    computes codes' weight @ (x / input_scale), so ``dequantize`` gives the weight the layer applies.
    """

    q: torch.Tensor
    scales: torch.Tensor
    zeros: torch.Tensor
    g_idx: torch.Tensor
    bits: int
    group_size: int
    input_scale: torch.Tensor | None = None

    def __post_init__(self) -> None:
        out_features, in_features = self.q.shape
        if self.q.dtype != torch.uint8:
            raise ValueError(f"q must be torch.uint8, got {self.q.dtype}")
        if self.scales.shape != self.zeros.shape or self.scales.shape[0] != out_features:
            raise ValueError(
                f"scales {tuple(self.scales.shape)} and zeros {tuple(self.zeros.shape)} "
                f"must both be [out_features={out_features}, n_groups]"
            )
        if self.g_idx.shape != (in_features,):
            raise ValueError(f"g_idx must be [in_features={in_features}], got {tuple(self.g_idx.shape)}")
        if self.input_scale is not None and self.input_scale.shape != (in_features,):
            raise ValueError(f"input_scale must be [in_features={in_features}], got {tuple(self.input_scale.shape)}")
        check_bits(self.bits)

    @property
    def n_groups(self) -> int:
        return self.scales.shape[1]

    @property
    def out_features(self) -> int:
        return self.q.shape[0]

    @property
    def in_features(self) -> int:
        return self.q.shape[1]

    @property
    def kernel_kind(self) -> str:
        """``weight_only_kind`` of this grid's bits."""
        return weight_only_kind(self.bits)

    @property
    def float_zeros(self) -> bool:
        """Whether some zero point is not an integer (then the GPTQ ``qzeros`` cannot hold them)."""
        return bool((self.zeros.float() != self.zeros.float().round()).any())

    @property
    def group_width(self) -> int:
        """Columns per group: ``group_size``, or every column for a per-row grid."""
        return self.in_features if self.group_size == -1 else self.group_size

    def column_order(self) -> torch.Tensor | None:
        """None when group g covers columns [g * width, (g + 1) * width) already; else the
        permutation of input columns (int64 [in]) that makes the groups such contiguous runs
        (act-order GPTQ). ``NotRepresentable`` when no permutation does (groups of other sizes)."""
        g_idx = self.g_idx.long()
        contiguous = torch.arange(self.in_features) // self.group_width
        if torch.equal(g_idx, contiguous):
            return None
        perm = torch.argsort(g_idx, stable=True)
        if not torch.equal(g_idx[perm], contiguous):
            raise NotRepresentable(f"g_idx does not make groups of {self.group_width} columns, even after a "
                                   f"column permutation")
        return perm

    def dequantize_codes(self) -> torch.Tensor:
        """The weight the codes hold, float32 [out, in]: W[n, k] = scales[n, g_idx[k]] * (q[n, k] - zeros[n, g_idx[k]])."""
        group = self.g_idx.long()
        return self.scales.float()[:, group] * (self.q.float() - self.zeros.float()[:, group])

    def dequantize(self) -> torch.Tensor:
        """The weight the layer applies to its input, float32 [out, in]: the codes' weight, divided
        column-wise by ``input_scale`` when there is one."""
        w = self.dequantize_codes()
        return w if self.input_scale is None else w / self.input_scale.float()[None, :]


def max_code(bits: int) -> int:
    """Largest integer code of a ``bits``-bit grid: 2**bits - 1."""
    return (1 << bits) - 1


INT8_WEIGHT_ONLY, INT4_WEIGHT_ONLY = "int8-weight-only", "int4-weight-only"


def weight_only_kind(bits: int) -> str:
    """The kernel family a ``bits``-bit grid runs in: 8-bit codes in int8 weight-only kernels, 2/3/4-bit
    codes in int4 ones (3- and 2-bit codes in 4-bit containers): the one place this choice is made."""
    return INT8_WEIGHT_ONLY if bits == 8 else INT4_WEIGHT_ONLY


def check_bits(bits: int) -> None:
    if not isinstance(bits, int) or not 1 <= bits <= 8:
        raise ValueError(f"bits must be an int in 1..8, got {bits!r}")


@dataclass(frozen=True)
class LowBitFormat:
    """A model whose ``layers`` hold low-bit weights (the rest stays in float); ``config``: the
    quantization_config saved with them (bits, group_size, sym, the method's own keys)."""

    layers: dict[str, LowBitWeight]
    config: dict

    @property
    def bits(self) -> list[int]:
        return sorted({lw.bits for lw in self.layers.values()})
