"""Integer quantization grids for low-bit weights: min-max scale/zero, codes, round to nearest.

A row (or a group of input columns of a row) of a weight matrix is stored as integer codes
``q`` in ``[0, 2**bits - 1]`` with a float ``scale`` and an integer zero point ``zero``:

    w ≈ scale * (q - zero)

This module is pure tensor math; it depends on torch only (and raises quantbench's NotRepresentable).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...errors import NotRepresentable


@dataclass(frozen=True)
class LowBitWeight:
    """A weight matrix [out_features, in_features] as integer codes plus per-group grids.

    ``q``: uint8 codes [out, in]; ``scales`` float32 [out, n_groups]; ``zeros`` [out, n_groups]
    (integer values, float or int dtype); ``g_idx`` int32 [in], the group of each input column;
    ``group_size`` -1 means one group per row.
    """

    q: torch.Tensor
    scales: torch.Tensor
    zeros: torch.Tensor
    g_idx: torch.Tensor
    bits: int
    group_size: int

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
        _check_bits(self.bits)

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

    def dequantize(self) -> torch.Tensor:
        """W[n, k] = scales[n, g_idx[k]] * (q[n, k] - zeros[n, g_idx[k]]), float32 [out, in]."""
        group = self.g_idx.long()
        scale = self.scales.float()[:, group]
        zero = self.zeros.float()[:, group]
        return dequantize_codes(self.q, scale, zero)


def max_code(bits: int) -> int:
    """Largest integer code of a ``bits``-bit grid: 2**bits - 1."""
    return (1 << bits) - 1


def scale_zero_minmax(w: torch.Tensor, bits: int, sym: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Min-max grid of each row of ``w`` (reduced over the last dim): float32 (scale, zero).

    Asymmetric: the range [min, max] is widened to include 0, scale = (max - min) / (2**bits - 1),
    zero = round(-min / scale). Symmetric: scale = 2 * max|w| / (2**bits - 1) and zero is the
    midpoint 2**(bits - 1), as in the GPTQ reference. (The reference keeps min = 0 for a
    symmetric row with no negative value, which wastes half the grid; here the range is
    always [-max|w|, max|w|].) An all-zero row gets the range [-1, 1], so no NaN or inf.
    """
    _check_bits(bits)
    maxq = max_code(bits)
    w = w.float()
    lo = w.amin(dim=-1).clamp(max=0.0)
    hi = w.amax(dim=-1).clamp(min=0.0)
    if sym:
        hi = torch.maximum(hi, -lo)
        lo = -hi
    empty = hi == lo
    lo = torch.where(empty, -1.0, lo)
    hi = torch.where(empty, 1.0, hi)
    scale = (hi - lo) / maxq
    if sym:
        zero = torch.full_like(scale, float((maxq + 1) // 2))
    else:
        zero = torch.round(-lo / scale)
    return scale, zero


def quantize_codes(w: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, bits: int) -> torch.Tensor:
    """uint8 codes clamp(round(w / scale) + zero, 0, 2**bits - 1); scale/zero broadcast to w."""
    return float_codes(w, scale, zero, max_code(bits)).to(torch.uint8)


def dequantize_codes(q: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
    """float32 values scale * (q - zero); scale/zero broadcast to q."""
    return scale * (q.float() - zero)


def float_codes(w: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, maxq: int) -> torch.Tensor:
    """Integer-valued float codes clamp(round(w / scale) + zero, 0, maxq) (for solver loops)."""
    return torch.clamp(torch.round(w / scale) + zero, 0, maxq)


def rtn_quantize(w: torch.Tensor, bits: int, group_size: int = -1, sym: bool = False) -> LowBitWeight:
    """Round-to-nearest quantization of w [out, in], per row or per group of input columns.

    Group g covers input columns [g * group_size, (g + 1) * group_size); when in_features is not
    a multiple of group_size the last group is smaller.
    """
    _check_bits(bits)
    w = w.detach().float()
    out_features, in_features = w.shape
    starts = group_starts(in_features, group_size)
    width = in_features if group_size == -1 else group_size
    scales = torch.empty(out_features, len(starts), dtype=torch.float32, device=w.device)
    zeros = torch.empty_like(scales)
    codes = torch.empty(out_features, in_features, dtype=torch.uint8, device=w.device)
    for g, start in enumerate(starts):
        block = w[:, start : start + width]
        scale, zero = scale_zero_minmax(block, bits, sym)
        codes[:, start : start + width] = quantize_codes(block, scale[:, None], zero[:, None], bits)
        scales[:, g], zeros[:, g] = scale, zero
    g_idx = group_index(in_features, group_size, device=w.device)
    return LowBitWeight(codes, scales, zeros, g_idx, bits, group_size)


def group_starts(in_features: int, group_size: int) -> list[int]:
    """First input column of each group ([0] for group_size -1)."""
    _check_group_size(group_size)
    if group_size == -1:
        return [0]
    return list(range(0, in_features, group_size))


def group_index(in_features: int, group_size: int, device: torch.device | str | None = None) -> torch.Tensor:
    """int32 [in_features]: k // group_size, or all zeros for group_size -1."""
    _check_group_size(group_size)
    k = torch.arange(in_features, dtype=torch.int32, device=device)
    return torch.zeros_like(k) if group_size == -1 else k // group_size


def _check_bits(bits: int) -> None:
    if not isinstance(bits, int) or not 1 <= bits <= 8:
        raise ValueError(f"bits must be an int in 1..8, got {bits!r}")


def _check_group_size(group_size: int) -> None:
    if group_size != -1 and group_size < 1:
        raise ValueError(f"group_size must be -1 (per row) or >= 1, got {group_size}")
