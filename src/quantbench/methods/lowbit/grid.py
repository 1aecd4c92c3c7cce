"""Integer quantization grids for low-bit weights: min-max scale/zero, codes, round to nearest.

A row (or a group of input columns of a row) of a weight matrix is stored as integer codes
``q`` in ``[0, 2**bits - 1]`` with a float ``scale`` and an integer zero point ``zero``:

    w ≈ scale * (q - zero)

This module is pure tensor math; it depends on torch only (and raises quantbench's NotRepresentable).
"""

from __future__ import annotations

import torch

from ...formats.lowbit import LowBitWeight, check_bits, max_code


def scale_zero_minmax(w: torch.Tensor, bits: int, sym: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Min-max grid of each row of ``w`` (reduced over the last dim): float32 (scale, zero).

    Asymmetric: the range [min, max] is widened to include 0, scale = (max - min) / (2**bits - 1),
    zero = round(-min / scale). Symmetric: scale = 2 * max|w| / (2**bits - 1) and zero is the
    midpoint 2**(bits - 1), as in the GPTQ reference. (The reference keeps min = 0 for a
    symmetric row with no negative value, which wastes half the grid; here the range is
    always [-max|w|, max|w|].) An all-zero row gets the range [-1, 1], so no NaN or inf.
    """
    check_bits(bits)
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
    check_bits(bits)
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


def _check_group_size(group_size: int) -> None:
    if group_size != -1 and group_size < 1:
        raise ValueError(f"group_size must be -1 (per row) or >= 1, got {group_size}")
